"""The geometry planes a geometry-aware model is fed: a flag and each row's sine of latitude."""
import numpy as np

from engine.geometry import GEOMETRY_CHANNELS, window_planes
from engine.sphere import latitude


def test_a_photo_gets_zeros():
    planes = window_planes(0, 6, 9, 6, panorama=False)
    assert planes.shape == (6, 9, len(GEOMETRY_CHANNELS)) and planes.dtype == np.float32
    assert not planes.any()


def test_a_panorama_gets_its_rows_latitudes_from_pole_to_pole():
    h = 64
    planes = window_planes(0, h, 5, h, panorama=True)
    assert (planes[..., 0] == 1).all()
    s = planes[:, 0, 1]
    assert (planes[..., 1] == s[:, None]).all()                # constant along a row
    np.testing.assert_allclose(s, -s[::-1], atol=1e-6)        # the equator halfway down
    assert s[0] > 0.99 and s[-1] < -0.99 and (np.diff(s) < 0).all()
    np.testing.assert_allclose(s[0], np.cos(np.pi / (2 * h)), rtol=1e-6)


def test_a_window_is_the_same_rows_of_the_whole_and_padding_rows_mirror():
    h = 32
    whole = window_planes(0, h, 4, h, panorama=True)
    np.testing.assert_array_equal(window_planes(8, 20, 4, h, panorama=True), whole[8:20])
    below = window_planes(h, h + 3, 4, h, panorama=True)[:, 0, 1]  # stride padding past the bottom
    np.testing.assert_allclose(below, whole[h - 1:h - 4:-1, 0, 1], atol=1e-6)
    assert latitude(np.array([h / 2]), h)[0] == 0.0
