"""The fast CPU path and the engine's optional dependencies: backend selection, session
settings, tile batching, latents drawn once, imports without Pillow, `--backend tensorrt`
without a GPU."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.backends import create_backend, cuda_devices, run_batches
from engine.bundle import load_bundle
from engine.convert import ConvertOptions, convert_array
from engine.latent import LatentField

from ..engine.conftest import make_photo, save_jpeg

REPO = Path(__file__).resolve().parents[2]
HAS_TRT_GPU = importlib.util.find_spec("tensorrt") is not None and bool(cuda_devices()[0])


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.skipif(HAS_TRT_GPU, reason="TensorRT and a GPU are present")
def test_backend_tensorrt_without_gpu_exits_2_with_one_line(tmp_path, synthetic_bundle):
    src = save_jpeg(tmp_path / "p.jpg", make_photo(32, 48))
    r = subprocess.run([sys.executable, "-m", "engine", "convert", str(src), "-o", str(tmp_path / "p.exr"),
                        "--backend", "tensorrt", "--model", str(synthetic_bundle.path)],
                       capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("hdrcnf: error: tensorrt backend unavailable: ")
    assert lines[0].endswith("use --backend onnxruntime")
    assert not (tmp_path / "p.exr").exists()


def test_onnxruntime_session_settings(synthetic_bundle):
    b = create_backend(synthetic_bundle, "onnxruntime", threads=2, cache_dir="/nonexistent/ignored")
    so = b.session.get_session_options()
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    assert so.enable_cpu_mem_arena and not so.enable_mem_pattern
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert b.batch_size(64, 64) == 2  # one window per thread on a CPU ...
    assert b.batch_size(2048, 2048) == 1  # ... within the pixel budget


def test_run_batches_plain_and_streaming(synthetic_bundle, synthetic_backend):
    x = np.random.default_rng(0).random((2, 3, 16, 24), dtype=np.float32)
    lat = LatentField(synthetic_bundle.latents, 16, 24, seed=1).full()
    lat = {k: np.repeat(v, 2, axis=0) for k, v in lat.items()}
    want = synthetic_backend.run(x, lat)

    class Plain:  # only the minimal protocol
        name, device = "plain", "cpu"

        def run(self, ldr, latents):
            return synthetic_backend.run(ldr, latents)

    got = list(run_batches(Plain(), [("a", x, lat), ("b", x[:1], {k: v[:1] for k, v in lat.items()})]))
    assert [m for m, _ in got] == ["a", "b"]
    np.testing.assert_array_equal(got[0][1], want)
    np.testing.assert_allclose(got[1][1], want[:1], rtol=1e-5, atol=1e-7)  # batch 1 vs 2: other kernels

    class Streaming(Plain):
        calls = 0

        def run_stream(self, batches):
            for meta, ldr, latents in batches:
                Streaming.calls += 1
                yield meta, self.run(ldr, latents)

    assert [m for m, _ in run_batches(Streaming(), [("a", x, lat)])] == ["a"] and Streaming.calls == 1


class _Counting:
    """Wraps a backend, records the batch shapes it is given."""

    def __init__(self, inner, batch):
        self.inner, self.batch, self.shapes = inner, batch, []
        self.name, self.device = "counting", "cpu"

    def batch_size(self, h, w):
        return self.batch

    def run(self, ldr, latents):
        self.shapes.append(ldr.shape)
        return self.inner.run(ldr, latents)


@pytest.mark.parametrize("samples", [1, 3])
def test_tile_batching_does_not_change_the_result(synthetic_bundle, synthetic_backend, samples):
    img = make_photo(96, 200, seed=2)
    opts = ConvertOptions(seed=4, tile=40, samples=samples, uncertainty=samples > 1, temperature=1.0)
    one = _Counting(synthetic_backend, 1)
    many = _Counting(synthetic_backend, 5)
    a = convert_array(img, one, synthetic_bundle, opts)
    b = convert_array(img, many, synthetic_bundle, opts)
    assert max(s[0] for s in one.shapes) == 1 and 1 < max(s[0] for s in many.shapes) <= 5
    assert len(many.shapes) < len(one.shapes) == a.info["tiles"] * samples
    np.testing.assert_allclose(b.hdr, a.hdr, rtol=1e-6, atol=1e-7)
    if samples > 1:
        np.testing.assert_allclose(b.spread, a.spread, rtol=1e-5, atol=1e-6)


def test_latent_blocks_are_drawn_once_per_image(synthetic_bundle):
    f = LatentField(synthetic_bundle.latents, 512, 1024, seed=0, block=16)
    for y0 in range(0, 512, 128):  # overlapping windows, like a tile plan
        for x0 in range(-32, 1024, 256):
            f.crop(max(0, y0 - 32), x0, min(512, y0 + 160) - max(0, y0 - 32), 320)
    distinct = sum(-(-(512 // s.scale) // 16) * -(-(1024 // s.scale) // 16) for s in synthetic_bundle.latents)
    assert f.blocks_drawn == distinct
    small = LatentField(synthetic_bundle.latents, 64, 64, seed=0, block=16, cache_bytes=0)
    ref = LatentField(synthetic_bundle.latents, 64, 64, seed=0, block=16).full()
    got = small.full()
    for k in ref:  # without a cache: the same values, just drawn again
        np.testing.assert_array_equal(got[k], ref[k])


def test_engine_works_without_pillow(tmp_path, synthetic_bundle):
    """The Blender add-on may ship without Pillow: the engine imports, converts arrays and
    writes EXRs; only reading a photo file needs it (and says so in one line)."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules['PIL'] = None
        import numpy as np
        from engine.bundle import load_bundle
        from engine.backends import create_backend
        from engine.convert import ConvertOptions, convert_array
        from engine.io import read_exr, write_exr
        import engine.cli, engine.tiling, engine.latent
        b = load_bundle({str(synthetic_bundle.path)!r})
        r = convert_array(np.full((24, 40, 3), 200, np.uint8), create_backend(b, 'onnxruntime'), b, ConvertOptions())
        write_exr({str(tmp_path / 'a.exr')!r}, r.hdr)
        assert read_exr({str(tmp_path / 'a.exr')!r}).shape == (24, 40, 3)
        from engine.errors import InputError
        from engine.io import read_ldr
        try:
            read_ldr({str(tmp_path / 'a.exr')!r})
        except InputError as e:
            assert 'Pillow' in str(e), e
        else:
            raise AssertionError('reading a photo without Pillow must fail clearly')
        assert not [m for m in sys.modules if m.split('.')[0] == 'PIL' and sys.modules[m] is not None]
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_cli_batch_flag(tmp_path, capsys, synthetic_bundle):
    from engine.cli import main

    src = save_jpeg(tmp_path / "p.jpg", make_photo(64, 128))
    rc = main(["convert", str(src), "-o", str(tmp_path / "a.exr"), "--model", str(synthetic_bundle.path),
               "--tile", "40", "--batch", "1"])
    rc2 = main(["convert", str(src), "-o", str(tmp_path / "b.exr"), "--model", str(synthetic_bundle.path),
                "--tile", "40", "--batch", "7", "--cache-dir", str(tmp_path / "cache")])
    assert rc == rc2 == 0
    from engine.io import read_exr

    np.testing.assert_array_equal(read_exr(tmp_path / "a.exr"), read_exr(tmp_path / "b.exr"))
    assert not (tmp_path / "cache").exists()  # onnxruntime has nothing to cache


def test_default_bundle_is_export_friendly():
    """One static graph: no control flow, every convolution weight a constant, valid ONNX."""
    import onnx  # the train extra, installed by `make test`

    b = load_bundle()
    m = onnx.load(str(b.onnx_path))
    onnx.checker.check_model(m, full_check=True)
    ops = {n.op_type for n in m.graph.node}
    assert not ops & {"If", "Loop", "Scan", "SequenceConstruct"}, ops
    consts = {i.name for i in m.graph.initializer} | {n.output[0] for n in m.graph.node if n.op_type == "Constant"}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert convs and all(n.input[1] in consts for n in convs)
