"""Equirectangular geometry and area resampling, as pure numpy functions.

The engine's light stage (engine.light) and the evaluator's lighting metrics (training.metrics)
both weigh panorama pixels by the solid angle they cover; this is the one place that says how.

Convention (shared with training.camera): x right, y up, z forward; the centre column looks
along +z (longitude 0), column 0 is longitude -180 deg, row 0 is straight up.
"""
from __future__ import annotations

import numpy as np


def latitude(row_centres: np.ndarray, height: int) -> np.ndarray:
    """Latitude (radians, + up) at row coordinates of an equirectangular image ``height`` tall
    (a pixel centre is its row index + 0.5; coordinates past the bottom, such as the engine's
    stride padding, continue the formula, and its sine then mirrors as the padding does)."""
    return (0.5 - np.asarray(row_centres, dtype=np.float64) / height) * np.pi


def equirect_latitudes(height: int) -> np.ndarray:
    """Latitude (radians, + up) of each row's pixel centres."""
    return latitude(np.arange(height) + 0.5, height)


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


def _area_mean_along(a: np.ndarray, edges: np.ndarray, axis: int) -> np.ndarray:
    """Exact box average of `a` along `axis` over the footprints [edges[k], edges[k+1]), given
    in (fractional) input samples within [0, n]: partly covered samples count by their overlap.

    The integral of the piecewise-constant signal is a cumulative sum, read at the edges, so this
    is O(n) for any factor, unlike an overlap matrix (an 8K panorama costs what its pixels cost)."""
    n = a.shape[axis]
    idx = np.minimum(np.floor(edges).astype(np.int64), n - 1)
    frac = edges - idx                               # 1.0 at the far edge: the last sample in full
    cum = np.cumsum(a, axis=axis, dtype=np.float64)
    cum = np.concatenate([np.zeros_like(np.take(cum, [0], axis=axis)), cum], axis=axis)
    shape = [1] * a.ndim
    shape[axis] = len(edges)
    integral = np.take(cum, idx, axis=axis) + frac.reshape(shape) * np.take(a, idx, axis=axis)
    width = np.diff(edges).reshape(shape[:axis] + [len(edges) - 1] + shape[axis + 1:])
    return np.diff(integral, axis=axis) / width


#: Input bytes (float64, all channels) a resize band may hold at once.
BAND_BYTES = 8 << 20


def area_resize_rows(rows, height: int, width: int, channels: int, out_h: int, out_w: int) -> np.ndarray:
    """Area-average resize of an image read in row bands: `rows(r0, r1)` returns input rows
    [r0, r1) as an (r1 - r0, width, channels) array. Output rows are made a group at a time from
    only the input rows they cover, so no full-size temporary exists (an 8K or 16K panorama
    needs a few megabytes beyond the output). Returns (out_h, out_w, channels) float32."""
    if out_h < 1 or out_w < 1:
        raise ValueError(f"area_resize needs a non-empty output size, got {out_w}x{out_h}")
    row_edges = np.arange(out_h + 1) * (height / out_h)
    col_edges = np.arange(out_w + 1) * (width / out_w)
    per_row = max(1.0, height / out_h)
    group = max(1, int(BAND_BYTES // (width * channels * 8 * (per_row + 2))))
    out = np.empty((out_h, out_w, channels), dtype=np.float32)
    for k0 in range(0, out_h, group):
        k1 = min(out_h, k0 + group)
        i0, i1 = int(np.floor(row_edges[k0])), min(height, int(np.ceil(row_edges[k1])))
        band = np.asarray(rows(i0, i1)).reshape(i1 - i0, width, channels)
        cols = _area_mean_along(band, col_edges, axis=1)
        out[k0:k1] = _area_mean_along(cols, row_edges[k0:k1 + 1] - i0, axis=0)
    return out


def area_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Area-average resize of an H x W (x C) image to out_h x out_w (meant for downscaling: no
    aliasing, and the mean, i.e. the energy, is kept exactly for any factor), float32."""
    a = np.asarray(img)
    h, w = a.shape[:2]
    if (h, w) == (out_h, out_w):
        return np.asarray(a, dtype=np.float32)
    c = a.shape[2] if a.ndim == 3 else 1
    out = area_resize_rows(lambda r0, r1: a[r0:r1], h, w, c, out_h, out_w)
    return out if a.ndim == 3 else out[..., 0]
