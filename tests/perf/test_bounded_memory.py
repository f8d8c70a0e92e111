"""Bounded memory: only the input, the output and the blend weights are full-size.

Measured with tracemalloc (numpy reports its buffers to it), deterministic and fast, so the
8K/16K peak-RSS numbers of benchmarks/bench_memory.py are guarded in every test run by the
same property at a smaller size."""
from __future__ import annotations

import tracemalloc

import numpy as np

from engine.color import luminance
from engine.convert import ConvertOptions, convert_array
from engine.io import read_exr, write_exr
from engine.tiling import default_overlap, min_tile

from ..engine.conftest import make_photo


class SquareBackend:
    """A one-operation numpy 'model' (x squared), so the converter's own memory is measured."""

    name, device = "square", "cpu"

    def batch_size(self, h, w):
        return 2

    def run(self, ldr, latents):
        return ldr * ldr


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_converter_peak_is_input_output_weights_plus_one_batch(synthetic_bundle, monkeypatch):
    import engine.convert

    cache = 2 << 20
    monkeypatch.setattr(engine.convert, "LATENT_CACHE_BYTES", cache)
    tile = 512
    extra = []  # bytes beyond the full-size arrays
    for H, W in ((512, 1024), (1024, 2048), (2048, 4096)):  # panoramas of 0.5, 2 and 8 Mpx
        img = np.full((H, W, 3), 128, np.uint8)
        result, peak = _peak(lambda: convert_array(img, SquareBackend(), synthetic_bundle, ConvertOptions(tile=tile)))
        assert result.panorama
        full = H * W * (3 * 4 + 4)  # float32 output + float32 weight sum (the input is the caller's)
        extra.append(peak - full)
        batch = 2 * tile * tile * (3 * 4) * 6  # windows, latents and predictions of one batch, a few copies
        assert peak <= full + batch + cache, (H, W, peak / 2**20, full / 2**20, batch / 2**20)
    np.testing.assert_allclose(result.hdr, (img / 255.0) ** 2, rtol=1e-5)
    # 16x the pixels, and beyond the full-size arrays still only about one batch of windows
    assert max(extra) <= batch + cache, [e / 2**20 for e in extra]


def test_exr_writer_needs_no_float32_copy(tmp_path):
    rgb = np.random.default_rng(0).random((1024, 1536, 3), dtype=np.float32) * 4
    _, peak = _peak(lambda: write_exr(tmp_path / "a.exr", rgb, half=True))
    assert peak <= rgb.nbytes // 2 + (24 << 20), peak / 2**20  # the half copy + one band
    np.testing.assert_allclose(read_exr(tmp_path / "a.exr"), rgb, rtol=1e-3)


def test_tiled_bounded_path_equals_untiled(model_bundle, model_backend):
    """The streamed, batched, tiled path reproduces the one-window conversion of a small image
    within the tiling tolerance (the same bound as tests/engine: 0.05 stops mean)."""
    img = make_photo(192, 384, seed=11)
    overlap = default_overlap(model_bundle.receptive_field, model_bundle.stride)
    tile = min_tile(overlap, model_bundle.stride) + 6 * model_bundle.stride
    untiled = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=3, panorama="on"))
    tiled = convert_array(img, model_backend, model_bundle, ConvertOptions(seed=3, panorama="on", tile=tile))
    assert tiled.info["tiles"] >= 6 and tiled.info["runs"] < tiled.info["tiles"]  # batched windows
    lt, lu = (np.log2(luminance(r.hdr) + 1e-3) for r in (tiled, untiled))
    assert np.abs(lt - lu).mean() <= 0.05, np.abs(lt - lu).mean()
    assert np.isfinite(tiled.hdr).all()


