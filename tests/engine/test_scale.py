"""engine.scale: which reduction the flow runs at, and carrying its correction back up."""
from __future__ import annotations

import numpy as np
import pytest

from engine import scale
from engine.color import srgb_to_linear
from engine.convert import ConvertOptions, convert_array

from .conftest import make_photo


def disc_photo(h: int, w: int, radius: float, centres=((0.5, 0.5),)) -> np.ndarray:
    """Mid-grey uint8 photo with fully clipped discs of ``radius`` px."""
    img = np.full((h, w, 3), 90, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for cy, cx in centres:
        img[(yy - cy * h) ** 2 + (xx - cx * w) ** 2 <= radius**2] = 255
    return img


def test_small_highlights_stay_at_full_resolution():
    # twelve glints of radius 6 in a 2000-px photo: every clipped pixel is within 6 px of the edge
    centres = [(0.2 + 0.2 * i, 0.1 + 0.2 * j) for i in range(3) for j in range(4)]
    assert scale.flow_view(disc_photo(1200, 2000, 6, centres), panorama=False)[0] == 1


def test_deep_clip_is_reduced_until_the_window_sees_its_edge():
    # radius 60: 60 px deep; a quarter is 15 px, within the 16-px rule, and 1024/4 = 256 is allowed
    assert scale.flow_view(disc_photo(683, 1024, 60), panorama=False)[0] == 4
    # radius 24: half is 12 px deep
    assert scale.flow_view(disc_photo(683, 1024, 24), panorama=False)[0] == 2


def test_never_below_the_training_size():
    # the whole photo clipped would want any reduction; the floor is a 256-px long side
    assert scale.flow_view(np.full((600, 1000, 3), 255, np.uint8), panorama=False)[0] == 2
    assert scale.flow_view(np.full((200, 300, 3), 255, np.uint8), panorama=False)[0] == 1
    # panoramas keep at least the width of the training panoramas
    pano = disc_photo(1024, 2048, 200)
    assert scale.flow_view(pano, panorama=True)[0] == 2
    assert scale.flow_view(pano, panorama=False)[0] == 8


def test_float_and_uint16_inputs_agree_with_uint8():
    img = disc_photo(683, 1024, 60)
    assert scale.flow_view(img.astype(np.float32) / 255, panorama=False)[0] == 4
    assert scale.flow_view(img.astype(np.uint16) * 257, panorama=False)[0] == 4


def test_reduce_is_an_area_mean_in_unit_floats():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2, :2] = 255
    small = scale.reduce(img, 2)
    assert small.dtype == np.float32 and small.shape == (2, 2, 3)
    np.testing.assert_allclose(small[..., 0], [[1.0, 0.0], [0.0, 0.0]])


def test_upsample_keeps_constants_and_ramps_and_bands_match_the_whole():
    const = np.full((5, 7, 3), 2.5, np.float32)
    np.testing.assert_allclose(scale.upsample(const, 20, 28), 2.5, rtol=1e-6)
    ramp = np.tile(np.arange(8, dtype=np.float32), (4, 1))  # value = column
    up = scale.upsample(ramp, 8, 32)
    # output column centres map to input positions (x + 0.5) / 4 - 0.5: linear between the edges
    inner = np.arange(2, 30)
    np.testing.assert_allclose(up[0, inner], (inner + 0.5) / 4 - 0.5, atol=1e-5)
    whole = scale.upsample(np.random.default_rng(0).random((6, 9, 3)).astype(np.float32), 25, 40)
    part = scale.upsample(np.random.default_rng(0).random((6, 9, 3)).astype(np.float32), 25, 40, rows=(7, 19))
    np.testing.assert_array_equal(part, whole[7:19])


def test_zero_correction_gives_the_naive_inverse():
    img = make_photo(50, 80)
    out = np.empty((50, 80, 3), np.float32)
    scale.apply_correction(out, img, np.zeros((10, 16, 3), np.float32), 1e-3)
    np.testing.assert_allclose(out, srgb_to_linear(img / 255.0), rtol=1e-5, atol=1e-7)


