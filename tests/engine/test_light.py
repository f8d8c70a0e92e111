"""The panorama light stage (engine.light): where it finds the hidden light, how much it adds,
where it puts it, and the head's schema. Pure numpy, no model."""
from __future__ import annotations

import numpy as np
import pytest

from engine import light
from engine.sphere import equirect_directions, equirect_solid_angles


def constant_head(stops: float, max_stops: float = 10.0) -> light.LightHead:
    """A head that predicts `stops` whatever the features (weights only in the intercept)."""
    n = len(light.FEATURES)
    return light.LightHead(mean=(0.0,) * n, std=(1.0,) * n, weights=(stops,) + (0.0,) * n, max_stops=max_stops)


def sun_scene(h: int, w: int, sun=(0.4, 0.6, 0.69), radius_deg: float = 12.0):
    """An 8-bit panorama with a clipped disc (the blown-out sky round a sun) and the flow's
    stand-in output: the naive inverse outside, a glow from 1 to 3 towards the sun inside."""
    d = equirect_directions(h, w)
    s = np.asarray(sun) / np.linalg.norm(sun)
    cos_r = np.cos(np.radians(radius_deg))
    clipped = d @ s >= cos_r
    ldr = np.where(clipped[..., None], 255, 90 + (40 * d[..., 1:2] + 40)).astype(np.uint8).repeat(3, axis=2)
    glow = 1.0 + 2.0 * np.clip((d @ s - cos_r) / (1.0 - cos_r), 0.0, 1.0)
    hdr = np.where(clipped[..., None], glow[..., None], (ldr / 255.0) ** 2.2).astype(np.float32)
    return ldr, hdr, clipped


def clip_light(hdr, clipped, channel=0):
    sa = equirect_solid_angles(*clipped.shape)[:, None]
    return float((hdr[..., channel] * sa)[clipped].sum())


# ------------------------------------------------------------------------------ where

def test_deepest_point_is_the_centre_of_the_thickest_region():
    yy, xx = np.mgrid[:40, :80]
    mask = ((yy - 20) ** 2 + (xx - 50) ** 2 <= 8 ** 2) | ((yy < 3) & (xx < 30))  # disc + thin band
    y, x, depth = light.deepest_point(mask)
    assert (y, x) == pytest.approx((20, 50), abs=1) and depth >= 7
    with pytest.raises(ValueError):
        light.deepest_point(np.zeros((4, 8), bool))


def test_deepest_point_wraps_across_the_panorama_seam():
    yy, xx = np.mgrid[:40, :80]
    mask = (yy - 20) ** 2 + (np.minimum(xx, 80 - xx)) ** 2 <= 6 ** 2  # a disc cut by the seam
    y, x, _ = light.deepest_point(mask)
    assert y == 20 and min(x, 80 - x) <= 1


def test_the_place_is_the_brightest_glow_not_the_largest_clip():
    h, w = 64, 128
    ldr = np.full((h, w, 3), 100, np.uint8)
    hdr = np.full((h, w, 3), 0.13, np.float32)
    ldr[10:30, 10:50] = 255                 # a large clipped cloud, the flow lifts it a little
    hdr[10:30, 10:50] = 1.2
    ldr[30:36, 90:96] = 255                 # a small clipped area, the flow lifts it a lot
    hdr[30:36, 90:96] = 4.0
    proxy = light.make_proxy(ldr, hdr)
    y, x = light.light_centre(proxy)
    assert 30 <= y < 36 and 90 <= x < 96
    assert light.deepest_point(proxy.clipped)[:2] != (y, x)    # the deepest pixel is in the cloud


def test_clipped_mask_agrees_across_storage_types():
    codes = np.array([[[0, 0, 249], [250, 0, 0], [255, 255, 255], [10, 251, 3]]], np.uint8)
    want = [[False, True, True, True]]
    assert light.clipped_mask(codes).tolist() == want
    assert light.clipped_mask(codes.astype(np.uint16) * 257).tolist() == want
    assert light.clipped_mask(codes.astype(np.float32) / 255.0).tolist() == want


# ------------------------------------------------------------------------------ how much

