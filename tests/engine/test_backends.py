"""Backend selection and availability (real onnxruntime; TensorRT only where installed)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from engine.backends import available_backends, create_backend, cuda_devices
from engine.backends.onnxruntime import physical_cores
from engine.errors import InputError

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_available_backends_lists_both():
    rows = available_backends()
    names = [r[0] for r in rows]
    assert names == ["onnxruntime", "tensorrt"]
    ort_row = rows[0]
    assert ort_row[2] is True and ort_row[1]
    for _name, device, ok, reason in rows:
        assert isinstance(device, str) and isinstance(reason, str) and (ok or reason)


def test_auto_and_threads(synthetic_bundle):
    b = create_backend(synthetic_bundle, "auto", threads=1)
    if not HAS_TRT:
        assert b.name == "onnxruntime"
    assert b.device in ("cpu", "cuda")
    assert b.threads == 1
    assert b.session.get_session_options().intra_op_num_threads == 1
    assert b.session.get_session_options().inter_op_num_threads == 1
    default = create_backend(synthetic_bundle, "onnxruntime")
    assert default.threads == physical_cores() >= 1


def test_run_shapes(synthetic_backend, synthetic_bundle):
    x = np.random.default_rng(0).random((2, 3, 16, 24), dtype=np.float32)
    lat = {s.name: np.zeros(s.shape(2, 16, 24), np.float32) for s in synthetic_bundle.latents}
    y = synthetic_backend.run(x, lat)
    assert y.shape == (2, 3, 16, 24) and y.dtype == np.float32


@pytest.mark.parametrize("name, precision, needle", [
    ("cuda", "fp32", "unknown backend"),
    ("onnxruntime", "fp16", "fp32"),
    ("onnxruntime", "int8", "precision"),
])
def test_bad_choices(synthetic_bundle, name, precision, needle):
    with pytest.raises(InputError, match=needle) as e:
        create_backend(synthetic_bundle, name, precision=precision)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(HAS_TRT and bool(cuda_devices()[0]), reason="TensorRT and a GPU are present")
def test_tensorrt_unavailable_is_one_clear_line(synthetic_bundle):
    with pytest.raises(InputError) as e:
        create_backend(synthetic_bundle, "tensorrt")
    msg = str(e.value)
    assert msg.startswith("tensorrt backend unavailable: ") and msg.endswith("use --backend onnxruntime")
    with pytest.raises(InputError, match="fp16"):
        create_backend(synthetic_bundle, "auto", precision="fp16")


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed")
def test_tensorrt_module_import_fails_clearly():
    with pytest.raises(InputError, match="tensorrt backend unavailable"):
        import engine.backends.tensorrt  # noqa: F401


def test_cuda_probe_never_raises():
    names, reason = cuda_devices()
    assert isinstance(names, list) and (names or reason)
