"""Equirectangular geometry and area resampling, as pure numpy functions.

The engine's light stage (engine.light) and the evaluator's lighting metrics (training.metrics)
both weigh panorama pixels by the solid angle they cover; this is the one place that says how.

Convention (shared with training.camera): x right, y up, z forward; the centre column looks
along +z (longitude 0), column 0 is longitude -180 deg, row 0 is straight up.
"""
from __future__ import annotations

import numpy as np


def equirect_latitudes(height: int) -> np.ndarray:
    """Latitude (radians, + up) of each row's pixel centres."""
    return (0.5 - (np.arange(height) + 0.5) / height) * np.pi


def equirect_longitudes(width: int) -> np.ndarray:
    """Longitude (radians) of each column's pixel centres; column 0 is near -pi."""
    return ((np.arange(width) + 0.5) / width - 0.5) * 2.0 * np.pi


def equirect_directions(height: int, width: int) -> np.ndarray:
    """Unit direction of each pixel centre (H x W x 3; x right, y up, z forward)."""
    lat, lon = equirect_latitudes(height), equirect_longitudes(width)
    cl, sl = np.cos(lat)[:, None], np.sin(lat)[:, None]
    d = np.empty((height, width, 3))
    d[..., 0] = cl * np.sin(lon)[None, :]
    d[..., 1] = np.broadcast_to(sl, (height, width))
    d[..., 2] = cl * np.cos(lon)[None, :]
    return d


def equirect_solid_angles(height: int, width: int) -> np.ndarray:
    """Exact solid angle (sr) of each pixel of an equirectangular image, per row (shape H).

    A pixel in row i spans longitudes 2*pi/W and latitudes [lat_bot, lat_top], so its solid angle
    is (2*pi/W) * (sin lat_top - sin lat_bot). Rows near the poles are tiny; weighting pixels
    equally instead would count the sky above a sun many times over. Sums to exactly 4*pi.
    """
    edges = (0.5 - np.arange(height + 1) / height) * np.pi
    return (2.0 * np.pi / width) * (np.sin(edges[:-1]) - np.sin(edges[1:]))


def _area_mean_along(a: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Exact box average of `a` along `axis` resampled to `n_out` samples, for any factor.

    Each output sample averages the input over its footprint [k n/n_out, (k+1) n/n_out),
    fractional input samples weighted by their overlap: the integral of the piecewise-constant
    signal is a cumulative sum, read at the (fractional) footprint edges. O(n), unlike an
    overlap matrix, so an 8K panorama costs what its pixels cost."""
    n = a.shape[axis]
    step = n / n_out
    edges = np.arange(n_out + 1) * step
    idx = np.minimum(np.floor(edges).astype(np.int64), n - 1)
    frac = edges - idx                               # 1.0 at the far edge: the last sample in full
    cum = np.cumsum(a, axis=axis, dtype=np.float64)
    cum = np.concatenate([np.zeros_like(np.take(cum, [0], axis=axis)), cum], axis=axis)
    shape = [1] * a.ndim
    shape[axis] = n_out + 1
    integral = np.take(cum, idx, axis=axis) + frac.reshape(shape) * np.take(a, idx, axis=axis)
    return np.diff(integral, axis=axis) / step


def area_resize(img: np.ndarray, out_h: int, out_w: int, rows_per_band: int = 256) -> np.ndarray:
    """Area-average resize of an H x W (x C) image to out_h x out_w (meant for downscaling: no
    aliasing, and the mean, i.e. the energy, is kept exactly for any factor). Columns are reduced
    in bands of rows, so the float64 working copies stay small for an 8K panorama."""
    a = np.asarray(img)
    h, w = a.shape[:2]
    if out_h < 1 or out_w < 1:
        raise ValueError(f"area_resize needs a non-empty output size, got {out_w}x{out_h}")
    if (h, w) == (out_h, out_w):
        return np.asarray(a, dtype=np.float32)
    cols = np.empty((h, out_w) + a.shape[2:], dtype=np.float64)
    for r0 in range(0, h, rows_per_band):
        cols[r0:r0 + rows_per_band] = _area_mean_along(a[r0:r0 + rows_per_band], out_w, axis=1)
    return _area_mean_along(cols, out_h, axis=0).astype(np.float32)
