"""The conversion pipeline as plain functions on numpy arrays (shared by the CLI and the add-on).

convert_array: LDR (H, W, 3) -> pad to the stride (mirror, or wrap for panoramas) -> windows of
the tile plan -> (window, flow sample) jobs grouped into batches of equal window shape, each
with its latents cropped from the whole-image field -> backend runs (pipelined where the
backend can, see engine.backends.run_batches) -> running mean / variance over a window's
samples (window-sized, never a list of full images) -> feather-blend into the output -> drop
the padding -> for panoramas, the light the clip hides (engine.light) -> exposure.
convert_file wraps it with reading the photo and writing the EXR atomically (write_result,
shared with the Ray pipeline in engine.ray_batch).
"""
from __future__ import annotations

import errno
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, light, scale
from .backends import run_batches
from .color import luminance, peak_stops
from .errors import Cancelled, InputError
from .geometry import window_planes
from .io import path_kind, read_ldr_raw, write_exr
from .latent import LatentField
from .limits import MAX_EXPOSURE_EV, MAX_TEMPERATURE
from .tiling import (PaddedSource, accumulate, blend_weights, default_overlap, min_tile, plan_tiles, region_of,
                     row_bands)

#: Predictions are clamped to this many times the clip point (about +24 stops): far above any
#: real highlight, but keeps a diverging sample from turning an average into inf.
MAX_RADIANCE = float(2**24)
#: Luminance floor (relative to the clip point) for the spread in stops, so black pixels do not
#: report huge log-domain noise.
SPREAD_FLOOR = 1e-4
PANORAMAS = ("auto", "on", "off")
#: Memory for recently drawn latent blocks, shared by all samples of an image. Neighbouring
#: tiles share blocks, so this makes "drawn once per image" true for horizontal neighbours;
#: vertically, only the blocks straddling a tile-row boundary are drawn twice (64 MB hold a
#: whole row of 1024-px tiles of a 4K panorama; the field of a 16K one would be 1.6 GB).
LATENT_CACHE_BYTES = 64 << 20


