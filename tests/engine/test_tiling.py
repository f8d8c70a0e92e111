"""Tile plans cover the image, weights are positive and blend to one, padding is right."""
from __future__ import annotations

import numpy as np
import pytest

from engine.tiling import (PaddedSource, accumulate, blend_weights, default_feather, pad_to_stride,
                           padded_size, plan_tiles, region_of)


def _coverage(plan, H, W):
    out = np.zeros((H, W, 1), np.float32)
    wsum = np.zeros((H, W, 1), np.float32)
    for t in plan.tiles:
        w = blend_weights(t, plan.feather)
        assert w.min() > 0
        ones = np.ones(w.shape + (1,), np.float32)
        accumulate(out, wsum, t, ones, w, period=plan.width if plan.wrap else None)
    return out, wsum


@pytest.mark.parametrize("H, W, tile, overlap, wrap", [
    (64, 128, 1024, 96, False),
    (136, 264, 64, 16, False),
    (200, 720, 120, 24, False),
    (128, 256, 96, 32, True),
    (64, 128, 1024, 96, True),
    (48, 80, 24, 8, True),
])
def test_plan_covers_image(H, W, tile, overlap, wrap):
    plan = plan_tiles(H, W, tile, overlap, 8, wrap=wrap)
    for t in plan.tiles:
        y0, x0, h, w = t.window
        assert h <= tile and w <= tile
        assert y0 % 8 == 0 and x0 % 8 == 0 and h % 8 == 0 and w % 8 == 0
        assert 0 <= y0 and y0 + h <= H
        if not wrap:
            assert 0 <= x0 and x0 + w <= W
        # the blend region lies inside the window
        assert t.rows.w0 <= t.rows.r0 < t.rows.r1 <= t.rows.w1
        assert t.cols.w0 <= t.cols.r0 < t.cols.r1 <= t.cols.w1
    out, wsum = _coverage(plan, H, W)
    assert wsum.min() > 0
    np.testing.assert_allclose(out / wsum, 1.0, rtol=1e-6)
    if wrap:  # every window has context on both sides, even a single one
        assert all(t.cols.w0 < 0 or t.cols.ramp_lo for t in plan.tiles)


def test_neighbouring_ramps_sum_to_one():
    plan = plan_tiles(8, 512, 160, 32, 8)
    _, wsum = _coverage(plan, 8, 512)
    np.testing.assert_allclose(wsum, 1.0, rtol=1e-6)
    assert plan.feather == default_feather(32) == 32


def test_single_tile_when_it_fits():
    plan = plan_tiles(64, 128, 1024, 96, 8)
    assert len(plan.tiles) == 1 and plan.tiles[0].window == (0, 0, 64, 128)


def test_plan_errors():
    with pytest.raises(ValueError):
        plan_tiles(60, 64, 64, 8, 8)  # height not a multiple of the stride
    with pytest.raises(ValueError):
        plan_tiles(64, 512, 32, 16, 8)  # tile cannot hold a core between two contexts


def test_pad_reflect_matches_numpy():
    img = np.random.default_rng(0).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    padded = pad_to_stride(img, 8)
    assert padded.shape == (16, 24, 3) and padded.dtype == np.float32
    expected = np.pad(img, ((0, 3), (0, 3), (0, 0)), mode="reflect").astype(np.float32) / 255
    np.testing.assert_array_equal(padded, expected)
    assert padded_size(13, 21, 8) == (16, 24)


def test_pad_wrap_bridges_last_to_first_column():
    img = np.zeros((8, 13, 3), np.float32)
    img[:, 0] = 1.0
    img[:, -1] = 0.0
    src = PaddedSource(img, 8, wrap=True)
    padded = pad_to_stride(img, 8, wrap=True)
    bridge = padded[0, 13:, 0]
    assert np.all(np.diff(bridge) > 0) and 0 < bridge.min() and bridge.max() < 1  # a ramp 0 -> 1
    # columns outside the padded width wrap around
    win = src.read(0, 8, -8, 8)
    np.testing.assert_array_equal(win[:, 8:], padded[:, :8])
    np.testing.assert_array_equal(win[:, :8], padded[:, 8:16])


def test_region_of_and_uint16_source():
    img = (np.arange(16 * 16 * 3).reshape(16, 16, 3) * 100).astype(np.uint16)
    src = PaddedSource(img, 8)
    np.testing.assert_array_equal(src.read(0, 16, 0, 16), img.astype(np.float32) / 65535)
    plan = plan_tiles(16, 16, 1024, 8, 8)
    vals = np.arange(16 * 16).reshape(16, 16)
    np.testing.assert_array_equal(region_of(plan.tiles[0], vals), vals)
