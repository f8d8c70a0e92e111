"""Tiling: run the model on windows of bounded size and blend them into one seamless image.

Why: the flow's memory grows with the pixels it sees, so big photos are cut into windows of at
most `tile` x `tile` pixels. Each window is a *core* (the pixels it is responsible for) plus
`overlap` pixels of context on every side that has a neighbour; with overlap >= the model's
receptive-field radius, the pixels near the core see (almost) the same input as in an untiled
run. Outputs are blended over a narrow feather band straddling each core boundary with linear
ramps whose weights sum to one, so any residual difference fades instead of forming a seam.
The blend uses the central part of the overlap only: the outer context pixels are exactly the
ones whose receptive field is cut off by the window edge.

Panoramas (equirectangular, 360 deg) wrap horizontally: columns are taken modulo the padded
width, windows at the left edge take their context from the right edge and vice versa, and
even a single window gets wrapped context so the left and right borders see each other.

Memory: only the input image (in its storage type, e.g. uint8), the float32 output, the float32
weight sum (H x W) and optionally a spread map are full-size; padding is never materialised:
`PaddedSource.read` builds each window on demand.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import count

import numpy as np

from .io import to_unit_float


#: Bytes a row band of float32 RGB may hold: full-size passes over an image go band by band, so
#: they need no full-size temporaries.
ROW_BAND_BYTES = 4 << 20


def row_bands(height: int, width: int) -> list[tuple[int, int]]:
    """(r0, r1) row ranges covering ``height`` rows of a ``width``-wide float32 RGB image, each
    about ``ROW_BAND_BYTES``."""
    band = max(1, ROW_BAND_BYTES // (width * 12))
    return [(r0, min(height, r0 + band)) for r0 in range(0, height, band)]


def round_up(value: int, multiple: int) -> int:
    return -(-int(value) // int(multiple)) * int(multiple)


def padded_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """(height, width) rounded up to multiples of the model stride."""
    return round_up(height, stride), round_up(width, stride)


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Map any integer positions onto [0, n) by mirror reflection (edge pixel not repeated)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m >= n, period - m, m)


class PaddedSource:
    """Read windows of an image padded to the stride without materialising the padded image.

    Vertically (and horizontally unless `wrap`) the padding mirrors the image. With `wrap` the
    image is periodic with the padded width: the few padding columns (< stride) form a linear
    bridge from the last column back to the first, so the periodic signal has no jump.
    Values come back as float32 in [0, 1] (uint8 / 255, uint16 / 65535)."""

    def __init__(self, image: np.ndarray, stride: int, wrap: bool = False):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got {image.shape}")
        self.image = image
        self.height, self.width = image.shape[:2]
        self.padded_height, self.padded_width = padded_size(self.height, self.width, stride)
        self.wrap = bool(wrap)
        self.bridge = None
        npad = self.padded_width - self.width
        if self.wrap and npad:
            t = (np.arange(1, npad + 1, dtype=np.float32) / np.float32(npad + 1))[None, :, None]
            last = to_unit_float(image[:, -1:])
            first = to_unit_float(image[:, :1])
            self.bridge = (last * (1 - t) + first * t).astype(np.float32)  # (H, npad, 3)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Window rows [y0, y1) (inside the padded height) and columns [x0, x1) (inside the
        padded width, or any integers when wrapping) as float32 (y1-y0, x1-x0, 3)."""
        if y0 < 0 or y1 > self.padded_height or y1 <= y0 or x1 <= x0:
            raise ValueError(f"window rows {y0}..{y1} outside padded height {self.padded_height}")
        H, W = self.height, self.width
        if y1 <= H and 0 <= x0 and x1 <= W:  # fast path: a plain view of the image
            return to_unit_float(self.image[y0:y1, x0:x1])
        rows = _reflect(np.arange(y0, y1), H)
        xs = np.arange(x0, x1)
        if not self.wrap:
            if x0 < 0 or x1 > self.padded_width:
                raise ValueError(f"window columns {x0}..{x1} outside padded width {self.padded_width}")
            return to_unit_float(self.image[np.ix_(rows, _reflect(xs, W))])
        cols = np.mod(xs, self.padded_width)
        direct = cols < W
        out = np.empty((y1 - y0, x1 - x0, 3), dtype=np.float32)
        out[:, direct] = to_unit_float(self.image[np.ix_(rows, cols[direct])])
        if not direct.all():
            out[:, ~direct] = self.bridge[np.ix_(rows, cols[~direct] - W)]
        return out