@dataclass
class ConvertOptions:
    temperature: float | None = None  # None -> bundle.default_temperature; must be >= 0
    seed: int = 0
    samples: int = 1                  # average of N flow samples
    uncertainty: bool = False         # also return per-pixel spread across samples (needs samples >= 2)
    tile: int = 1024                  # tile (window) size in px, including context
    exposure: float = 0.0             # EV applied to the output (x 2**EV)
    panorama: str = "auto"            # auto (2:1 aspect within 1%) | on | off -> horizontal wrap
    light: bool = True                # panoramas: add the light the clip hides (engine.light), when the model has a head
    full_resolution: bool = False     # run the flow at the image's own size even where engine.scale would reduce it

    def validate(self) -> None:
        """Raise InputError (one line, phrased like the CLI flag) on an invalid option."""
        t = self.temperature
        if t is not None and (not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 <= t <= MAX_TEMPERATURE):
            raise InputError(f"--temperature must be a number from 0 to {MAX_TEMPERATURE:g}, got {t}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"--seed must be a non-negative integer, got {self.seed}")
        if not isinstance(self.samples, (int, np.integer)) or self.samples < 1:
            raise InputError(f"--samples must be at least 1, got {self.samples}")
        if self.uncertainty and self.samples < 2:
            raise InputError(f"--uncertainty needs --samples 2 or more, got {self.samples}")
        if not isinstance(self.tile, (int, np.integer)) or self.tile < 1:
            raise InputError(f"--tile must be a positive number of pixels, got {self.tile}")
        if not math.isfinite(self.exposure) or abs(self.exposure) > MAX_EXPOSURE_EV:
            raise InputError(f"--exposure must be a number of stops from -{MAX_EXPOSURE_EV:g} to "
                             f"{MAX_EXPOSURE_EV:g}, got {self.exposure}")
        if self.panorama not in PANORAMAS:
            raise InputError(f"--panorama must be one of {', '.join(PANORAMAS)}, got {self.panorama!r}")
        if not isinstance(self.light, (bool, np.bool_)):
            raise InputError(f"light must be True or False, got {self.light!r}")
        if not isinstance(self.full_resolution, (bool, np.bool_)):
            raise InputError(f"full_resolution must be True or False, got {self.full_resolution!r}")


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

    def summary(self, dst) -> str:
        """The one line a batch prints per converted file: its peak and, for panoramas, the light
        the light stage added (the same line from the local and the Ray pipelines)."""
        peak = self.peak_stops
        # a photo clipped in one channel only can peak below the clip point in luminance
        line = (f"{dst}: peak {peak:+.1f} stops above clip" if peak >= 0
                else f"{dst}: peak {-peak:.1f} stops below clip")
        if self.info.get("light_stops"):
            line += f", clipped light raised {self.info['light_stops']:.1f} stops"
        if self.info.get("flow_factor", 1) > 1:
            line += f", clipped areas judged at 1/{self.info['flow_factor']} size"
        return line


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
    independent of the tile size, of the batching and of the backend (up to its arithmetic).

    An image whose clipped areas are deeper than the flow's window can judge is converted at
    the reduction `engine.scale.flow_view` picks, and the flow's correction is carried back up
    to full resolution (`full_resolution` turns this off)."""
    t_start = time.perf_counter()
    options = options or ConvertOptions()
    options.validate()
    image = _as_rgb(ldr)
    H, W = image.shape[:2]
    wrap = options.panorama == "on" or (options.panorama == "auto" and is_panorama(H, W))
    # One flow per kind of input where the bundle has two: photos go to its photo flow.
    photo_flow = not wrap and getattr(backend, "photo", None) is not None and getattr(bundle, "photo", None) is not None
    if photo_flow:
        backend, flow_sha256 = backend.photo, bundle.photo.sha256
    else:
        flow_sha256 = bundle.sha256
    temperature = bundle.default_temperature if options.temperature is None else float(options.temperature)
    factor, small = (1, image) if options.full_resolution else scale.flow_view(image, wrap, bundle.flow_scale)
    if factor == 1:
        out, spread, info = _run_flow(image, backend, bundle, options, temperature, wrap, progress, cancel)
    else:
        low, low_spread, info = _run_flow(small, backend, bundle, options, temperature, wrap, progress, cancel)
        eps = float(bundle.target_transform.get("eps", 1e-3))
        correction = scale.log_correction(low, small, eps)
        del low, small
        out = np.empty((H, W, 3), dtype=np.float32)
        scale.apply_correction(out, image, correction, eps)
        spread = None if low_spread is None else scale.upsample(low_spread, H, W)
    info["flow_factor"] = factor
    info["flow"] = "photo" if photo_flow else "main"
    info["flow_sha256"] = flow_sha256
    gain = np.float32(2.0 ** float(options.exposure))
    light_stops = None
    if wrap and options.light and bundle.light is not None:
        # Peak kept so that after the exposure a 16-bit float EXR still holds the added light.
        peak = light.PEAK * bundle.clip_point / max(1.0, float(gain))
        light_stops = light.restore_light(out, image, bundle.light, peak)
    if gain != 1:
        for r0, r1 in row_bands(H, W):
            o = out[r0:r1]
            o *= gain
            np.nan_to_num(o, copy=False, nan=0.0, posinf=MAX_RADIANCE * float(gain), neginf=0.0)
    info["light_stops"] = light_stops
    return ConvertResult(out, spread, wrap, time.perf_counter() - t_start,
                         clip_point=bundle.clip_point * float(gain), info=info)


def _run_flow(image: np.ndarray, backend, bundle, options: ConvertOptions, temperature: float, wrap: bool,
              progress: Callable[[float], None] | None, cancel: Callable[[], bool] | None):
    """The flow over the whole image, tile by tile: (hdr, spread or None, info).

    Memory is bounded by the tile size, not the image size: the only full-size arrays are the
    input (in its storage type), the float32 output, the float32 blend-weight sum and, with
    `uncertainty`, the float32 spread map. Windows, latents and predictions exist one batch at
    a time; the latents are drawn once per image block (engine.latent)."""
    H, W = image.shape[:2]
    stride = bundle.stride
    src = PaddedSource(image, stride, wrap=wrap)
    Hp, Wp = src.padded_height, src.padded_width
    overlap = default_overlap(bundle.receptive_field, stride)
    tile = (int(options.tile) // stride) * stride
    if tile < min_tile(overlap, stride):
        raise InputError(f"--tile {options.tile} is too small for model {bundle.name}: it needs at least "
                         f"{min_tile(overlap, stride)} px (2 x {overlap} px context + {stride})")
    plan = plan_tiles(Hp, Wp, tile, overlap, stride, wrap=wrap)
    samples = int(options.samples)
    fields = [LatentField(bundle.latents, Hp, Wp, seed=int(options.seed), sample=s, temperature=temperature,
                          cache_bytes=LATENT_CACHE_BYTES // samples) for s in range(samples)]

    want_spread = options.uncertainty and samples >= 2
    out = np.zeros((H, W, 3), dtype=np.float32)
    wsum = np.zeros((H, W, 1), dtype=np.float32)
    spread = np.zeros((H, W), dtype=np.float32) if want_spread else None
    total = len(plan.tiles) * samples
    batches = _batches(plan, samples, backend)
    state: dict[int, list] = {}  # tile index -> [mean, lmean, m2] while its samples come in
    done = 0

    def produce():
        for jobs in batches:
            if cancel is not None and cancel():
                raise Cancelled("conversion cancelled")
            _, _, th, tw = plan.tiles[jobs[0][0]].window
            x = np.empty((len(jobs), bundle.input_channels, th, tw), dtype=np.float32)
            lat = {spec.name: np.empty(spec.shape(len(jobs), th, tw), dtype=np.float32) for spec in bundle.latents}
            last = None
            for i, (ti, s) in enumerate(jobs):
                y0, x0, _, _ = plan.tiles[ti].window
                if ti == last:
                    x[i] = x[i - 1]
                else:
                    x[i, :3] = src.read(y0, y0 + th, x0, x0 + tw).transpose(2, 0, 1)
                    if bundle.geometry:  # a geometry model is told where each row sits on the sphere
                        x[i, 3:] = window_planes(y0, y0 + th, tw, H, panorama=wrap).transpose(2, 0, 1)
                last = ti
                for name, z in fields[s].crop(y0, x0, th, tw).items():
                    lat[name][i] = z[0]
            yield jobs, x, lat
            del x, lat  # one batch of windows in memory at a time, not this one and the next

    for jobs, pred in run_batches(backend, produce()):
        pred = np.asarray(pred)
        _, _, th, tw = plan.tiles[jobs[0][0]].window
        if pred.shape != (len(jobs), 3, th, tw):
            raise RuntimeError(f"backend {getattr(backend, 'name', '?')} returned shape {pred.shape}, "
                               f"expected {(len(jobs), 3, th, tw)}")
        for i, (ti, s) in enumerate(jobs):
            tile_ = plan.tiles[ti]
            y = region_of(tile_, pred[i].transpose(1, 2, 0))
            y = np.clip(np.nan_to_num(y, nan=0.0, posinf=MAX_RADIANCE, neginf=0.0), 0.0, MAX_RADIANCE)
            y = y.astype(np.float32, copy=False)
            st = state.setdefault(ti, [None, None, None])
            if st[0] is None:
                st[0] = y.copy()
            else:
                st[0] += (y - st[0]) / np.float32(s + 1)
            if want_spread:  # Welford on log2 luminance: spread in stops, scale-free
                ly = np.log2(np.maximum(luminance(y), SPREAD_FLOOR * bundle.clip_point))
                if st[1] is None:
                    st[1], st[2] = ly, np.zeros_like(ly)
                else:
                    delta = ly - st[1]
                    st[1] = st[1] + delta / np.float32(s + 1)
                    st[2] += delta * (ly - st[1])
            if s == samples - 1:  # the tile is complete: blend it and forget it
                mean, _, m2 = state.pop(ti)
                extra = None
                if want_spread:
                    extra = (spread, np.sqrt(np.maximum(m2 / np.float32(samples - 1), 0.0)).astype(np.float32))
                accumulate(out, wsum, tile_, mean, blend_weights(tile_, plan.feather),
                           period=Wp if wrap else None, extra=extra)
        done += len(jobs)
        del pred, y
        if progress is not None:
            progress(done / total)

    for r0, r1 in row_bands(H, W):
        o = out[r0:r1]
        o /= wsum[r0:r1]
        if spread is not None:
            spread[r0:r1] /= wsum[r0:r1, :, 0]
        np.nan_to_num(o, copy=False, nan=0.0, posinf=MAX_RADIANCE, neginf=0.0)
        np.maximum(o, 0.0, out=o)
    del wsum
    info = {"tiles": len(plan.tiles), "tile": tile, "overlap": overlap, "temperature": temperature,
            "seed": int(options.seed), "samples": samples, "runs": len(batches)}
    return out, spread, info


def _batches(plan, samples: int, backend) -> list[list[tuple[int, int]]]:
    """Group the (tile, sample) jobs, in tile-major order, into runs of equal window shape.

    Only consecutive jobs are grouped, so a tile's samples complete in order and at most one
    batch of windows is in flight; the size per shape comes from `backend.batch_size(h, w)`
    (1 for backends that do not batch)."""
    sizer = getattr(backend, "batch_size", None)
    batches: list[list[tuple[int, int]]] = []
    cur: list[tuple[int, int]] = []
    cur_shape = None
    limit = 1
    for ti, t in enumerate(plan.tiles):
        shape = t.window[2:]
        for s in range(samples):
            if cur and (shape != cur_shape or len(cur) >= limit):
                batches.append(cur)
                cur = []
            if not cur:
                cur_shape = shape
                limit = max(1, int(sizer(*shape))) if sizer is not None else 1
            cur.append((ti, s))
    if cur:
        batches.append(cur)
    return batches


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
    dst_kind = path_kind(dst)  # a folder on the way that the user may not enter is an InputError
    if dst_kind != "missing" and path_kind(src) != "missing" and src.resolve() == dst.resolve():
        raise InputError(f"{dst}: output would overwrite the input")
    if dst_kind == "dir":
        raise InputError(f"{dst}: output is a folder, not a file")
    if dst_kind == "file" and not overwrite:
        return None
    image = read_ldr_raw(src)
    result = convert_array(image, backend, bundle, options, progress=progress, cancel=cancel)
    del image  # the input's memory is free before the output is encoded
    write_result(dst, src.name, result, bundle, options, half=half, compression=compression)
    return result


def exr_header(source_name: str, result: ConvertResult, bundle, options: ConvertOptions) -> dict:
    """The OpenEXR header attributes recording how an output was made."""
    header = {
        "software": f"hdrcnf {__version__}",
        "hdrcnf_model": f"{bundle.name} {bundle.version}",
        "hdrcnf_model_sha256": result.info.get("flow_sha256", bundle.sha256),   # the flow that ran
        "hdrcnf_flow": result.info.get("flow", "main"),
        "hdrcnf_seed": str(result.info["seed"]),
        "hdrcnf_temperature": f"{result.info['temperature']:g}",
        "hdrcnf_samples": str(result.info["samples"]),
        "hdrcnf_exposure": f"{float(options.exposure):g}",
        "hdrcnf_source": source_name,
        # 1, or the reduction engine.scale ran the flow at (what --full-resolution would change)
        "hdrcnf_flow_factor": str(result.info.get("flow_factor", 1)),
    }
    if result.info.get("light_stops") is not None:
        header["hdrcnf_light_stops"] = f"{result.info['light_stops']:.3f}"
    if result.panorama:
        header["envmap"] = "latlong"
    return header


def write_result(dst, source_name: str, result: ConvertResult, bundle, options: ConvertOptions,
                 half: bool = True, compression: str = "zip") -> None:
    """Write a conversion result (and its uncertainty channel) to the EXR `dst`, atomically.
    Shared by the local batch and the Ray pipeline so both write identical files."""
    dst = Path(dst)
    extra = {"uncertainty": result.spread} if result.spread is not None else None
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_exr(dst, result.hdr, half=half, compression=compression, extra_channels=extra,
                  header=_exr_header(exr_header(source_name, result, bundle, options)))
    except OSError as e:  # permissions, read-only or full disk: the user's output path, not our bug
        raise InputError(f"{dst}: cannot write output: {e.strerror or e}") from None
    except RuntimeError as e:  # OpenEXR reports the same failures as RuntimeError, with the OS's words
        reason = _os_write_failure(str(e))
        if reason is None:
            raise
        raise InputError(f"{dst}: cannot write output: {reason}") from None


# The OS errors a write can meet on the user's side (full disk or quota, permissions, read-only or
# failing storage, file size limit): OpenEXR's RuntimeError carries their strerror text.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.EFBIG)


def _os_write_failure(message: str) -> str | None:
    for code in _WRITE_ERRNOS:
        reason = os.strerror(code)
        if reason in message:
            return reason
    return None


def _exr_header(h: dict) -> dict:
    """Map our header fields to OpenEXR attributes (envmap needs its enum, others are strings)."""
    import OpenEXR

    out = dict(h)
    if out.get("envmap") == "latlong":
        out["envmap"] = OpenEXR.ENVMAP_LATLONG
    return out
