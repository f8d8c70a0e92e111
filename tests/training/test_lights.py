"""Synthetic light sources: geometry of the halo, what a camera clips of it, and the sampler hook."""
import json

import numpy as np
import pytest

from engine.color import luminance
from training.configs import TrainConfig, compact
from training.data import HDRImage, PatchConfig, PatchSampler
from training.lights import LightConfig, SourceKind, add_random_light, light_radiance


def test_radiance_is_one_in_the_disc_and_falls_off_outside():
    r = light_radiance((41, 41), (20.5, 20.5), radius=3.0, glare=0.1, falloff=2.0)
    assert r[20, 20] == 1.0 and r[20, 22] == 1.0            # inside the disc
    assert r[20, 24] == pytest.approx(0.1 * (3.0 / 4.0) ** 2)  # halo at 4 px
    row = r[20, 21:]
    assert np.all(np.diff(row) <= 0)                          # monotone outwards


def test_row_scale_stretches_the_source_horizontally():
    """Near the zenith of an equirectangular image a pixel spans little angle across, so a source
    is wide: with row_scale 0.1, ten pixels across are as far as one pixel down."""
    scale = np.full(61, 0.1, np.float32)
    r = light_radiance((61, 61), (30.5, 30.5), radius=0.75, glare=0.5, falloff=2.0, row_scale=scale)
    assert r[30, 40] == pytest.approx(r[31, 30], rel=1e-5)


def _fixed(stops, radius, glare, max_halo=48.0, p_sun=1.0):
    kind = SourceKind((stops, stops), (radius, radius), (glare, glare), max_halo)
    return LightConfig(sun=kind, lamp=kind, p_sun=p_sun, falloff=(2.5, 2.5), tint=0.0)


def test_added_light_has_the_drawn_brightness_and_clips_over_the_drawn_radius():
    base = np.zeros((96, 96, 3), np.float32)
    clip = 0.25
    for seed in range(5):
        # glare * 2**10 = 4**2.5: the halo falls to the clip point at 4 x the disc radius = 8 px
        out = add_random_light(base, clip, np.random.default_rng(seed), _fixed(10.0, 2.0, 32 / 1024))
        lum = luminance(out)
        assert lum.max() == pytest.approx(clip * 2 ** 10, rel=1e-4)  # the disc, 10 stops above clip
        cy, cx = np.unravel_index(np.argmax(lum), lum.shape)
        ys, xs = np.nonzero(lum >= clip)                               # what the camera clips
        assert np.hypot(ys - cy, xs - cx).max() <= 8.0 + 1.5
        assert len(ys) >= 0.5 * np.pi * 8.0 ** 2                       # not just the disc
    assert not base.any()                                              # input left as it was


def test_a_brighter_source_clips_over_a_wider_blob_up_to_the_cap():
    base = np.zeros((128, 128, 3), np.float32)
    areas = [(luminance(add_random_light(base, 1.0, np.random.default_rng(0), _fixed(stops, 1.0, 1e-2, 20.0))) >= 1.0).sum()
             for stops in (8.0, 12.0, 16.0, 20.0)]
    assert areas[0] < areas[1] < areas[2]
    assert areas[3] <= np.pi * 21.5 ** 2          # capped: at most max_halo_px beyond the disc


def test_sampler_with_lights_always_shows_a_source_above_the_clip_point():
    rng = np.random.default_rng(0)
    images = [HDRImage("pano", (rng.random((64, 128, 3)) ** 2).astype(np.float32), panorama=True),
              HDRImage("photo", (rng.random((80, 80, 3)) ** 2).astype(np.float32), panorama=False)]
    lit = PatchSampler(images, PatchConfig(patch=32, p_light=1.0))
    plain = PatchSampler(images, PatchConfig(patch=32, p_light=0.0))
    lit_peaks = [luminance(lit.sample(np.random.default_rng(s))[1]).max() for s in range(20)]
    plain_peaks = [luminance(plain.sample(np.random.default_rng(s))[1]).max() for s in range(20)]
    assert min(lit_peaks) > 8.0          # at least 4 stops above the clip point (1.0), less white balance
    assert max(plain_peaks) < 8.0        # these images hold nothing that bright


def test_light_config_survives_the_checkpoint_json():
    cfg = compact()
    cfg.patches.p_light = 0.3
    cfg.patches.light.lamp = SourceKind((5.0, 9.0), (2.0, 4.0), (1e-3, 2e-3), 12.0)
    back = TrainConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert back.patches == cfg.patches
