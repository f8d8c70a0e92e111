"""The TensorRT backend's Python logic on a CPU, against tests/perf/fake_tensorrt.py: engine build
with a strongly typed network, TF32 off and one profile; the on-disk cache and its rebuild; the
two-slot pipelined run; the fp16 rewrite; errors. Real TensorRT: test_tensorrt_gpu.py."""
from __future__ import annotations

import importlib.machinery
import itertools
import sys

import numpy as np
import onnx  # the fp16 rewrite; the train extra, installed by `make test`
import pytest

import engine.backends
from engine.backends import _cuda, create_backend, tensorrt_status
from engine.convert import ConvertOptions, convert_array

from ..engine.conftest import make_photo
from . import fake_tensorrt as fake



class _Buf:
    _ids = itertools.count(1)

    def __init__(self, n):
        self.nbytes, self.ptr = n, next(self._ids)
        fake.REG[self.ptr] = np.zeros(max(n, 1), np.uint8)

    def upload(self, host, n, stream):
        fake.REG[self.ptr][:n] = fake.REG[host.ptr][:n]

    def download(self, host, n, stream):
        fake.REG[host.ptr][:n] = fake.REG[self.ptr][:n]

    def view(self, shape, dtype=np.float32):
        k = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return fake.REG[self.ptr][:k].view(dtype).reshape(shape)

    def close(self):
        fake.REG.pop(self.ptr, None)


class _Sync:
    ptr = 1

    def record(self, stream):
        pass

    def wait(self, event):
        pass

    def synchronize(self):
        pass

    def close(self):
        pass


class _Device:
    def __init__(self, ordinal=0):
        self.name, self.compute_capability = "Fake GPU 9000", (9, 0)

    def make_current(self):
        pass

    def mem_info(self):
        return 8 << 30, 16 << 30

    def stream(self):
        return _Sync()

    def event(self):
        return _Sync()

    def alloc(self, n):
        return _Buf(n)

    def pinned(self, n):
        return _Buf(n)


@pytest.fixture
def fake_trt(monkeypatch):
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.delitem(sys.modules, "engine.backends.tensorrt", raising=False)
    monkeypatch.setattr(_cuda, "Device", _Device)
    monkeypatch.setattr(engine.backends, "cuda_devices", lambda: (["Fake GPU 9000"], ""))
    fake.BUILDS.clear()
    yield fake
    sys.modules.pop("engine.backends.tensorrt", None)  # the real import must fail again afterwards


def test_auto_picks_tensorrt_and_builds_once(fake_trt, model_bundle, model_backend, tmp_path):
    ok, device, why = tensorrt_status()
    assert ok and "Fake GPU 9000" in device and not why
    logs = []
    b = create_backend(model_bundle, "auto", cache_dir=tmp_path, tile=512, max_batch=3, log=logs.append)
    flows = 1 + (model_bundle.photo is not None)          # a bundle with a photo flow builds one engine each
    assert b.name == "tensorrt" and b.build_seconds is not None and len(logs) == 2 * flows and "built in" in logs[1]
    if model_bundle.photo is not None:
        assert b.photo.name == "tensorrt" and b.photo.engine_path != b.engine_path
    cfg, net = fake_trt.BUILDS[-1]
    assert fake_trt.BuilderFlag.TF32 in cfg.cleared  # fp32 means fp32
    assert cfg.profiles[0].shapes["ldr"] == ((1, 3, 8, 8), (3, 3, 512, 512), (3, 3, 512, 512))
    assert b.engine_path.is_file() and b.engine_path.with_suffix(".json").is_file()
    assert list(tmp_path.glob("timing-fake-gpu-9000-sm90-*.cache"))

    img = make_photo(512, 1024, seed=3)  # a wrapped panorama: several windows, batched, 2 samples
    opts = ConvertOptions(seed=2, tile=512, samples=2, uncertainty=True)
    want = convert_array(img, model_backend, model_bundle, opts)
    got = convert_array(img, b, model_bundle, opts)
    assert got.info["runs"] < got.info["tiles"] * 2
    np.testing.assert_allclose(got.hdr, want.hdr, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.spread, want.spread, rtol=1e-4, atol=1e-5)

    again = []
    b2 = create_backend(model_bundle, "tensorrt", cache_dir=tmp_path, tile=512, max_batch=3, log=again.append)
    assert b2.build_seconds is None and not again and len(fake_trt.BUILDS) == flows  # loaded, silently
    if model_bundle.photo is not None:                     # photos run the photo flow's engine
        photo, popts = make_photo(256, 320, seed=4), ConvertOptions(seed=2, tile=512)
        want, got = convert_array(photo, model_backend, model_bundle, popts), convert_array(photo, b, model_bundle, popts)
        assert got.info["flow"] == want.info["flow"] == "photo"
        np.testing.assert_allclose(got.hdr, want.hdr, rtol=1e-5, atol=1e-6)


def test_corrupt_cache_is_rebuilt_and_profile_is_enforced(fake_trt, model_bundle, tmp_path):
    b = create_backend(model_bundle, "tensorrt", cache_dir=tmp_path, tile=256, max_batch=1, log=lambda s: None)
    b.engine_path.write_bytes(b"truncated download")
    logs = []
    b2 = create_backend(model_bundle, "tensorrt", cache_dir=tmp_path, tile=256, max_batch=1, log=logs.append)
    assert "could not be loaded" in logs[0] and b2.build_seconds is not None
    x = np.zeros((1, 3, 264, 64), np.float32)
    lat = {s.name: np.zeros(s.shape(1, 264, 64), np.float32) for s in model_bundle.latents}
    with pytest.raises(ValueError, match="profile"):
        b2.run(x, lat)
    x2 = np.zeros((2, 3, 64, 64), np.float32)
    lat2 = {s.name: np.zeros(s.shape(2, 64, 64), np.float32) for s in model_bundle.latents}
    with pytest.raises(ValueError, match="max_batch"):
        b2.run(x2, lat2)


def test_fp16_builds_the_mixed_graph(fake_trt, model_bundle, model_backend, tmp_path):
    b = create_backend(model_bundle, "tensorrt", precision="fp16", cache_dir=tmp_path, tile=256, max_batch=2,
                       log=lambda s: None)
    _, net = fake_trt.BUILDS[-1]
    m = onnx.load_model_from_string(net.onnx)
    assert any(i.data_type == 10 for i in m.graph.initializer)  # fp16 weights went to the builder
    assert "-fp16-" in b.engine_path.name
    img = make_photo(128, 256, seed=1)
    want = convert_array(img, model_backend, model_bundle, ConvertOptions(tile=256))
    got = convert_array(img, b, model_bundle, ConvertOptions(tile=256))
    stops = np.abs(np.log2(got.hdr + 1e-3) - np.log2(want.hdr + 1e-3))
    assert stops.mean() <= 0.05
