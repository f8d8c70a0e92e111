"""The conversion pipeline as plain functions on numpy arrays (shared by the CLI and the add-on).

convert_array: LDR (H, W, 3) -> pad to the stride (mirror, or wrap for panoramas) -> windows of
the tile plan -> per window and per flow sample: latents cropped from the whole-image field,
backend.run -> running mean / variance over samples (window-sized, never a list of full images)
-> feather-blend into the output -> drop the padding -> exposure.
convert_file wraps it with reading the photo and writing the EXR atomically.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .color import luminance, peak_stops
from .errors import Cancelled, InputError
from .io import read_ldr_raw, write_exr
from .latent import LatentField
from .tiling import PaddedSource, accumulate, blend_weights, default_overlap, min_tile, plan_tiles, region_of

#: Predictions are clamped to this many times the clip point (about +24 stops): far above any
#: real highlight, but keeps a diverging sample from turning an average into inf.
MAX_RADIANCE = float(2**24)
#: Luminance floor (relative to the clip point) for the spread in stops, so black pixels do not
#: report huge log-domain noise.
SPREAD_FLOOR = 1e-4
PANORAMAS = ("auto", "on", "off")


@dataclass
class ConvertOptions:
    temperature: float | None = None  # None -> bundle.default_temperature; must be >= 0
    seed: int = 0
    samples: int = 1                  # average of N flow samples
    uncertainty: bool = False         # also return per-pixel spread across samples (needs samples >= 2)
    tile: int = 1024                  # tile (window) size in px, including context
    exposure: float = 0.0             # EV applied to the output (x 2**EV)
    panorama: str = "auto"            # auto (2:1 aspect within 1%) | on | off -> horizontal wrap

    def validate(self) -> None:
        """Raise InputError (one line, phrased like the CLI flag) on an invalid option."""
        t = self.temperature
        if t is not None and (not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0):
            raise InputError(f"--temperature must be a finite number >= 0, got {t}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"--seed must be a non-negative integer, got {self.seed}")
        if not isinstance(self.samples, (int, np.integer)) or self.samples < 1:
            raise InputError(f"--samples must be at least 1, got {self.samples}")
        if self.uncertainty and self.samples < 2:
            raise InputError(f"--uncertainty needs --samples 2 or more, got {self.samples}")
        if not isinstance(self.tile, (int, np.integer)) or self.tile < 1:
            raise InputError(f"--tile must be a positive number of pixels, got {self.tile}")
        if not math.isfinite(self.exposure):
            raise InputError(f"--exposure must be a finite number, got {self.exposure}")
        if self.panorama not in PANORAMAS:
            raise InputError(f"--panorama must be one of {', '.join(PANORAMAS)}, got {self.panorama!r}")


@dataclass
class ConvertResult:
    hdr: np.ndarray                 # (H, W, 3) float32 linear, clip point 1.0 * 2**exposure
    spread: np.ndarray | None       # (H, W) float32 std of log2 luminance over samples (stops)
    panorama: bool
    seconds: float
    clip_point: float = 1.0
    info: dict = field(default_factory=dict)

    @property
    def peak_stops(self) -> float:
        """log2(max luminance / clip point)."""
        return peak_stops(self.hdr, self.clip_point)


def is_panorama(height: int, width: int) -> bool:
    """Equirectangular guess: a 2:1 aspect ratio within 1 %."""
    return height > 0 and abs(width / (2.0 * height) - 1.0) <= 0.01


def _as_rgb(ldr: np.ndarray) -> np.ndarray:
    a = np.asarray(ldr)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise InputError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    if not (a.dtype in (np.uint8, np.uint16) or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"image dtype {a.dtype} not supported (uint8, uint16 or float in [0, 1])")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"image is empty ({a.shape[1]}x{a.shape[0]})")
    return a


def convert_array(ldr: np.ndarray, backend, bundle, options: ConvertOptions | None = None,
                  progress: Callable[[float], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> ConvertResult:
    """Convert one LDR image to linear HDR.

    `ldr`: (H, W, 3) display-encoded, uint8 / uint16 / float in [0, 1] (gray and RGBA accepted).
    `progress(fraction)` is called after every model run; `cancel()` is polled between runs
    and raises engine.errors.Cancelled when it returns True. Deterministic for a given seed:
    independent of the tile size and of the backend (up to its arithmetic)."""
    t_start = time.perf_counter()
    options = options or ConvertOptions()
    options.validate()
    image = _as_rgb(ldr)
    H, W = image.shape[:2]
    wrap = options.panorama == "on" or (options.panorama == "auto" and is_panorama(H, W))
    stride = bundle.stride
    temperature = bundle.default_temperature if options.temperature is None else float(options.temperature)

    src = PaddedSource(image, stride, wrap=wrap)
    Hp, Wp = src.padded_height, src.padded_width
    overlap = default_overlap(bundle.receptive_field, stride)
    tile = (int(options.tile) // stride) * stride
    if tile < min_tile(overlap, stride):
        raise InputError(f"--tile {options.tile} is too small for model {bundle.name}: it needs at least "
                         f"{min_tile(overlap, stride)} px (2 x {overlap} px context + {stride})")
    plan = plan_tiles(Hp, Wp, tile, overlap, stride, wrap=wrap)
    fields = [LatentField(bundle.latents, Hp, Wp, seed=int(options.seed), sample=s, temperature=temperature)
              for s in range(options.samples)]

    want_spread = options.uncertainty and options.samples >= 2
    out = np.zeros((H, W, 3), dtype=np.float32)
    wsum = np.zeros((H, W, 1), dtype=np.float32)
    spread = np.zeros((H, W), dtype=np.float32) if want_spread else None
    total = len(plan.tiles) * options.samples
    done = 0
    for tile_ in plan.tiles:
        y0, x0, th, tw = tile_.window
        x = np.ascontiguousarray(src.read(y0, y0 + th, x0, x0 + tw).transpose(2, 0, 1)[None])
        mean = None
        m2 = None
        lmean = None
        for s, fld in enumerate(fields):
            if cancel is not None and cancel():
                raise Cancelled("conversion cancelled")
            pred = np.asarray(backend.run(x, fld.crop(y0, x0, th, tw)))
            if pred.shape != (1, 3, th, tw):
                raise RuntimeError(f"backend {getattr(backend, 'name', '?')} returned shape {pred.shape}, "
                                   f"expected {(1, 3, th, tw)}")
            y = region_of(tile_, pred[0].transpose(1, 2, 0))
            y = np.clip(np.nan_to_num(y, nan=0.0, posinf=MAX_RADIANCE, neginf=0.0), 0.0, MAX_RADIANCE)
            y = y.astype(np.float32, copy=False)
            if mean is None:
                mean = y.copy()
            else:
                mean += (y - mean) / np.float32(s + 1)
            if want_spread:  # Welford on log2 luminance: spread in stops, scale-free
                ly = np.log2(np.maximum(luminance(y), SPREAD_FLOOR * bundle.clip_point))
                if lmean is None:
                    lmean, m2 = ly, np.zeros_like(ly)
                else:
                    delta = ly - lmean
                    lmean = lmean + delta / np.float32(s + 1)
                    m2 += delta * (ly - lmean)
            done += 1
            if progress is not None:
                progress(done / total)
        weights = blend_weights(tile_, plan.feather)
        extra = None
        if want_spread:
            extra = (spread, np.sqrt(np.maximum(m2 / np.float32(options.samples - 1), 0.0)).astype(np.float32))
        accumulate(out, wsum, tile_, mean, weights, period=Wp if wrap else None, extra=extra)

    out /= wsum
    if spread is not None:
        spread /= wsum[..., 0]
    scale = np.float32(2.0 ** float(options.exposure))
    if scale != 1:
        out *= scale
    np.nan_to_num(out, copy=False, nan=0.0, posinf=MAX_RADIANCE * float(scale), neginf=0.0)
    np.maximum(out, 0.0, out=out)
    info = {"tiles": len(plan.tiles), "tile": tile, "overlap": overlap, "temperature": temperature,
            "seed": int(options.seed), "samples": int(options.samples)}
    return ConvertResult(out, spread, wrap, time.perf_counter() - t_start,
                         clip_point=bundle.clip_point * float(scale), info=info)


def convert_file(src, dst, backend, bundle, options: ConvertOptions | None = None, overwrite: bool = False,
                 half: bool = True, progress: Callable[[float], None] | None = None,
                 compression: str = "zip", cancel: Callable[[], bool] | None = None) -> ConvertResult | None:
    """Convert the photo `src` to the OpenEXR `dst` (atomic write). Returns None when `dst`
    exists and `overwrite` is False (resumable batches). With `options.uncertainty` the spread
    is stored as an extra "uncertainty" channel. Never modifies `src`."""
    src, dst = Path(src), Path(dst)
    options = options or ConvertOptions()
    options.validate()
    if dst.suffix.lower() != ".exr":
        raise InputError(f"{dst}: output must be an .exr file")
    if src.exists() and dst.exists() and src.resolve() == dst.resolve():
        raise InputError(f"{dst}: output would overwrite the input")
    if dst.exists() and not overwrite:
        return None
    if dst.is_dir():
        raise InputError(f"{dst}: output is a folder, not a file")
    image = read_ldr_raw(src)
    result = convert_array(image, backend, bundle, options, progress=progress, cancel=cancel)
    header = {
        "software": f"hdrcnf {__version__}",
        "hdrcnf_model": f"{bundle.name} {bundle.version}",
        "hdrcnf_model_sha256": bundle.sha256,
        "hdrcnf_seed": str(result.info["seed"]),
        "hdrcnf_temperature": f"{result.info['temperature']:g}",
        "hdrcnf_samples": str(result.info["samples"]),
        "hdrcnf_exposure": f"{float(options.exposure):g}",
        "hdrcnf_source": src.name,
    }
    if result.panorama:
        header["envmap"] = "latlong"
    extra = {"uncertainty": result.spread} if result.spread is not None else None
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_exr(dst, result.hdr, half=half, compression=compression, extra_channels=extra,
                  header=_exr_header(header))
    except OSError as e:  # permissions, read-only or full disk: the user's output path, not our bug
        raise InputError(f"{dst}: cannot write output: {e.strerror or e}") from None
    return result


def _exr_header(h: dict) -> dict:
    """Map our header fields to OpenEXR attributes (envmap needs its enum, others are strings)."""
    import OpenEXR

    out = dict(h)
    if out.get("envmap") == "latlong":
        out["envmap"] = OpenEXR.ENVMAP_LATLONG
    return out
