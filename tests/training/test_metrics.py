"""Metrics (PU21, stops, panorama lighting) and the classic baselines, checked against reference
numbers and analytic results. Pure numpy, no data files."""
from __future__ import annotations

import numpy as np
import pytest

from engine.color import linear_to_srgb
from engine.sphere import equirect_directions, equirect_solid_angles
from training import baselines, metrics
from training.metrics import (
    align_scale, all_stops, fibonacci_sphere,
    highlight_stops, irradiance_rel_error, pano_irradiance, pu21_decode, pu21_encode, pu21_psnr,
    total_power, total_power_stops, well_exposed_mask,
)

# --------------------------------------------------------------------------------------------
# PU21
# --------------------------------------------------------------------------------------------


def test_pu21_matches_reference_implementation_values():
    # Values produced by the reference MATLAB code (gfxdisp/pu21, pu21_encoder 'banding_glare'),
    # as recorded in a public port's unit test ("this result from referenced matlab code").
    y = np.array([[1.32340404, 1.87238002, 1.750423], [2.75338878, 3.7186751, 4.17476571]])
    expected = np.array([[43.9277, 54.3851, 52.2420], [67.6844, 79.2211, 83.9225]])
    np.testing.assert_allclose(pu21_encode(y), expected, atol=1e-4)


def test_pu21_anchor_points():
    # ~100 cd/m^2 (SDR white) encodes to ~256, which is why the reference PSNR peak is 256;
    # the ends of the valid range map to ~0 and ~595.4.
    assert pu21_encode(100.0) == pytest.approx(256.38, abs=0.01)
    assert pu21_encode(0.005) == pytest.approx(0.0, abs=1e-6)
    assert pu21_encode(10000.0) == pytest.approx(595.39, abs=0.01)
    assert metrics.PU21_PSNR_PEAK == 256.0


def test_pu21_monotone_clamped_and_invertible():
    y = np.logspace(np.log10(0.005), 4, 2000)
    v = pu21_encode(y)
    assert np.all(np.diff(v) > 0)
    np.testing.assert_allclose(pu21_decode(v), y, rtol=1e-6)
    # Outside the valid range the reference clamps.
    assert pu21_encode(0.0) == pu21_encode(0.005)
    assert pu21_encode(1e7) == pu21_encode(1e4)


def test_pu21_psnr_identity_and_peak_convention():
    rng = np.random.default_rng(0)
    ref = (rng.random((16, 24, 3)) * 4.0).astype(np.float32)
    assert pu21_psnr(ref, ref) == float("inf")
    near = pu21_psnr(ref * 1.001, ref)
    far = pu21_psnr(ref * 1.5, ref)
    assert 60.0 < near < float("inf")
    assert far < near
    # Constant images: the PSNR is exactly 20 log10(256 / dPU) with the clip point at 200 cd/m^2.
    a, b = np.full((4, 4, 3), 0.5), np.full((4, 4, 3), 1.0)
    d = pu21_encode(200.0) - pu21_encode(100.0)
    assert pu21_psnr(a, b) == pytest.approx(20 * np.log10(256.0 / d), abs=1e-9)
    assert pu21_psnr(a, b, clip_cd=200.0) != pytest.approx(pu21_psnr(a, b, clip_cd=1000.0))


def test_pu21_psnr_nan_is_an_error_not_a_poison():
    ref = np.ones((8, 8, 3), np.float32)
    pred = ref.copy()
    pred[0, 0, 0] = np.nan
    val = pu21_psnr(pred, ref)
    assert np.isfinite(val) and val > 20.0
    with pytest.raises(ValueError):
        pu21_psnr(ref[:4], ref)


# --------------------------------------------------------------------------------------------
# Stops
# --------------------------------------------------------------------------------------------


def test_highlight_and_all_stops():
    ref = np.full((10, 10, 3), 0.5, np.float32)
    ref[:3] = 8.0  # "clipped" rows
    mask = np.zeros((10, 10), bool)
    mask[:3] = True
    pred = ref.copy()
    pred[:3] = 1.0  # left at the clip: 3 stops too dark there
    assert highlight_stops(pred, ref, mask) == pytest.approx(3.0, abs=3e-3)  # eps: 1e-3
    assert all_stops(pred, ref) == pytest.approx(0.9, abs=1e-3)
    assert all_stops(ref * 2.0, ref) == pytest.approx(1.0, abs=1e-2)
    assert np.isnan(highlight_stops(pred, ref, np.zeros((10, 10), bool)))
    # Negative predictions count as black (no light), not as an error in the metric itself.
    assert np.isfinite(all_stops(-ref, ref))


