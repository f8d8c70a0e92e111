"""The fp16 recipe TensorRT builds from, checked on the CPU: a valid ONNX graph whose
convolutions are fp16 and whose flow state stays fp32, and (emulated with onnxruntime) within
the fp16 accuracy budget of 0.05 stops mean absolute difference."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engine.backends.mixed_precision import FLOAT16, fp16_summary, to_mixed_fp16
from engine.latent import LatentField

from ..engine.conftest import make_photo


def _session(model):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _feeds(bundle, h=128, w=256):
    img = make_photo(h, w, seed=5).astype(np.float32) / 255
    lat = LatentField(bundle.latents, h, w, seed=1, temperature=bundle.default_temperature).full()
    return {bundle.input_name: img.transpose(2, 0, 1)[None].copy(), **lat}


def _stops(a, b):
    return np.abs(np.log2(np.maximum(a, 0) + 1e-3) - np.log2(np.maximum(b, 0) + 1e-3))


def test_recipe_types(model_bundle):
    m = onnx.load(str(model_bundle.onnx_path))
    mixed = to_mixed_fp16(m)  # runs onnx.checker itself
    onnx.checker.check_model(mixed, full_check=True)
    assert [i.type.tensor_type.elem_type for i in mixed.graph.input] == [1] * len(m.graph.input)
    assert [o.type.tensor_type.elem_type for o in mixed.graph.output] == [1]
    summary = fp16_summary(m)
    assert summary["Conv"]["fp32"] == 0 and summary["Conv"]["fp16"] > 0
    for op in ("Exp", "Tanh", "Pow"):  # transcendental functions stay fp32
        assert summary.get(op, {"fp16": 0})["fp16"] == 0, op
    half_weights = [i for i in mixed.graph.initializer if i.data_type == FLOAT16]
    assert len(half_weights) >= 2 * summary["Conv"]["fp16"] * 0.9  # weights and biases


def test_emulated_fp16_within_budget(model_bundle):
    m = onnx.load(str(model_bundle.onnx_path))
    feeds = _feeds(model_bundle)
    ref = _session(m).run(None, feeds)[0]
    sim = _session(to_mixed_fp16(m, simulate=True)).run(None, feeds)[0]
    d = _stops(sim, ref)
    assert d.mean() <= 0.05, d.mean()  # the acceptance budget for TensorRT fp16
    assert d.mean() > 0  # the emulation does round
    try:
        real = _session(to_mixed_fp16(m)).run(None, feeds)[0]
    except Exception as e:  # onnxruntime builds without fp16 CPU kernels
        pytest.skip(f"onnxruntime cannot run the fp16 graph on this CPU: {str(e).splitlines()[0][:120]}")
    assert _stops(real, ref).mean() <= 0.05
