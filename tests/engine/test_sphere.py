"""Equirectangular geometry and area resampling (engine.sphere)."""
import numpy as np
import pytest

from engine import sphere
from engine.sphere import area_resize, equirect_directions, equirect_solid_angles


def test_solid_angles_cover_the_sphere_and_shrink_at_the_poles():
    h, w = 64, 128
    sa = equirect_solid_angles(h, w)
    assert sa.sum() * w == pytest.approx(4 * np.pi, rel=1e-12)
    assert sa[0] < sa[h // 4] < sa[h // 2 - 1]
    np.testing.assert_allclose(sa, sa[::-1])


def test_directions_follow_the_convention():
    d = equirect_directions(8, 16)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0)
    assert d[0, 8, 1] > 0.9          # row 0 looks up
    assert d[4, 8, 2] > 0.9          # the centre column looks along +z
    assert d[4, 0, 2] < -0.9         # column 0 looks backwards


def _brute_force(img, out_h, out_w):
    """Overlap-weighted average, written out pixel by pixel."""
    h, w = img.shape[:2]
    out = np.zeros((out_h, out_w) + img.shape[2:])
    for oy in range(out_h):
        for ox in range(out_w):
            y0, y1 = oy * h / out_h, (oy + 1) * h / out_h
            x0, x1 = ox * w / out_w, (ox + 1) * w / out_w
            acc, area = 0.0, 0.0
            for y in range(h):
                for x in range(w):
                    a = max(0.0, min(y1, y + 1) - max(y0, y)) * max(0.0, min(x1, x + 1) - max(x0, x))
                    acc = acc + a * img[y, x]
                    area += a
            out[oy, ox] = acc / area
    return out


@pytest.mark.parametrize("size", [(6, 10), (5, 7), (12, 20), (1, 1)])
def test_area_resize_is_the_overlap_weighted_average(size):
    img = np.random.default_rng(0).random((12, 20, 3)).astype(np.float32)
    got = area_resize(img, *size)
    assert got.shape == size + (3,) and got.dtype == np.float32
    np.testing.assert_allclose(got, _brute_force(img.astype(np.float64), *size), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.mean(axis=(0, 1)), img.mean(axis=(0, 1)), rtol=1e-5)  # energy kept


def test_area_resize_bands_and_types():
    img = np.random.default_rng(1).integers(0, 256, (37, 90), dtype=np.uint8)  # 2-D, 8-bit
    a = area_resize(img, 10, 31)
    sphere.BAND_BYTES, saved = 1, sphere.BAND_BYTES                 # one output row per band
    try:
        b = area_resize(img, 10, 31)
    finally:
        sphere.BAND_BYTES = saved
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(a, _brute_force(img.astype(np.float64), 10, 31), rtol=1e-5)
    with pytest.raises(ValueError):
        area_resize(img, 0, 3)


def test_area_resize_rows_reads_each_band_it_needs_once():
    img = np.random.default_rng(2).random((40, 24, 2))
    reads = []

    def rows(r0, r1):
        reads.append((r0, r1))
        return img[r0:r1]

    sphere.BAND_BYTES, saved = 24 * 2 * 8 * 8, sphere.BAND_BYTES       # ~2 output rows per band
    try:
        got = sphere.area_resize_rows(rows, 40, 24, 2, 7, 5)
    finally:
        sphere.BAND_BYTES = saved
    np.testing.assert_allclose(got, _brute_force(img, 7, 5), rtol=1e-5)
    assert len(reads) > 2 and reads[0][0] == 0 and reads[-1][1] == 40
    assert max(r1 - r0 for r0, r1 in reads) < 40                        # never the whole image