def test_align_scale_and_well_exposed_mask():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0.05, 0.8, (20, 20, 3)).astype(np.float32)
    ldr = np.full((20, 20, 3), 128, np.uint8)
    ldr[0] = 255  # clipped row
    ldr[1] = 0    # crushed row
    mask = well_exposed_mask(ldr)
    assert mask[2:].all() and not mask[:2].any()
    pred = ref / 3.0
    pred[0] = 100.0  # garbage where the LDR is clipped must not affect the scale
    assert align_scale(pred, ref, mask) == pytest.approx(3.0, rel=1e-5)
    assert align_scale(pred, ref, np.zeros((20, 20), bool)) == 1.0


# --------------------------------------------------------------------------------------------
# Panorama lighting
# --------------------------------------------------------------------------------------------


def test_solid_angles_and_constant_environment():
    h, w = 64, 128
    assert equirect_solid_angles(h, w).sum() * w == pytest.approx(4 * np.pi, rel=1e-12)
    rgb = np.array([1.0, 2.0, 3.0])
    env = np.broadcast_to(rgb, (h, w, 3)).copy()
    lum = float(metrics.luminance(rgb))
    # Analytic: a constant environment L casts irradiance pi * L on every surface...
    e = pano_irradiance(env)
    np.testing.assert_allclose(e, np.pi * lum, rtol=1e-3)
    # ... and its total power is 4 pi L.
    assert total_power(env) == pytest.approx(4 * np.pi * lum, rel=1e-9)
    assert irradiance_rel_error(env, env) == 0.0
    assert irradiance_rel_error(2 * env, env) == pytest.approx(1.0, rel=1e-9)
    assert total_power_stops(2 * env, env) == pytest.approx(1.0, rel=1e-9)
    assert total_power_stops(env, 4 * env) == pytest.approx(2.0, rel=1e-9)


def _sun_pano(h, w, direction, radius_deg=4.0, value=100.0):
    d = equirect_directions(h, w)
    sun = np.asarray(direction, float) / np.linalg.norm(direction)
    lum = np.where(d @ sun > np.cos(np.radians(radius_deg)), value, 0.0)
    return lum, sun


def test_single_light_matches_clamped_cosine():
    h, w = 64, 128
    lum, sun = _sun_pano(h, w, [0.3, 0.8, 0.5])
    phi = float(np.sum(lum * equirect_solid_angles(h, w)[:, None]))  # the light's power
    normals = fibonacci_sphere(256)
    mu = normals @ sun
    e = pano_irradiance(lum, normals)
    # Exactly what 9 SH coefficients can represent of a point light: the clamped cosine's
    # Legendre series cut after l=2, Phi * (3/32 + mu/2 + 15/32 mu^2) (Ramamoorthi-Hanrahan).
    band_limited = phi * (3 / 32 + mu / 2 + 15 / 32 * mu ** 2)
    assert np.max(np.abs(e - band_limited)) < 0.01 * phi
    # Against the true clamped cosine Phi * max(0, mu): within 8 % on surfaces facing the light
    # (the truncation is -6 % at mu = 0.6, +6 % at mu = 1), and never more than the known
    # order-2 truncation error (< 0.1 Phi) anywhere.
    facing = mu > 0.6
    np.testing.assert_allclose(e[facing], phi * mu[facing], rtol=0.08)
    assert np.max(np.abs(e - phi * np.maximum(mu, 0.0))) < 0.1 * phi
    # The brightest normal points at the light.
    assert normals[np.argmax(e)] @ sun > 0.98


def test_lighting_metrics_see_a_lost_sun():
    h, w = 64, 128
    sun, _ = _sun_pano(h, w, [0.0, 0.7, 0.7], value=500.0)
    sky = np.linspace(1.0, 0.2, h)[:, None] * np.ones((1, w))
    ref = sky + sun
    clipped = np.minimum(ref, 1.0)  # what a naive inverse gives back
    assert irradiance_rel_error(clipped, ref) > 0.3
    assert total_power_stops(clipped, ref) > 0.5
    assert irradiance_rel_error(ref * 1.01, ref) == pytest.approx(0.01, rel=1e-6)


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