def test_a_large_photo_carries_the_reduced_conversion_up(model_bundle, model_backend):
    img = make_photo(683, 1024, seed=2, sun=(0.45, 0.5))  # a sun about 60 px deep
    opts = dict(seed=3, panorama="off")
    r = convert_array(img, model_backend, model_bundle, ConvertOptions(**opts))
    assert r.info["flow_factor"] == 4 and r.hdr.shape == (683, 1024, 3) and np.isfinite(r.hdr).all()
    full = convert_array(img, model_backend, model_bundle, ConvertOptions(full_resolution=True, **opts))
    assert full.info["flow_factor"] == 1
    # the sun's centre comes out as the reduced photo's conversion has it there
    small = scale.reduce(img, 4)
    low = convert_array(small, model_backend, model_bundle, ConvertOptions(full_resolution=True, **opts))
    cy, cx = round(0.45 * 683), 512
    assert r.hdr[cy, cx].max() > 1.5
    np.testing.assert_allclose(r.hdr[cy - 2:cy + 3, cx - 2:cx + 3].mean((0, 1)),
                               low.hdr[cy // 4, cx // 4], rtol=0.15)
    # measured pixels keep the photo's full-resolution detail (its noise included)
    corner = (slice(600, 680), slice(0, 80))
    naive = srgb_to_linear(img[corner] / 255.0)
    ratio = np.log2((r.hdr[corner] + 1e-3) / (naive + 1e-3))
    assert np.abs(ratio).mean() < 0.05


def test_uncertainty_comes_back_at_full_size(model_bundle, model_backend):
    img = make_photo(683, 1024, seed=2, sun=(0.45, 0.5))
    r = convert_array(img, model_backend, model_bundle, ConvertOptions(samples=2, uncertainty=True, panorama="off"))
    assert r.info["flow_factor"] > 1 and r.spread.shape == (683, 1024) and np.isfinite(r.spread).all()


def test_full_resolution_must_be_a_bool():
    from engine.errors import InputError
    with pytest.raises(InputError, match="full_resolution"):
        ConvertOptions(full_resolution="yes").validate()


def test_the_bundle_states_the_rule_and_the_converter_follows_it(tmp_path, synthetic_bundle, synthetic_backend):
    from engine.bundle import load_bundle, write_bundle

    assert synthetic_bundle.flow_scale == scale.FlowScale()            # a bundle without "scale"
    img = disc_photo(683, 1024, 60)
    opts = ConvertOptions(panorama="off")
    assert convert_array(img, synthetic_backend, synthetic_bundle, opts).info["flow_factor"] == 4
    # a model trained on larger views would say so: the same photo is then reduced less
    rule = {"depth_px": 16, "photo_side": 512, "panorama_width": 2048}
    big = write_bundle(tmp_path / "big", synthetic_bundle.onnx_path, {**synthetic_bundle.meta, "scale": rule})
    assert load_bundle(tmp_path / "big").flow_scale == scale.FlowScale(16.0, 512, 2048)
    assert convert_array(img, synthetic_backend, big, opts).info["flow_factor"] == 2
    # and the shipped bundle states the rule its numbers were measured with
    assert load_bundle().meta["scale"] == scale.FlowScale().to_meta()


@pytest.mark.parametrize("block, needle", [
    ([16], "must be a JSON object"),
    ({"depth": 16}, "unknown keys ['depth']"),
    ({"photo_side": 256.5}, "'photo_side' must be a positive integer"),
    ({"panorama_width": 0}, "'panorama_width' must be a positive integer"),
    ({"depth_px": -1}, "'depth_px' must be a non-negative number"),
    ({"depth_px": True}, "'depth_px' must be a non-negative number"),
])
def test_a_bad_scale_block_is_a_one_line_bundle_error(tmp_path, synthetic_bundle, block, needle):
    from engine.bundle import write_bundle
    from engine.errors import BundleError

    with pytest.raises(BundleError) as e:
        write_bundle(tmp_path / "b", synthetic_bundle.onnx_path, {**synthetic_bundle.meta, "scale": block})
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_the_exr_and_the_summary_say_which_scale_the_flow_ran_at(tmp_path, model_bundle, model_backend):
    import OpenEXR

    from engine.convert import convert_file

    from .conftest import save_png

    src = save_png(tmp_path / "plate.png", make_photo(683, 1024, seed=2, sun=(0.45, 0.5)))
    for full, factor in ((False, "4"), (True, "1")):
        dst = tmp_path / f"plate_{factor}.exr"
        result = convert_file(src, dst, model_backend, model_bundle,
                              ConvertOptions(panorama="off", full_resolution=full))
        assert OpenEXR.File(str(dst)).header()["hdrcnf_flow_factor"] == factor
        assert ("judged at 1/4 size" in result.summary(dst)) == (not full)
