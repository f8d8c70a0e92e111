"""The camera model: requested clip fraction met, uint8 output, curves monotone, JPEG path,
perspective crops where the geometry says."""
import numpy as np
import pytest

from engine.io import read_hdr
from training.camera import (CURVE_FAMILIES, direction_to_equirect, make_curve, perspective_crop, synthesize)


@pytest.mark.parametrize("fraction", [0.0, 0.03, 0.12, 0.2])
@pytest.mark.parametrize("curve", CURVE_FAMILIES)
def test_clip_fraction_met(hdr_dir, fraction, curve):
    hdr = read_hdr(hdr_dir / "3ddemodata_kloppenheim_05.exr")
    s = synthesize(hdr, np.random.default_rng(1), clip_fraction=fraction, curve=curve, jpeg_quality=None)
    assert s.ldr.dtype == np.uint8 and s.ldr.shape == hdr.shape
    measured = float((s.ldr == 255).any(axis=-1).mean())
    assert abs(measured - fraction) <= 0.02, measured
    assert abs(float(s.clipped.mean()) - fraction) <= 0.02
    assert s.target.dtype == np.float32 and float(s.target.max()) >= 1.0 - 1e-6


@pytest.mark.parametrize("family", CURVE_FAMILIES)
def test_curves_monotone_and_normalised(family):
    for seed in range(5):
        c = make_curve(family, np.random.default_rng(seed))
        y = c(np.linspace(0, 1, 1000))
        assert np.all(np.diff(y) >= 0) and abs(y[0]) < 1e-6 and abs(y[-1] - 1) < 1e-6


def test_jpeg_path_changes_pixels_but_stays_close(hdr_dir):
    hdr = read_hdr(hdr_dir / "3ddemodata_circus_arena.exr")
    png = synthesize(hdr, np.random.default_rng(3), clip_fraction=0.05, curve="srgb", jpeg_quality=None)
    jpg = synthesize(hdr, np.random.default_rng(3), clip_fraction=0.05, curve="srgb", jpeg_quality=60)
    assert jpg.ldr.dtype == np.uint8
    diff = np.abs(png.ldr.astype(int) - jpg.ldr.astype(int))
    assert diff.max() > 0 and diff.mean() < 8


def test_random_camera_is_deterministic_per_seed(hdr_dir):
    hdr = read_hdr(hdr_dir / "hdrify_blouberg_sunrise_2.exr")
    a = synthesize(hdr, np.random.default_rng(7))
    b = synthesize(hdr, np.random.default_rng(7))
    assert np.array_equal(a.ldr, b.ldr) and np.array_equal(a.target, b.target)


def _dot_pano(lon_deg, lat_deg, h=256, w=512):
    pano = np.full((h, w, 3), 0.1, np.float32)
    d = np.array([np.cos(np.radians(lat_deg)) * np.sin(np.radians(lon_deg)), np.sin(np.radians(lat_deg)),
                  np.cos(np.radians(lat_deg)) * np.cos(np.radians(lon_deg))])
    r, c = direction_to_equirect(d, h, w)
    pano[int(round(r)) - 1:int(round(r)) + 2, int(round(c)) - 1:int(round(c)) + 2] = 100.0
    return pano


def _peak(img):
    lum = img.mean(axis=-1)
    ys, xs = np.nonzero(lum >= lum.max() * 0.5)
    return ys.mean(), xs.mean()


def test_perspective_crop_geometry():
    pano = _dot_pano(60.0, 20.0)
    out = 101
    centred = perspective_crop(pano, 60.0, 20.0, 60.0, out, out)
    y, x = _peak(centred)
    assert abs(y - out / 2 + 0.5) <= 1.5 and abs(x - out / 2 + 0.5) <= 1.5
    # look 15 deg to the right of the dot (no pitch): the dot appears left of centre by f*tan(15 deg)
    pano0 = _dot_pano(60.0, 0.0)
    side = perspective_crop(pano0, 75.0, 0.0, 60.0, out, out)
    f = 0.5 * out / np.tan(np.radians(30.0))
    y, x = _peak(side)
    assert abs((out / 2 - 0.5 - x) - f * np.tan(np.radians(15.0))) <= 1.5
    assert abs(y - out / 2 + 0.5) <= 1.5
    # across the seam: a dot at longitude 179 seen from yaw -179 is 2 deg to the left
    seam = perspective_crop(_dot_pano(179.0, 0.0), -179.0, 0.0, 60.0, out, out)
    y, x = _peak(seam)
    assert abs((out / 2 - 0.5 - x) - f * np.tan(np.radians(2.0))) <= 1.5