def _scene(h=64, w=128, seed=0):
    """An LDR photo: dim background and a lamp near the left edge whose soft glow falls off
    gently (so Rempel's edge stop lets the boost spread), saturated in its core (the blob). The
    glow is periodic in x, as in a panorama, so it continues smoothly across the seam."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    dx = (xx - 12 + w // 2) % w - w // 2
    d = np.hypot(yy - h // 2, dx)
    lin = np.maximum(0.15 + 0.05 * yy / h, 1.2 - 0.025 * d)
    disp = linear_to_srgb(np.minimum(lin, 1.0)) * 255.0 + rng.integers(-1, 2, (h, w))
    img = np.clip(np.round(np.repeat(disp[..., None], 3, axis=2)), 0, 255).astype(np.uint8)
    return img, img.min(axis=-1) == 255


def test_naive_inverse_clip_point_is_one():
    ldr = np.array([[[0, 128, 255]]], np.uint8)
    lin = baselines.naive_inverse(ldr)
    assert lin.dtype == np.float32
    np.testing.assert_allclose(lin[0, 0], [0.0, ((128 / 255 + 0.055) / 1.055) ** 2.4, 1.0], rtol=1e-5)
    with pytest.raises(TypeError):
        baselines.naive_inverse(ldr.astype(np.float32))


def test_rempel_boosts_clipped_keeps_the_rest():
    ldr, blob = _scene()
    naive = baselines.naive_inverse(ldr)
    out = baselines.rempel_expand(ldr)
    assert out.shape == ldr.shape and out.dtype == np.float32
    assert out[blob].min() > 1.0            # clipped pixels raised above the clip point
    assert out.max() <= 4.0 + 1e-5           # by at most alpha
    far = np.zeros(blob.shape, bool)
    far[:, 80:] = True                       # far from the blob: exactly the naive inverse
    np.testing.assert_array_equal(out[far], naive[far])
    # A photo with nothing clipped is left alone.
    dull = np.full((32, 32, 3), 100, np.uint8)
    np.testing.assert_array_equal(baselines.rempel_expand(dull), baselines.naive_inverse(dull))


def test_rempel_wraps_around_panoramas():
    ldr, _ = _scene()
    right_edge = np.s_[28:36, -3:]
    photo = baselines.rempel_expand(ldr, panorama=False, sigma=8.0)
    pano = baselines.rempel_expand(ldr, panorama=True, sigma=8.0)
    naive = baselines.naive_inverse(ldr)
    # The lamp is near the left border; in a panorama it is also next to the right border.
    assert np.all(pano[right_edge] > naive[right_edge] * 1.05)
    assert np.all(photo[right_edge] <= naive[right_edge] * 1.001)


def test_inverse_reinhard_expands_highlights_and_is_aligned_fairly():
    ldr, blob = _scene()
    out = baselines.inverse_reinhard(ldr, l_white=16.0)
    naive = baselines.naive_inverse(ldr)
    assert out[blob].min() == pytest.approx(16.0, rel=1e-4)   # clip point -> L_white
    lum_in, lum_out = metrics.luminance(naive), metrics.luminance(out)
    order = np.argsort(lum_in.ravel())
    assert np.all(np.diff(lum_out.ravel()[order]) >= -1e-6)  # monotone
    assert "inverse_reinhard" in baselines.ARBITRARY_SCALE
    assert "naive_inverse" not in baselines.ARBITRARY_SCALE
    # Aligned on well-exposed pixels it stays close to the truth there (a ~3x global gain undone).
    mask = well_exposed_mask(ldr)
    s = align_scale(out, naive, mask)
    assert np.median(np.abs(np.log2(out[mask] * s / naive[mask]))) < 0.2


def test_baseline_registry():
    ldr, _ = _scene(h=16, w=32)
    for name, b in baselines.BASELINES.items():
        out = b.run(ldr, panorama=True)
        assert out.shape == ldr.shape and np.isfinite(out).all(), name
        assert b.label and b.reference


def test_peak_stops_is_peak_over_median_luminance():
    img = np.ones((8, 8, 3), np.float32)
    img[0, 0] = 1024.0
    assert metrics.peak_stops(img) == pytest.approx(10.0)
    img[4:] = (0.0, 0.0, -5.0)                   # negative light counts as none: half the median
    assert metrics.peak_stops(img) == pytest.approx(11.0)
