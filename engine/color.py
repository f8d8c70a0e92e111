"""Colour math as pure numpy functions: transfer functions, luminance, exposure, stops.

Kept separate from the pipeline so the add-on, the evaluator and the tests can reuse the exact
same definitions (the training graph has a torch twin of `srgb_to_linear`).
"""
from __future__ import annotations

import numpy as np

#: Rec. 709 / sRGB luminance weights (linear RGB).
REC709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Exact piecewise sRGB EOTF (IEC 61966-2-1). Values are clipped to [0, 1] first, because
    display-encoded inputs outside that range carry no meaning."""
    # float64 inside so the clip point maps to exactly 1.0 (float32 gives 1.0000001).
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Exact inverse of `srgb_to_linear` for x >= 0 (negative values are clipped to 0). Values
    above 1 are extended with the same power law rather than clipped, so HDR previews keep detail
    until the caller decides to clip."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1.0 / 2.4) - 0.055).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 relative luminance of linear RGB (last axis = channels) -> array without it."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return rgb[..., 0] * REC709[0] + rgb[..., 1] * REC709[1] + rgb[..., 2] * REC709[2]


def exposure_scale(ev: float) -> float:
    """Linear factor of an exposure change of `ev` stops."""
    return float(2.0 ** float(ev))


def apply_exposure(rgb: np.ndarray, ev: float) -> np.ndarray:
    """Scale linear radiance by 2**ev (returns a new float32 array)."""
    return (np.asarray(rgb, dtype=np.float32) * np.float32(exposure_scale(ev))).astype(np.float32)


def stops(value, clip_point: float = 1.0):
    """log2(value / clip_point): how many stops `value` lies above (or below, negative) the clip
    point. Zero or negative values give -inf rather than a warning."""
    v = np.asarray(value, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(v > 0, np.log2(np.maximum(v, 1e-300) / float(clip_point)), -np.inf)
    return float(out) if out.ndim == 0 else out


def peak_stops(rgb: np.ndarray, clip_point: float = 1.0) -> float:
    """Stops of the brightest pixel's luminance above the clip point (the number the CLI prints
    per file: a quick read of how much highlight energy the model restored)."""
    lum = luminance(rgb)
    return stops(float(lum.max()) if lum.size else 0.0, clip_point)
