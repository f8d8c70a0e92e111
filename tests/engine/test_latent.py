"""Latent field: crops equal the whole-image field, whatever the alignment; columns wrap."""
from __future__ import annotations

import numpy as np
import pytest

from engine.bundle import LatentSpec
from engine.latent import LatentField

SPECS = (LatentSpec("z1", 3, 2), LatentSpec("z2", 5, 4), LatentSpec("z3", 7, 8))


def _slice(full, spec, y0, x0, h, w):
    s = spec.scale
    return full[spec.name][:, :, y0 // s:(y0 + h) // s, x0 // s:(x0 + w) // s]


@pytest.mark.parametrize("block", [5, 64])
def test_crops_equal_whole_field(block):
    H, W = 96, 320  # at scale 2 this spans several 64-blocks; block=5 stresses odd boundaries
    f = LatentField(SPECS, H, W, seed=3, sample=1, temperature=1.0, block=block)
    full = f.full()
    assert full["z1"].shape == (1, 3, 48, 160) and full["z3"].shape == (1, 7, 12, 40)
    rng = np.random.default_rng(0)
    for _ in range(12):
        h = int(rng.integers(1, H // 8 + 1)) * 8
        w = int(rng.integers(1, W // 8 + 1)) * 8
        y0 = int(rng.integers(0, (H - h) // 8 + 1)) * 8
        x0 = int(rng.integers(0, (W - w) // 8 + 1)) * 8
        crop = f.crop(y0, x0, h, w)
        for spec in SPECS:
            np.testing.assert_array_equal(crop[spec.name], _slice(full, spec, y0, x0, h, w))


def test_field_is_independent_of_how_it_is_cut():
    """Two fields of the same image agree, whichever crops are requested first."""
    a = LatentField(SPECS, 256, 256, seed=9).crop(128, 136, 64, 96)
    b_field = LatentField(SPECS, 256, 256, seed=9)
    b_field.crop(0, 0, 256, 256)
    b = b_field.crop(128, 136, 64, 96)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == np.float32 and a[k].flags["C_CONTIGUOUS"]


def test_horizontal_wrap():
    H, W = 64, 200
    f = LatentField(SPECS, H, W, seed=1, block=16)
    full = f.full()
    crop = f.crop(8, -24, 32, 64)  # columns -24..40 -> W-24..W and 0..40
    for spec in SPECS:
        s = spec.scale
        expected = np.concatenate([full[spec.name][:, :, 8 // s:40 // s, (W - 24) // s:],
                                   full[spec.name][:, :, 8 // s:40 // s, :40 // s]], axis=3)
        np.testing.assert_array_equal(crop[spec.name], expected)
    right = f.crop(0, W - 16, 16, 48)  # past the right edge
    np.testing.assert_array_equal(right["z2"][:, :, :, 4:], full["z2"][:, :, :4, :8])


def test_temperature_seed_sample():
    base = LatentField(SPECS, 32, 32, seed=0).full()
    hot = LatentField(SPECS, 32, 32, seed=0, temperature=0.5).full()
    np.testing.assert_allclose(hot["z2"], 0.5 * base["z2"], rtol=1e-6)
    zero = LatentField(SPECS, 32, 32, seed=0, temperature=0.0).full()
    assert not zero["z1"].any()
    other_seed = LatentField(SPECS, 32, 32, seed=1).full()
    other_sample = LatentField(SPECS, 32, 32, seed=0, sample=1).full()
    assert not np.array_equal(base["z1"], other_seed["z1"])
    assert not np.array_equal(base["z1"], other_sample["z1"])
    again = LatentField(SPECS, 32, 32, seed=0).full()
    np.testing.assert_array_equal(base["z3"], again["z3"])
    # standardised: roughly N(0, 1)
    big = LatentField((LatentSpec("z", 4, 1),), 256, 256, seed=5).full()["z"]
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01


def test_bad_requests():
    f = LatentField(SPECS, 64, 64, seed=0)
    with pytest.raises(ValueError):
        f.crop(4, 0, 8, 8)  # not aligned to scale 8
    with pytest.raises(ValueError):
        f.crop(56, 0, 16, 8)  # rows beyond the image
    with pytest.raises(ValueError):
        LatentField(SPECS, 60, 64, seed=0)
    with pytest.raises(ValueError):
        LatentField(SPECS, 64, 64, seed=-1)
