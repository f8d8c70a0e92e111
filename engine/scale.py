"""Let the flow see large highlights at the scale it was trained on.

Why: the flow judges a clipped pixel from the 56 px around it (its receptive field), and it was
trained on views of 1024x512 panoramas, where a photo is about 256 px wide and a lamp or a sky
is a blob that window can see the rim of. In a 4000-px photo of the same scene the blob is 15
times wider: deep inside it every window sees flat white, and the flow's answer no longer says
how bright the thing is. Measured on the held-out split made 4x larger (MODEL_CARD, "Large
photos"), the photos' highlight error rose from 0.45 to 0.65 stops (naive inverse 0.85).

So an image whose clipped areas are too deep for the window is converted as a smaller copy, the
smallest power-of-two reduction at which no clipped pixel lies more than ``depth_px`` from an
unclipped one (chosen on training images; the held-out ones confirmed it), but never below the
size the flow was trained on. The flow's log-domain correction over the naive inverse is then
upsampled and applied to the full-resolution naive inverse, so measured pixels keep every
detail of the photo and clipped areas get the brightness the flow sees at its own scale.
Photos with small highlights (a glint, a window in a wide shot) stay at full resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .color import srgb_to_linear
from .jsonvalues import is_int, is_number
from .light import clipped_mask
from .sphere import area_resize_rows
from .tiling import row_bands, to_unit_float


@dataclass(frozen=True)
class FlowScale:
    """The scale rule. The sizes are the flow's training scale, so they belong to the model:
    a bundle states them in model.json's ``"scale"`` (``from_meta``); these defaults were
    measured with the compact model trained on 1024x512 panoramas (MODEL_CARD)."""

    depth_px: float = 16.0        # deepest clipped pixel the flow should see, px from the clip's edge
    photo_side: int = 256         # never reduce a photo's long side below this (a training view)
    panorama_width: int = 1024    # never reduce a panorama below this width (the training panoramas)
    clip_code: int = 253          # a channel at or above this 8-bit code is clipped (the target rule's)

    META_KEYS = ("depth_px", "photo_side", "panorama_width")

    def to_meta(self) -> dict:
        return {k: getattr(self, k) for k in self.META_KEYS}

    @classmethod
    def from_meta(cls, d: dict | None) -> "FlowScale":
        """The rule a bundle states (missing keys, or a bundle without ``"scale"``, get the
        defaults); check ``d`` with ``scale_problem`` first."""
        return cls(**{k: d[k] for k in cls.META_KEYS if k in (d or {})})


def scale_problem(d) -> str | None:
    """What is wrong with a model.json ``"scale"`` block, or None."""
    if not isinstance(d, dict):
        return "must be a JSON object"
    unknown = sorted(set(d) - set(FlowScale.META_KEYS))
    if unknown:
        return f"has unknown keys {unknown} (known: {list(FlowScale.META_KEYS)})"
    for k, v in d.items():
        if k == "depth_px" and not (is_number(v) and v >= 0):
            return f"'{k}' must be a non-negative number, got {v!r}"
        if k != "depth_px" and not (is_int(v) and v >= 1):
            return f"'{k}' must be a positive integer, got {v!r}"
    return None


def _eroded(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` eroded ``steps`` times, alternating 8- and 4-neighbour steps: what is left lies
    more than about ``steps`` px (octagonal distance, within 8 % of Euclidean) from the edge."""
    m = mask.copy()
    for i in range(steps):
        if not m.any():
            break
        e = m.copy()
        e[1:] &= m[:-1]
        e[:-1] &= m[1:]
        e[:, 1:] &= m[:, :-1]
        e[:, :-1] &= m[:, 1:]
        if i % 2 == 0:  # the diagonals too
            e[1:, 1:] &= m[:-1, :-1]
            e[1:, :-1] &= m[:-1, 1:]
            e[:-1, 1:] &= m[1:, :-1]
            e[:-1, :-1] &= m[1:, 1:]
        e[0] = e[-1] = False
        e[:, 0] = e[:, -1] = False
        m = e
    return m


def reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Area-average reduction of a display-encoded image (any dtype) as float32 in [0, 1], made
    from row bands of the input, so a big uint8 photo is never held as full-size floats."""
    H, W = image.shape[:2]
    h, w = max(1, round(H / factor)), max(1, round(W / factor))
    return area_resize_rows(lambda r0, r1: to_unit_float(image[r0:r1]), H, W, 3, h, w)


def flow_view(image: np.ndarray, panorama: bool, rule: FlowScale = FlowScale()) -> tuple[int, np.ndarray]:
    """The power-of-two reduction (1 = full resolution) at which to run the flow on ``image``,
    and the image the flow should see: ``image`` itself, or its reduction (``reduce``).

    Tried from the coarsest allowed reduction down: the answer is the finest one whose clipped
    areas are shallow enough, so an image of small highlights costs one erosion of its own
    mask and an image of one huge lamp stops after a few cheap coarse checks."""
    H, W = image.shape[:2]
    floor = rule.panorama_width if panorama else rule.photo_side
    size = W if panorama else max(H, W)
    factors = [1]
    while size / (factors[-1] * 2) >= floor:
        factors.append(factors[-1] * 2)
    steps = int(np.ceil(rule.depth_px))
    chosen = None
    for factor in reversed(factors):
        view = reduce(image, factor) if factor > 1 else image
        deep = _eroded(clipped_mask(view, rule.clip_code), steps).any()
        if deep and chosen is not None:
            break
        chosen = (factor, view)
        if deep:  # even the coarsest allowed reduction is deep: it is the best there is
            break
    return chosen


def upsample(img: np.ndarray, height: int, width: int, rows: tuple[int, int] | None = None) -> np.ndarray:
    """Bilinear upsampling (pixel centres aligned, edges clamped) of an (h, w[, c]) array to
    (height, width), or only output rows [r0, r1) of it."""
    h, w = img.shape[:2]
    r0, r1 = rows if rows is not None else (0, height)
    y = np.clip((np.arange(r0, r1) + 0.5) * (h / height) - 0.5, 0, h - 1)
    x = np.clip((np.arange(width) + 0.5) * (w / width) - 0.5, 0, w - 1)
    y0 = np.floor(y).astype(np.intp)
    x0 = np.floor(x).astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy = (y - y0).astype(np.float32).reshape(-1, 1, *([1] * (img.ndim - 2)))
    fx = (x - x0).astype(np.float32).reshape(1, -1, *([1] * (img.ndim - 2)))
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def log_correction(hdr: np.ndarray, ldr_unit: np.ndarray, eps: float) -> np.ndarray:
    """Per channel, log(hdr + eps) - log(naive inverse + eps): what the flow added."""
    return (np.log(np.maximum(hdr, 0.0) + eps) - np.log(srgb_to_linear(ldr_unit) + eps)).astype(np.float32)


def apply_correction(out: np.ndarray, image: np.ndarray, correction: np.ndarray, eps: float) -> None:
    """Write the full-resolution naive inverse of ``image`` times the upsampled ``correction``
    into ``out`` (H, W, 3), in row bands (no full-size temporaries)."""
    H, W = image.shape[:2]
    for r0, r1 in row_bands(H, W):
        naive = srgb_to_linear(to_unit_float(image[r0:r1]))
        c = upsample(correction, H, W, rows=(r0, r1))
        np.maximum((naive + eps) * np.exp(c) - eps, 0.0, out=out[r0:r1])