def pad_to_stride(image: np.ndarray, stride: int, wrap: bool = False) -> np.ndarray:
    """The padded image as float32 (for small images and tests; the converter reads windows)."""
    src = PaddedSource(image, stride, wrap)
    return src.read(0, src.padded_height, 0, src.padded_width)


@dataclass(frozen=True)
class Span:
    """One tile along one axis: window [w0, w1) fed to the model, region [r0, r1) blended into
    the output, with a linear ramp at the region's low/high end where a neighbour shares it."""

    w0: int
    w1: int
    r0: int
    r1: int
    ramp_lo: bool
    ramp_hi: bool


@dataclass(frozen=True)
class Tile:
    """A window of the padded image (network input) and the region of it that is blended."""

    rows: Span
    cols: Span

    @property
    def window(self) -> tuple[int, int, int, int]:
        """(y0, x0, height, width) of the network input, in padded-image coordinates."""
        return self.rows.w0, self.cols.w0, self.rows.w1 - self.rows.w0, self.cols.w1 - self.cols.w0


@dataclass(frozen=True)
class TilePlan:
    height: int          # padded height
    width: int           # padded width (the wrap period when wrapping)
    tile: int
    overlap: int         # context pixels on each shared side
    feather: int         # width of the blend band straddling each core boundary
    wrap: bool
    tiles: tuple[Tile, ...]


def default_overlap(receptive_field: int, stride: int) -> int:
    """Context per side: the receptive-field radius rounded up to the stride."""
    return round_up(max(int(receptive_field), 0), stride)