def test_add_light_raises_the_clip_by_exactly_the_stops_and_only_there():
    ldr, hdr, clipped = sun_scene(64, 128)
    out = hdr.copy()
    proxy = light.make_proxy(ldr, hdr)
    radius = light.add_light(out, ldr, proxy, 2.0, peak=light.PEAK)
    assert radius > 0
    assert clip_light(out, clipped) == pytest.approx(4.0 * clip_light(hdr, clipped), rel=1e-5)  # 2 stops
    assert np.array_equal(out[~clipped], hdr[~clipped])   # measured light is never touched
    assert (out >= hdr).all()


@pytest.mark.parametrize("stops", [0.0, -3.0])
def test_no_light_is_ever_removed(stops):
    ldr, hdr, _ = sun_scene(32, 64)
    out = hdr.copy()
    assert light.add_light(out, ldr, light.make_proxy(ldr, hdr), stops, peak=light.PEAK) == 0.0
    assert np.array_equal(out, hdr)
    assert constant_head(-4.0).predict(np.zeros(len(light.FEATURES))) == 0.0


def test_head_predicts_its_linear_model_within_its_range():
    n = len(light.FEATURES)
    head = light.LightHead(mean=(1.0,) * n, std=(2.0,) * n, weights=(1.0, 0.5) + (0.0,) * (n - 1), max_stops=4.0)
    f = np.ones(n)
    f[0] = 5.0                                  # z = 2 -> 1 + 0.5 * 2
    assert head.predict(f) == pytest.approx(2.0)
    f[0] = 101.0                                # far outside what it was fitted on
    assert head.predict(f) == 4.0


# ------------------------------------------------------------------------------ where it goes

def test_the_disc_stays_under_the_peak_and_grows_only_as_needed():
    ldr, hdr, clipped = sun_scene(128, 256, radius_deg=15.0)
    small, big = hdr.copy(), hdr.copy()
    proxy = light.make_proxy(ldr, hdr)
    r_small = light.add_light(small, ldr, proxy, 3.0, peak=light.PEAK)
    r_big = light.add_light(big, ldr, proxy, 3.0, peak=20.0)
    assert big.max() <= 20.0 + 1e-4 < small.max()
    assert r_big > r_small
    assert clip_light(big, clipped) == pytest.approx(clip_light(small, clipped), rel=1e-5)  # same energy


def test_the_light_lands_where_the_models_glow_peaks_even_across_the_seam():
    ldr, hdr, clipped = sun_scene(64, 128, sun=(-0.05, 0.5, -1.0))   # behind the camera: on the seam
    out = hdr.copy()
    light.add_light(out, ldr, light.make_proxy(ldr, hdr), 4.0, peak=50.0)
    added = (out - hdr)[..., 1] > 0
    cols = np.nonzero(added.any(axis=0))[0]
    assert cols.min() == 0 and cols.max() == 127               # the disc wraps round the seam
    d = equirect_directions(64, 128)[added]
    centre = np.asarray((-0.05, 0.5, -1.0)) / np.linalg.norm((-0.05, 0.5, -1.0))
    assert (d @ centre).min() > np.cos(np.radians(12.0))         # and stays inside the clip


def test_a_disc_at_the_pole_takes_whole_rows():
    h, w = 32, 64
    ldr = np.full((h, w, 3), 100, np.uint8)
    ldr[:3] = 255                                                # the whole sky cap is clipped
    hdr = np.where(ldr == 255, 1.0, 0.1).astype(np.float32)
    out = hdr.copy()
    light.deposit(out, ldr, 0, 5, np.array([30.0, 30.0, 30.0]), peak=200.0)  # too much for one pixel
    assert (out[0] > hdr[0]).all()                                # every column of the top row
    assert out.max() <= 200.0 and np.array_equal(out[3:], hdr[3:])


# ------------------------------------------------------------------------------ the proxy

def test_features_do_not_depend_on_the_resolution():
    lo = light.light_features(light.make_proxy(*sun_scene(512, 1024)[:2]))
    hi_ldr, hi_hdr, _ = sun_scene(1024, 2048)
    proxy = light.make_proxy(hi_ldr, hi_hdr)
    assert proxy.hdr.shape == (512, 1024, 3) and proxy.full_shape == (1024, 2048)
    hi = light.light_features(proxy)
    np.testing.assert_allclose(hi, lo, atol=0.02)