def test_light_stage_memory_does_not_grow_with_the_panorama(synthetic_bundle, tmp_path, monkeypatch):
    """The panorama light stage reads the image in row bands into a <=1024-wide proxy: beyond the
    full-size arrays it needs a constant few tens of MB, at 2 Mpx as at 8 Mpx."""
    import engine.convert
    from engine.bundle import write_bundle

    from ..engine.test_light import constant_head

    monkeypatch.setattr(engine.convert, "LATENT_CACHE_BYTES", 2 << 20)
    lit = write_bundle(tmp_path / "lit", synthetic_bundle.onnx_path,
                       {**synthetic_bundle.meta, "light": constant_head(3.0).to_meta()})
    extra = []
    for H, W in ((1024, 2048), (2048, 4096)):
        img = np.full((H, W, 3), 128, np.uint8)
        img[H // 8:H // 4, W // 3:W // 2] = 255                  # a clipped sky for the stage to fill
        result, peak = _peak(lambda: convert_array(img, SquareBackend(), lit, ConvertOptions(tile=512, full_resolution=True)))
        assert result.info["light_stops"] == 3.0
        extra.append(peak - H * W * (3 * 4 + 4))
    batch = 2 * 512 * 512 * (3 * 4) * 6 + (2 << 20)
    assert max(extra) <= max(batch, 40 << 20), [e / 2**20 for e in extra]
    assert abs(extra[1] - extra[0]) <= 8 << 20, [e / 2**20 for e in extra]   # 4x the pixels, same extra


def test_the_light_stage_alone_needs_the_same_memory_at_any_size():
    """The panorama light stage reads the image in row bands into a <=1024-wide proxy: given the
    full-size image and result, it needs the same few tens of MB at 2 Mpx as at 8 Mpx.

    Measured on the stage alone, so a full-size temporary in it cannot hide under the flow's
    batch, which dominates the whole conversion's peak (checked above)."""
    from engine import light

    from ..engine.test_light import constant_head

    peaks = []
    for H, W in ((1024, 2048), (2048, 4096)):
        img = np.full((H, W, 3), 128, np.uint8)
        img[H // 8:H // 4, W // 3:W // 2] = 255                  # a clipped sky for the stage to fill
        hdr = ((img / np.float32(255)) ** 2).astype(np.float32)
        before = hdr[H // 8:H // 4, W // 3:W // 2].sum()
        stops, peak = _peak(lambda: light.restore_light(hdr, img, constant_head(3.0), 64.0))
        assert stops == 3.0 and hdr[H // 8:H // 4, W // 3:W // 2].sum() > before   # light was added
        peaks.append(peak)
    assert max(peaks) <= 40 << 20, [p / 2**20 for p in peaks]
    assert abs(peaks[1] - peaks[0]) <= 1 << 20, [p / 2**20 for p in peaks]   # 4x the pixels, same memory


def test_the_flow_scale_path_stays_within_one_batch(synthetic_bundle, monkeypatch):
    """With engine.scale on (the default), a small highlight (the flow runs at full size after
    the clip-depth check) and a deep one (the flow runs on a reduction and its correction is
    carried up in row bands) both stay within the full-size arrays plus one batch."""
    import engine.convert

    cache = 2 << 20
    monkeypatch.setattr(engine.convert, "LATENT_CACHE_BYTES", cache)
    tile, H, W = 512, 2048, 4096
    batch = 2 * tile * tile * (3 * 4) * 6
    full = H * W * (3 * 4 + 4)
    for radius, factor in ((6, 1), (300, 4)):
        img = np.full((H, W, 3), 128, np.uint8)
        yy, xx = np.ogrid[:H, :W]
        img[(yy - H // 3) ** 2 + (xx - W // 2) ** 2 <= radius**2] = 255
        result, peak = _peak(lambda: convert_array(img, SquareBackend(), synthetic_bundle, ConvertOptions(tile=tile)))
        assert result.info["flow_factor"] == factor
        assert peak - full <= batch + cache, (radius, (peak - full) / 2**20, (batch + cache) / 2**20)