def default_feather(overlap: int) -> int:
    """Blend band width: up to 32 px, and at most the overlap, so that every blended pixel is at
    least overlap/2 from its window's edge (where the receptive field gets cut off)."""
    return 2 * min(overlap // 2, 16)


def min_tile(overlap: int, stride: int) -> int:
    """Smallest tile that still leaves a core of one stride between two context margins."""
    return 2 * overlap + stride


def _split_axis(length: int, tile: int, overlap: int, stride: int, wrap: bool, feather: int) -> list[Span]:
    half = feather // 2
    if not wrap and length <= tile:
        return [Span(0, length, 0, length, False, False)]
    for n in count(2 if not wrap else 1):
        if n > length // stride:
            raise ValueError(f"tile {tile} is too small for overlap {overlap} (need at least "
                             f"{min_tile(overlap, stride)})")
        bounds = [int(round(i * length / n / stride)) * stride for i in range(n)] + [length]
        if any(b1 <= b0 for b0, b1 in zip(bounds[:-1], bounds[1:], strict=True)):
            continue
        spans = []
        for i in range(n):
            lo, hi = bounds[i], bounds[i + 1]
            first, last = i == 0, i == n - 1
            if wrap:
                spans.append(Span(lo - overlap, hi + overlap, lo - half, hi + half, True, True))
            else:  # clamp to the image: edge windows simply have less context on that side
                spans.append(Span(0 if first else max(0, lo - overlap),
                                  length if last else min(length, hi + overlap),
                                  0 if first else max(0, lo - half),
                                  length if last else min(length, hi + half),
                                  not first, not last))
        if all(s.w1 - s.w0 <= tile for s in spans):
            return spans
    raise AssertionError("unreachable")


def plan_tiles(height: int, width: int, tile: int, overlap: int, stride: int, wrap: bool = False,
               feather: int | None = None) -> TilePlan:
    """Cover a padded (height, width) image with windows of at most tile x tile pixels.

    `height`, `width`, `tile` and `overlap` must be multiples of `stride`; windows and cores are
    stride-aligned (so latents align too). With `wrap`, columns are periodic with period `width`
    and window columns may be negative or exceed `width`."""
    for name, v in (("height", height), ("width", width), ("tile", tile), ("overlap", overlap)):
        if v % stride:
            raise ValueError(f"{name} {v} is not a multiple of the stride {stride}")
    if tile < stride:
        raise ValueError(f"tile {tile} is smaller than the stride {stride}")
    feather = default_feather(overlap) if feather is None else int(feather)
    if feather < 0 or feather // 2 > overlap:
        raise ValueError(f"feather {feather} must be between 0 and twice the overlap {overlap}")
    rows = _split_axis(height, tile, overlap, stride, False, feather)
    cols = _split_axis(width, tile, overlap, stride, wrap, feather)
    tiles = tuple(Tile(r, c) for r in rows for c in cols)
    return TilePlan(height, width, tile, overlap, feather, bool(wrap), tiles)


def _ramp(span: Span, feather: int) -> np.ndarray:
    n = span.r1 - span.r0
    w = np.ones(n, dtype=np.float32)
    if feather > 0:
        i = np.arange(n, dtype=np.float32)
        if span.ramp_lo:
            w = np.minimum(w, (i + 0.5) / feather)
        if span.ramp_hi:
            w = np.minimum(w, (n - i - 0.5) / feather)
    return w


def blend_weights(tile: Tile, feather: int) -> np.ndarray:
    """Strictly positive float32 (region height, region width) weights: 1 inside, linear ramps
    over the feather band on sides shared with a neighbour. Neighbouring ramps sum to one."""
    return np.outer(_ramp(tile.rows, feather), _ramp(tile.cols, feather)).astype(np.float32)


def region_of(tile: Tile, window_values: np.ndarray) -> np.ndarray:
    """Cut a tile's blend region out of an array covering its window (first two axes)."""
    r, c = tile.rows, tile.cols
    return window_values[r.r0 - r.w0:r.r1 - r.w0, c.r0 - c.w0:c.r1 - c.w0]


def _segments(a: int, b: int, limit: int, period: int | None):
    """Split positions [a, b) into (src_offset, dst_start, length) runs that land contiguously
    inside [0, limit), taking positions modulo `period` when given."""
    p = a
    while p < b:
        if period is None:
            d, n = p, b - p
        else:
            d = p % period
            n = min(b - p, period - d)
        lo, hi = max(d, 0), min(d + n, limit)
        if hi > lo:
            yield p - a + (lo - d), lo, hi - lo
        p += n


def accumulate(out: np.ndarray, weight_sum: np.ndarray, tile: Tile, values: np.ndarray,
               weights: np.ndarray, period: int | None = None, extra: tuple | None = None) -> None:
    """Add `weights * values` of a tile's region into `out` and `weights` into `weight_sum`.

    `out` is (H, W, C) and `weight_sum` (H, W, 1) for the *unpadded* image: region pixels that
    fall in the padding are dropped, and with `period` (wrap) columns are taken modulo it.
    `extra=(array (H, W), values (rh, rw))` blends one more single-channel map the same way."""
    H, W = out.shape[:2]
    r, c = tile.rows, tile.cols
    for sy, dy, ny in _segments(r.r0, r.r1, H, None):
        for sx, dx, nx in _segments(c.r0, c.r1, W, period):
            w = weights[sy:sy + ny, sx:sx + nx, None]
            out[dy:dy + ny, dx:dx + nx] += w * values[sy:sy + ny, sx:sx + nx]
            weight_sum[dy:dy + ny, dx:dx + nx] += w
            if extra is not None:
                extra[0][dy:dy + ny, dx:dx + nx] += w[..., 0] * extra[1][sy:sy + ny, sx:sx + nx]
