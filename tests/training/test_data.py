"""Training patches: panorama views rendered as whole photos (``patches.view_photos``)."""
import numpy as np
import pytest

from training.data import HDRImage, PatchConfig, PatchSampler


def _panorama() -> HDRImage:
    """A 2:1 panorama that brightens from left to right (4 decades), with a sun disc."""
    h, w = 128, 256
    px = np.repeat(np.logspace(-2, 2, w, dtype=np.float32)[None, :, None], h, axis=0).repeat(3, axis=2)
    yy, xx = np.mgrid[:h, :w]
    px[(yy - 40) ** 2 + (xx - 200) ** 2 < 9] = 5000.0
    return HDRImage("pano", np.ascontiguousarray(px), panorama=True)


@pytest.mark.parametrize("view_photos", [False, True])
def test_views_give_patches_of_the_configured_size(view_photos):
    cfg = PatchConfig(patch=16, p_perspective=1.0, view_photos=view_photos)
    ldr, target = PatchSampler([_panorama()], cfg).batch(np.random.default_rng(0), 6)
    assert ldr.shape == target.shape == (6, 3, 16, 16)
    assert np.isfinite(target).all() and target.min() >= 0


def test_photo_patches_centred_on_highlights_reach_the_clip():
    cfg = PatchConfig(patch=16, p_perspective=1.0, p_highlight=1.0, view_photos=True)
    ldr, _ = PatchSampler([_panorama()], cfg).batch(np.random.default_rng(1), 12)
    assert (ldr.max(axis=(1, 2, 3)) >= 254 / 255).all()


def test_a_photo_is_metered_on_the_whole_view_not_on_the_patch():
    # Metered on itself, every patch would put its brightest pixel at the clip; metered on the
    # whole view, a patch from the view's dark side stays below it.
    cfg = PatchConfig(patch=16, p_perspective=1.0, p_highlight=0.0, view_photos=True)
    ldr, _ = PatchSampler([_panorama()], cfg).batch(np.random.default_rng(2), 24)
    assert (ldr.max(axis=(1, 2, 3)) < 200 / 255).any()


def test_geometry_planes_ride_along_without_changing_the_batches():
    """Panorama crops carry their rows' latitudes, views rendered as photos carry zeros, and the
    LDR and targets are the ones drawn without the planes."""
    photo = HDRImage("photo", np.full((96, 96, 3), 0.5, np.float32), panorama=False)
    cfg = PatchConfig(patch=16, p_perspective=0.5, view_photos=True, max_downscale=1)
    plain_ldr, plain_tgt = PatchSampler([_panorama(), photo], cfg).batch(np.random.default_rng(3), 40)
    ldr, tgt = PatchSampler([_panorama(), photo], cfg, geometry=True).batch(np.random.default_rng(3), 40)
    assert ldr.shape == (40, 5, 16, 16)
    np.testing.assert_array_equal(ldr[:, :3], plain_ldr)
    np.testing.assert_array_equal(tgt, plain_tgt)
    flag, sin_lat = ldr[:, 3], ldr[:, 4]
    crops = flag[:, 0, 0] == 1
    assert 0 < crops.sum() < 40 and ((flag == 1) | (flag == 0)).all()
    assert not sin_lat[~crops].any()
    # a crop's rows: constant across, decreasing downwards
    assert (sin_lat[crops] == sin_lat[crops][:, :, :1]).all()
    assert (np.diff(sin_lat[crops][:, :, 0], axis=1) < 0).all()
    assert np.abs(sin_lat[crops]).max() <= 1.0
