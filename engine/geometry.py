"""Where a pixel sits on the sphere: extra input planes for models trained to know it.

Why: one flow converts both photos and 360° panoramas, and a crop of a panorama looks like
neither a photo nor the whole panorama: its rows are stretched by 1 / cos(latitude), the sky is
above it and the ground below. A model that is told "this is a panorama, and this row is at
latitude φ" need not split its capacity between guessing which kind of input it sees (MODEL_CARD,
runs W / WP and G). Such a model's ``model.json`` lists the planes under ``input.geometry``; its
graph input then has ``3 + len(geometry)`` channels: the display-encoded LDR, then these planes.
"""
from __future__ import annotations

import numpy as np

from .sphere import latitude

#: The planes a geometry-aware model takes after the LDR's three, in this order: 1 on a
#: panorama (0 on a photo) and the sine of each row's latitude (0 on a photo, which has none).
GEOMETRY_CHANNELS = ("panorama", "sin_latitude")


def geometry_planes(latitudes: np.ndarray, width: int) -> np.ndarray:
    """(rows, width, 2) float32 planes of panorama rows at ``latitudes`` (radians)."""
    lat = np.asarray(latitudes, dtype=np.float64)
    out = np.empty((lat.shape[0], int(width), len(GEOMETRY_CHANNELS)), dtype=np.float32)
    out[..., 0] = 1.0
    out[..., 1] = np.sin(lat)[:, None]
    return out


def photo_planes(height: int, width: int) -> np.ndarray:
    """The planes of a photo: zeros (not a panorama, no latitude)."""
    return np.zeros((int(height), int(width), len(GEOMETRY_CHANNELS)), dtype=np.float32)


def window_planes(y0: int, y1: int, width: int, image_height: int, panorama: bool) -> np.ndarray:
    """The planes of rows [y0, y1) of an image ``image_height`` tall (rows past its bottom are
    the stride padding), ``width`` columns: what the engine feeds beside each tile."""
    if not panorama:
        return photo_planes(y1 - y0, width)
    return geometry_planes(latitude(np.arange(y0, y1) + 0.5, image_height), width)
