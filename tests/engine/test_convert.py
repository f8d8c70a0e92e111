"""The conversion pipeline on real models (the shipped one when present) and real onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from engine.color import luminance
from engine.convert import ConvertOptions, ConvertResult, convert_array, convert_file, is_panorama
from engine.errors import Cancelled, InputError
from engine.io import read_exr
from engine.latent import LatentField
from engine.tiling import default_overlap, min_tile, pad_to_stride

from .conftest import make_photo, save_png
from .synthetic_bundle import reference_hdr


def log_lum(hdr):
    return np.log2(luminance(hdr) + 1e-3)


def small_tile(bundle) -> int:
    """A small legal tile: forces a few tiles on a 128 x 256 image."""
    return min_tile(default_overlap(bundle.receptive_field, bundle.stride), bundle.stride) + 8 * bundle.stride


def test_result_basics(model_bundle, model_backend):
    img = make_photo(64, 96)
    r = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=1))
    assert r.hdr.shape == (64, 96, 3) and r.hdr.dtype == np.float32
    assert np.isfinite(r.hdr).all() and r.hdr.min() >= 0
    assert r.spread is None and r.panorama is False and r.seconds > 0
    # a clipped sun is lifted above the clip point, well-exposed pixels stay near the naive inverse
    assert r.peak_stops > 0
    assert np.isfinite(r.peak_stops)


def test_synthetic_matches_reference_at_t0(synthetic_bundle, synthetic_backend):
    img = make_photo(40, 56).astype(np.float32) / 255
    r = convert_array(img, synthetic_backend, synthetic_bundle, ConvertOptions(temperature=0.0, panorama="off"))
    np.testing.assert_allclose(r.hdr, reference_hdr(img), rtol=1e-4, atol=1e-6)


def test_tiled_equals_untiled(model_bundle, model_backend):
    img = make_photo(128, 256, seed=3)
    tile = small_tile(model_bundle)
    untiled = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=5, panorama="off"))
    tiled = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=5, panorama="off", tile=tile))
    assert untiled.info["tiles"] == 1 and tiled.info["tiles"] > 1
    diff = np.abs(log_lum(tiled.hdr) - log_lum(untiled.hdr))
    assert diff.mean() <= 0.05, diff.mean()


def test_a_clipped_area_across_a_tile_seam_converts_as_untiled(model_bundle, model_backend):
    """Inside a white area the flow reads context further out than on texture, so the overlap must
    cover that too (training.export measures the radius inside clipped discs): a clipped disc cut
    by a seam gets the brightness it gets in one window."""
    h, w = 160, 400
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(1)
    img = np.stack([x / w * 200 + 20, y / h * 200 + 20, np.full_like(x, 100.0)], -1) + rng.normal(0, 3, (h, w, 3))
    disc = (x - w // 2) ** 2 + (y - h // 2) ** 2 < 40 ** 2          # on the seam of a two-window plan
    img[disc] = 255
    img = np.clip(img, 0, 255).astype(np.uint8)
    opts = dict(seed=5, panorama="off", full_resolution=True)
    untiled = convert_array(img, model_backend, model_bundle, ConvertOptions(**opts))
    tiled = convert_array(img, model_backend, model_bundle, ConvertOptions(tile=small_tile(model_bundle), **opts))
    assert untiled.info["tiles"] == 1 and tiled.info["tiles"] > 1
    diff = np.abs(log_lum(tiled.hdr) - log_lum(untiled.hdr))
    assert float(diff[disc].max()) <= 0.01, float(diff[disc].max())


@pytest.mark.parametrize("panorama", ["off", "on"])
def test_tiling_exact_on_synthetic(synthetic_bundle, synthetic_backend, panorama):
    """With a known receptive field (radius 2 < context) tiling must not change a thing."""
    img = make_photo(61, 122, seed=4)  # not stride-aligned: exercises padding / the wrap bridge
    results = [convert_array(img, synthetic_backend, synthetic_bundle,
                             ConvertOptions(temperature=1.0, tile=t, panorama=panorama)) for t in (24, 40, 1024)]
    assert [r.info["tiles"] for r in results][-1] == 1 and results[0].info["tiles"] > 20
    for r in results[1:]:
        np.testing.assert_allclose(r.hdr, results[0].hdr, rtol=1e-5, atol=1e-6)


def test_panorama_has_no_seam(model_bundle, model_backend):
    img = make_photo(128, 256, seed=6, sun=(0.35, 0.0))  # the sun straddles the left/right seam
    assert is_panorama(128, 256)
    r = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=2, tile=small_tile(model_bundle)))
    assert r.panorama is True
    L = log_lum(r.hdr)
    interior = np.abs(np.diff(L, axis=1)).mean(axis=0)  # column-to-column variation
    seam = np.abs(L[:, 0] - L[:, -1]).mean()
    assert seam <= interior.max(), (seam, interior.max())


def test_panorama_wrap_is_rotation_equivariant(model_bundle, model_backend):
    """At T=0 (no noise) a wrapped panorama rotated by half a turn converts to the same image
    rotated: the original seam is processed exactly like the interior."""
    img = make_photo(64, 128, seed=9, sun=(0.4, 0.02))
    opts = ConvertOptions(temperature=0.0, panorama="on")
    a = convert_array(img, model_backend, model_bundle, opts).hdr
    b = np.roll(convert_array(np.roll(img, 64, axis=1), model_backend, model_bundle, opts).hdr, -64, axis=1)
    diff = np.abs(log_lum(a) - log_lum(b))
    # measured on the compact model: 0.0002 stops with wrap, 0.018 without
    assert diff.max() <= 0.01, diff.max()


def test_without_wrap_the_seam_differs(synthetic_bundle, synthetic_backend):
    """The equivariance test above has teeth: without wrap the border columns change."""
    img = make_photo(64, 128, seed=9, sun=(0.4, 0.02))
    opts = ConvertOptions(temperature=0.0, panorama="off")
    a = convert_array(img, synthetic_backend, synthetic_bundle, opts).hdr
    b = np.roll(convert_array(np.roll(img, 64, axis=1), synthetic_backend, synthetic_bundle, opts).hdr, -64, axis=1)
    assert np.abs(a - b)[:, :2].max() > 1e-3
    np.testing.assert_allclose(a[:, 4:-4], b[:, 4:-4], rtol=1e-5)


def test_same_seed_identical_different_seed_differs(model_bundle, model_backend):
    img = make_photo(64, 96, seed=7)
    opts = dict(temperature=1.0, panorama="off")
    a = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=11, **opts)).hdr
    b = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=11, **opts)).hdr
    c = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=12, **opts)).hdr
    np.testing.assert_array_equal(a, b)
    clipped = (img >= 250).all(axis=2)
    assert clipped.sum() > 20
    rel = np.abs(a - c)[clipped].mean() / a[clipped].mean()
    assert rel > 1e-3


def test_samples_average_and_uncertainty(synthetic_bundle, synthetic_backend):
    img = make_photo(32, 48, seed=8)
    opts = ConvertOptions(seed=3, samples=2, temperature=1.0, uncertainty=True, panorama="off")
    r = convert_array(img, synthetic_backend, synthetic_bundle, opts)
    x = pad_to_stride(img, 8).transpose(2, 0, 1)[None].copy()
    runs = [synthetic_backend.run(x, LatentField(synthetic_bundle.latents, 32, 48, seed=3, sample=s).full())[0]
            for s in range(2)]
    np.testing.assert_allclose(r.hdr, np.mean(runs, axis=0).transpose(1, 2, 0), rtol=1e-5, atol=1e-7)
    assert r.spread.shape == (32, 48) and np.isfinite(r.spread).all() and r.spread.min() >= 0
    clipped = (img >= 250).all(axis=2)
    assert r.spread[clipped].mean() > 0.01 > r.spread[~clipped].mean()


def test_uncertainty_on_model(model_bundle, model_backend):
    r = convert_array(make_photo(64, 96), model_backend, model_bundle,
                      ConvertOptions(samples=2, uncertainty=True))
    assert r.spread is not None and r.spread.shape == (64, 96) and np.isfinite(r.spread).all()


def test_exposure_and_input_types(synthetic_bundle, synthetic_backend):
    img = make_photo(24, 40)
    base = convert_array(img, synthetic_backend, synthetic_bundle, ConvertOptions(seed=1))
    up = convert_array(img, synthetic_backend, synthetic_bundle, ConvertOptions(seed=1, exposure=1.0))
    np.testing.assert_allclose(up.hdr, 2 * base.hdr, rtol=1e-6)
    assert up.clip_point == 2.0 and abs(up.peak_stops - base.peak_stops) < 1e-5
    as_float = convert_array(img.astype(np.float32) / 255, synthetic_backend, synthetic_bundle,
                             ConvertOptions(seed=1))
    np.testing.assert_allclose(as_float.hdr, base.hdr, rtol=1e-6)
    rgba = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(convert_array(rgba, synthetic_backend, synthetic_bundle,
                                                ConvertOptions(seed=1)).hdr, base.hdr)
    gray = convert_array(img[..., 1], synthetic_backend, synthetic_bundle, ConvertOptions(seed=1)).hdr
    assert gray.shape == (24, 40, 3) and np.array_equal(gray[..., 0], gray[..., 2])


def test_progress_and_cancel(synthetic_bundle, synthetic_backend):
    img = make_photo(64, 64)
    seen = []
    convert_array(img, synthetic_backend, synthetic_bundle, ConvertOptions(tile=32, samples=2), progress=seen.append)
    assert len(seen) > 2 and seen == sorted(seen) and seen[-1] == 1.0
    calls = []
    with pytest.raises(Cancelled):
        convert_array(img, synthetic_backend, synthetic_bundle, ConvertOptions(tile=32),
                      cancel=lambda: calls.append(1) or len(calls) > 2)
    assert len(calls) == 3


@pytest.mark.parametrize("kwargs, needle", [
    (dict(temperature=-0.1), "--temperature"),
    (dict(temperature=float("nan")), "--temperature"),
    (dict(samples=0), "--samples"),
    (dict(uncertainty=True, samples=1), "--uncertainty"),
    (dict(seed=-1), "--seed"),
    (dict(panorama="maybe"), "--panorama"),
    (dict(tile=0), "--tile"),
    (dict(tile=16), "too small"),
])
def test_invalid_options(synthetic_bundle, synthetic_backend, kwargs, needle):
    with pytest.raises(InputError, match=needle):
        convert_array(make_photo(16, 16), synthetic_backend, synthetic_bundle, ConvertOptions(**kwargs))


def test_convert_file(tmp_path, model_bundle, model_backend):
    src = save_png(tmp_path / "in.png", make_photo(48, 64))
    src_bytes = src.read_bytes()
    dst = tmp_path / "out" / "in.exr"
    r = convert_file(src, dst, model_backend, model_bundle, ConvertOptions(samples=2, uncertainty=True))
    assert r is not None and dst.is_file()
    rgb, extra = read_exr(dst, channels=True)
    assert rgb.shape == (48, 64, 3) and set(extra) == {"uncertainty"}
    np.testing.assert_allclose(rgb, r.hdr, rtol=1e-3, atol=1e-4)  # half precision
    assert src.read_bytes() == src_bytes
    mtime = dst.stat().st_mtime_ns
    assert convert_file(src, dst, model_backend, model_bundle) is None  # resume: skipped
    assert dst.stat().st_mtime_ns == mtime
    assert convert_file(src, dst, model_backend, model_bundle, overwrite=True, half=False) is not None
    assert read_exr(dst).dtype == np.float32
    assert sorted(p.name for p in dst.parent.iterdir()) == ["in.exr"]  # no temp files
    with pytest.raises(InputError, match="exr"):
        convert_file(src, tmp_path / "x.png", model_backend, model_bundle)
    same = tmp_path / "same.exr"
    same.write_bytes(src_bytes)
    with pytest.raises(InputError, match="overwrite the input"):
        convert_file(same, same, model_backend, model_bundle, overwrite=True)
    assert same.read_bytes() == src_bytes


# ------------------------------------------------------------------------------ the light stage

def _lit(tmp_path, synthetic_bundle, stops):
    """The synthetic model with a light head that always asks for `stops` more light (up to 20)."""
    from engine.bundle import write_bundle

    from .test_light import constant_head

    return write_bundle(tmp_path / "lit", synthetic_bundle.onnx_path,
                        {**synthetic_bundle.meta, "light": constant_head(stops, max_stops=20.0).to_meta()})


def _sunny_panorama(h=64, w=128):
    from .test_light import sun_scene

    ldr, _, clipped = sun_scene(h, w)
    return ldr, clipped


def _clip_light(hdr, clipped):
    from engine.sphere import equirect_solid_angles

    return float((luminance(hdr) * equirect_solid_angles(*clipped.shape)[:, None])[clipped].sum())


def test_light_stage_raises_the_clipped_light_of_panoramas_only(tmp_path, synthetic_bundle, synthetic_backend):
    lit = _lit(tmp_path, synthetic_bundle, 2.0)
    ldr, clipped = _sunny_panorama()
    flow = convert_array(ldr, synthetic_backend, lit, ConvertOptions(light=False))
    r = convert_array(ldr, synthetic_backend, lit, ConvertOptions())
    assert flow.info["light_stops"] is None and r.info["light_stops"] == pytest.approx(2.0)
    assert _clip_light(r.hdr, clipped) == pytest.approx(4.0 * _clip_light(flow.hdr, clipped), rel=1e-3)
    assert np.array_equal(r.hdr[~clipped], flow.hdr[~clipped])
    photo = convert_array(ldr, synthetic_backend, lit, ConvertOptions(panorama="off"))
    assert photo.info["light_stops"] is None      # not a panorama: no sky to find a sun in
    unlit = convert_array(ldr, synthetic_backend, synthetic_bundle, ConvertOptions())
    assert unlit.info["light_stops"] is None and np.array_equal(unlit.hdr, flow.hdr)  # no head, no stage
    brighter = convert_array(ldr, synthetic_backend, lit, ConvertOptions(exposure=1.0))
    np.testing.assert_allclose(brighter.hdr, 2.0 * r.hdr, rtol=1e-6)   # the exposure scales the added light too


def test_light_stage_keeps_half_float_outputs_finite(tmp_path, synthetic_bundle, synthetic_backend):
    import OpenEXR

    ldr, clipped = _sunny_panorama()
    src = save_png(tmp_path / "pano.png", ldr)
    for stops in (8.0, 20.0):   # 8: a disc wider than the sun; 20: more than the whole clip can hold
        lit = _lit(tmp_path / str(stops), synthetic_bundle, stops)
        dst = tmp_path / f"pano{stops}.exr"
        r = convert_file(src, dst, synthetic_backend, lit, ConvertOptions(exposure=2.0))
        assert r.hdr.max() <= 2.0 ** 16 - 32                                 # under 16-bit float's 65504
        back = read_exr(dst)
        assert np.isfinite(back).all()
        assert _clip_light(back, clipped) == pytest.approx(_clip_light(r.hdr, clipped), rel=2e-3)  # none clamped
        assert OpenEXR.File(str(dst)).header()["hdrcnf_light_stops"] == f"{stops:.3f}"


def test_the_batch_line_says_above_or_below_the_clip_point():
    def result(peak):
        return ConvertResult(hdr=np.full((2, 2, 3), peak, np.float32), spread=None, panorama=False, seconds=0.1)
    assert result(4.0).summary("a.exr") == "a.exr: peak +2.0 stops above clip"
    # clipped in one channel only: the luminance can peak under the clip point
    assert result(0.5).summary("b.exr") == "b.exr: peak 1.0 stops below clip"
    panorama = result(4.0)
    panorama.info["light_stops"] = 1.5
    assert panorama.summary("c.exr") == "c.exr: peak +2.0 stops above clip, clipped light raised 1.5 stops"


def test_a_bundle_with_a_photo_flow_converts_photos_with_it(tmp_path, synthetic_bundle):
    """One flow per kind of input: a photo runs the photo flow (here one that lifts nothing, so its
    clipped sun stays at the naive inverse), a 2:1 panorama the bundle's own flow; the result says
    which flow ran, with its hash, and the EXR header records it."""
    from engine.backends import create_backend
    from engine.bundle import write_bundle
    from engine.convert import exr_header

    from .synthetic_bundle import build_onnx

    two = write_bundle(tmp_path / "two", synthetic_bundle.onnx_path, synthetic_bundle.meta,
                       photo_onnx_file=build_onnx(tmp_path / "flat.onnx", lift=0.0))
    backend = create_backend(two, "onnxruntime", threads=1)
    assert backend.photo is not None
    photo = convert_array(make_photo(48, 64), backend, two, ConvertOptions(seed=1, full_resolution=True))
    pano = convert_array(make_photo(64, 128), backend, two, ConvertOptions(seed=1, full_resolution=True))
    assert photo.info["flow"] == "photo" and photo.info["flow_sha256"] == two.photo.sha256
    assert pano.info["flow"] == "main" and pano.info["flow_sha256"] == two.sha256 and pano.panorama
    assert photo.hdr.max() <= 1.0 + 1e-6 < pano.hdr.max()      # only the main flow lifts the sun
    forced = convert_array(make_photo(48, 64), backend, two, ConvertOptions(seed=1, panorama="on",
                                                                          full_resolution=True))
    assert forced.info["flow"] == "main"                         # --panorama on: the panorama flow
    header = exr_header("a.jpg", photo, two, ConvertOptions())
    assert header["hdrcnf_flow"] == "photo" and header["hdrcnf_model_sha256"] == two.photo.sha256
    single = convert_array(make_photo(48, 64), create_backend(synthetic_bundle, "onnxruntime", threads=1),
                           synthetic_bundle, ConvertOptions(seed=1))
    assert single.info["flow"] == "main"