def test_a_peaked_glow_reads_as_a_sun_and_a_flat_lift_as_an_overcast_sky():
    # The last feature tells the head whether the flow painted a glow round a sun (peaked) or
    # lifted a clipped area evenly (an overcast sky, a window): the glow here peaks at 3x its
    # rim, so log2(peak / mean) is well above 0; a flat lift of the same clip gives exactly 0.
    ldr, hdr, clipped = sun_scene(128, 256)
    assert light.FEATURES[-1].startswith("log2 peak over mean")
    peaked = light.light_features(light.make_proxy(ldr, hdr))[-1]
    flat = hdr.copy()
    flat[clipped] = 1.5
    assert peaked > 0.5
    assert light.light_features(light.make_proxy(ldr, flat))[-1] == pytest.approx(0.0, abs=1e-4)


def test_restore_light_on_a_large_panorama_puts_the_energy_in_the_full_resolution_clip():
    ldr, hdr, clipped = sun_scene(1024, 2048)
    out = hdr.copy()
    stops = light.restore_light(out, ldr, constant_head(2.5), peak=light.PEAK)
    assert stops == pytest.approx(2.5)
    assert clip_light(out, clipped) == pytest.approx(2 ** 2.5 * clip_light(hdr, clipped), rel=0.01)
    assert np.array_equal(out[~clipped], hdr[~clipped])


def test_restore_light_without_clipped_pixels_does_nothing():
    ldr = np.full((32, 64, 3), 120, np.uint8)
    hdr = np.full((32, 64, 3), 0.2, np.float32)
    assert light.restore_light(hdr, ldr, constant_head(3.0), peak=light.PEAK) is None
    assert (hdr == 0.2).all()


# ------------------------------------------------------------------------------ the head's schema

def test_head_round_trips_through_its_json_block():
    head = constant_head(1.5)
    meta = head.to_meta()
    assert light.head_problem(meta) is None
    assert light.LightHead.from_meta(meta) == head


def test_a_gated_head_adds_nothing_under_its_gate_and_the_full_amount_over_it():
    n = len(light.FEATURES)
    head = light.LightHead(mean=(0.0,) * n, std=(1.0,) * n, weights=(2.0, 1.0) + (0.0,) * (n - 1),
                           max_stops=10.0, min_stops=2.5)
    x = np.zeros(n)
    assert head.predict(x) == 0.0                  # 2 stops predicted: under the gate
    x[0] = 1.0
    assert head.predict(x) == pytest.approx(3.0)   # 3 stops: all of it, not 3 - 2.5
    assert light.LightHead.from_meta(head.to_meta()) == head


def test_a_head_block_from_before_the_gate_loads_ungated():
    meta = constant_head(1.0).to_meta()
    del meta["min_stops"]
    assert light.head_problem(meta) is None
    assert light.LightHead.from_meta(meta).min_stops == 0.0


@pytest.mark.parametrize("change, needle", [
    (lambda m: m.update(min_stops=-0.5), "min_stops"),
    (lambda m: m.update(min_stops=m["max_stops"] + 1), "min_stops"),
    (lambda m: m.update(type="other"), "type"),
    (lambda m: m.update(features=m["features"][:-1]), "other features"),
    (lambda m: m.update(weights=m["weights"][:-1]), "'weights'"),
    (lambda m: m.update(mean=[float("nan")] * len(m["mean"])), "finite"),
    (lambda m: m.update(std=[0.0] * len(m["std"])), "positive"),
    (lambda m: m.update(max_stops=-1), "max_stops"),
    (lambda m: m.update(clip_code=300), "clip_code"),
])
def test_head_problems_are_named(change, needle):
    meta = constant_head(1.0).to_meta()
    change(meta)
    assert needle in light.head_problem(meta)
    assert light.head_problem([1, 2]) == "must be a JSON object"


def test_more_light_than_the_clip_can_hold_fills_it_to_the_peak():
    ldr, hdr, clipped = sun_scene(32, 64, radius_deg=8.0)
    hdr[clipped] = 1.0
    hdr[clipped.nonzero()[0][0], clipped.nonzero()[1][0]] = 50.0     # the flow's own value above the peak
    out = hdr.copy()
    light.add_light(out, ldr, light.make_proxy(ldr, hdr), 20.0, peak=10.0)
    assert np.isfinite(out).all() and (out >= hdr).all()              # never lowered, even above the peak
    assert (out[clipped] >= 10.0).all() and out.max() == 50.0
    assert np.array_equal(out[~clipped], hdr[~clipped])
