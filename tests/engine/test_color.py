"""Transfer functions and stops helpers."""
from __future__ import annotations

import numpy as np

from engine import color


def test_srgb_roundtrip_and_known_values():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(color.linear_to_srgb(color.srgb_to_linear(x)), x, atol=2e-6)
    assert color.srgb_to_linear(np.float32(0.04045)) == np.float32(0.04045 / 12.92)
    np.testing.assert_allclose(color.srgb_to_linear(np.float32(0.5)), 0.214041, rtol=1e-5)
    assert color.srgb_to_linear(np.float32(1.0)) == 1.0
    assert color.srgb_to_linear(np.float32(1.5)) == 1.0  # display values above 1 are clipped


def test_luminance_exposure_stops():
    rgb = np.ones((2, 2, 3), np.float32)
    np.testing.assert_allclose(color.luminance(rgb), 1.0, rtol=1e-6)
    np.testing.assert_allclose(color.apply_exposure(rgb, 2), 4.0)
    assert color.stops(8.0) == 3.0 and color.stops(2.0, clip_point=4.0) == -1.0
    assert color.stops(0.0) == -np.inf
    rgb[0, 0] = 16
    assert abs(color.peak_stops(rgb) - 4.0) < 1e-6
