"""TensorRT backend on a real GPU: parity with onnxruntime, the engine cache, the pipeline.

Skipped (with the reason below) wherever `tensorrt` does not import or no CUDA GPU is present;
run them with `bash benchmarks/gpu_check.sh` on a GPU machine."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from engine.backends import create_backend, cuda_devices
from engine.convert import ConvertOptions, convert_array
from engine.latent import LatentField

from ..engine.conftest import make_photo

HAVE = importlib.util.find_spec("tensorrt") is not None and bool(cuda_devices()[0])
pytestmark = [pytest.mark.gpu, pytest.mark.timeout(900),
              pytest.mark.skipif(not HAVE, reason="needs an NVIDIA GPU with TensorRT")]
TILE = 512


def _inputs(bundle, n, h, w, seed=0):
    img = np.stack([make_photo(h, w, seed=seed + i) for i in range(n)]).astype(np.float32) / 255
    x = img.transpose(0, 3, 1, 2).copy()
    lats = [LatentField(bundle.latents, h, w, seed=seed + i, temperature=0.6).full() for i in range(n)]
    return x, {s.name: np.concatenate([d[s.name] for d in lats]) for s in bundle.latents}


def _stops(a, b):
    return np.abs(np.log2(np.maximum(a, 0) + 1e-3) - np.log2(np.maximum(b, 0) + 1e-3))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("trt-cache")


@pytest.fixture(scope="module")
def engines(model_bundle, cache):
    logs = {"fp32": [], "fp16": []}
    made = {p: create_backend(model_bundle, "tensorrt", precision=p, cache_dir=cache, tile=TILE, max_batch=2,
                              log=logs[p].append) for p in ("fp32", "fp16")}
    return made, logs


@pytest.mark.parametrize("n, h, w", [(1, 256, 512), (2, 192, 320)])
def test_fp32_matches_onnxruntime(engines, model_bundle, model_backend, n, h, w):
    x, lat = _inputs(model_bundle, n, h, w)
    ref = model_backend.run(x, lat)
    got = engines[0]["fp32"].run(x, lat)
    assert got.shape == ref.shape and got.dtype == np.float32
    rel = np.abs(got - ref) / (np.abs(ref) + 1e-3)
    assert rel.max() <= 1e-3, rel.max()


def test_fp16_within_budget(engines, model_bundle, model_backend):
    x, lat = _inputs(model_bundle, 2, TILE, TILE)
    ref = model_backend.run(x, lat)
    got = engines[0]["fp16"].run(x, lat)
    d = _stops(got, ref)
    assert np.isfinite(got).all() and d.mean() <= 0.05, d.mean()


def test_second_run_loads_the_cached_engine(engines, model_bundle, cache):
    made, logs = engines
    for p in ("fp32", "fp16"):
        assert made[p].build_seconds is not None and any("built in" in ln for ln in logs[p])
        assert made[p].engine_path.is_file() and made[p].engine_path.with_suffix(".json").is_file()
    again_log = []
    again = create_backend(model_bundle, "tensorrt", precision="fp16", cache_dir=cache, tile=TILE, max_batch=2,
                           log=again_log.append)
    assert again.build_seconds is None and again.engine_path == made["fp16"].engine_path
    assert not any("built" in ln for ln in again_log)  # the build time is printed the first time only
    assert list(cache.glob("timing-*.cache"))  # the persistent timing cache
    other = create_backend(model_bundle, "tensorrt", precision="fp16", cache_dir=cache, tile=TILE, max_batch=1,
                           log=lambda line: None)
    assert other.engine_path != again.engine_path  # another profile, another engine


def test_pipelined_batches_equal_single_runs(engines, model_bundle):
    b = engines[0]["fp32"]
    items = [(i, *_inputs(model_bundle, 1 + i % 2, 128 + 64 * (i % 3), 256, seed=i)) for i in range(5)]
    streamed = [(m, np.array(y)) for m, y in b.run_stream(items)]
    assert [m for m, _ in streamed] == list(range(5))
    for (_, x, lat), (_, y) in zip(items, streamed):
        np.testing.assert_array_equal(y, b.run(x, lat))


def test_whole_conversion_matches_onnxruntime(engines, model_bundle, model_backend):
    img = make_photo(512, 1024, seed=3, sun=(0.3, 0.05))  # a panorama: wrapped, several windows
    opts = ConvertOptions(seed=2, tile=TILE)
    ref = convert_array(img, model_backend, model_bundle, opts)
    for p, atol in (("fp32", 1e-3), ("fp16", 0.05)):
        got = convert_array(img, engines[0][p], model_bundle, opts)
        assert got.info["tiles"] == ref.info["tiles"] > 1
        assert _stops(got.hdr, ref.hdr).mean() <= atol, p


def test_window_outside_the_profile_is_a_clear_error(engines, model_bundle):
    x, lat = _inputs(model_bundle, 1, TILE + 8, 64)
    with pytest.raises(ValueError, match="profile"):
        engines[0]["fp32"].run(x, lat)
