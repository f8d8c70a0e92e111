"""A tiny model bundle that honours the bundle contract, built with onnx.helper (no torch).

hdr = srgb_to_linear(ldr) * exp(4 * blur5x5(relu(8 * ldr - 7.5)) * g),
g = 2 + up8(mean_c z3) + 0.5 * up2(mean_c z1) + 0.25 * up4(mean_c z2)

so well-exposed pixels come back as the naive inverse, clipped pixels are lifted by a few stops
by an amount that depends on the latents (different seeds differ there, equal seeds agree),
every latent is consumed, and the 5x5 blur gives a small, known receptive field (radius 2).
Used for the bundle-corruption tests and as the fallback model until the real one is shipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from engine.bundle import Bundle, write_bundle

LATENTS = [("z1", 6, 2), ("z2", 12, 4), ("z3", 48, 8)]
STRIDE = 8


def build_onnx(path: Path, output_name: str = "hdr", lift: float = 4.0) -> Path:
    """`lift` scales the log gain in clipped pixels (0: the naive inverse everywhere)."""
    def const(name, value):
        return helper.make_tensor(name, TensorProto.FLOAT, [], [float(value)])

    inits = [const(n, v) for n, v in [
        ("zero", 0.0), ("one", 1.0), ("thr", 0.04045), ("k1292", 12.92), ("k055", 0.055), ("k1055", 1.055),
        ("k24", 2.4), ("k8", 8.0), ("k75", 7.5), ("k2", 2.0), ("k05", 0.5), ("k025", 0.25), ("k4", lift)]]
    inits.append(helper.make_tensor("roi", TensorProto.FLOAT, [0], []))
    for s in (2, 4, 8):
        inits.append(helper.make_tensor(f"scales{s}", TensorProto.FLOAT, [4], [1.0, 1.0, float(s), float(s)]))
    N = helper.make_node
    nodes = [
        N("Clip", ["ldr", "zero", "one"], ["x"]),
        N("LessOrEqual", ["x", "thr"], ["low"]),
        N("Div", ["x", "k1292"], ["lin_lo"]),
        N("Add", ["x", "k055"], ["xa"]),
        N("Div", ["xa", "k1055"], ["xb"]),
        N("Pow", ["xb", "k24"], ["lin_hi"]),
        N("Where", ["low", "lin_lo", "lin_hi"], ["lin"]),
        N("Mul", ["x", "k8"], ["x8"]),
        N("Sub", ["x8", "k75"], ["x8s"]),
        N("Relu", ["x8s"], ["mask"]),
        N("AveragePool", ["mask"], ["mask_b"], kernel_shape=[5, 5], pads=[2, 2, 2, 2], count_include_pad=0),
    ]
    terms = []
    for name, _, s in LATENTS:
        nodes.append(N("ReduceMean", [name], [f"{name}_m"], axes=[1], keepdims=1))
        nodes.append(N("Resize", [f"{name}_m", "roi", f"scales{s}"], [f"{name}_u"], mode="nearest"))
        terms.append(f"{name}_u")
    nodes += [
        N("Mul", ["z1_u", "k05"], ["t1"]),
        N("Mul", ["z2_u", "k025"], ["t2"]),
        N("Add", ["z3_u", "k2"], ["g0"]),
        N("Add", ["g0", "t1"], ["g1"]),
        N("Add", ["g1", "t2"], ["g"]),
        N("Mul", ["mask_b", "g"], ["mg"]),
        N("Mul", ["mg", "k4"], ["mg4"]),
        N("Exp", ["mg4"], ["gain"]),
        N("Mul", ["lin", "gain"], [output_name]),
    ]
    inputs = [helper.make_tensor_value_info("ldr", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    for name, c, s in LATENTS:
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", c, f"H{s}", f"W{s}"]))
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 3, "H", "W"])]
    graph = helper.make_graph(nodes, "synthetic_hdrcnf", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hdrcnf-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def synthetic_meta(receptive_field: int = 8) -> dict:
    return {
        "name": "synthetic-test", "version": "0.0.1",
        "levels": len(LATENTS), "stride": STRIDE,
        "latents": [{"name": n, "channels": c, "scale": s} for n, c, s in LATENTS],
        "receptive_field": receptive_field, "default_temperature": 0.6,
        "input": {"name": "ldr", "encoding": "srgb", "layout": "NCHW"},
        "output": {"name": "hdr", "encoding": "linear", "clip_point": 1.0},
        "target_transform": {"type": "synthetic"},
        "config": {}, "training": {"data": "none (synthetic test graph)"}, "scores": {"psnr": None},
        "licence": "CC0-1.0",
    }


def make_synthetic_bundle(directory, receptive_field: int = 8) -> Bundle:
    """Build the graph and write a complete bundle into `directory` through write_bundle."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    src = build_onnx(directory.parent / f"{directory.name}-src.onnx")
    return write_bundle(directory, src, synthetic_meta(receptive_field))


def reference_hdr(ldr: np.ndarray) -> np.ndarray:
    """What the graph computes at temperature 0 (latents all zero), in numpy: (H, W, 3)."""
    from engine.color import srgb_to_linear

    x = np.clip(ldr.astype(np.float32), 0, 1)
    m = np.maximum(8 * x - 7.5, 0)
    H, W = m.shape[:2]
    pad = np.pad(m, ((2, 2), (2, 2), (0, 0)), constant_values=np.nan)
    win = np.stack([pad[dy:dy + H, dx:dx + W] for dy in range(5) for dx in range(5)])
    blur = np.nanmean(win, axis=0)
    return srgb_to_linear(x) * np.exp(4 * blur * 2.0)


def make_broken_bundle(directory) -> Bundle:
    """A bundle that passes every check but whose graph returns 2 channels instead of 3: a
    defective model, which the CLI must report as an internal error (exit 1), not crash on."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    inputs = [helper.make_tensor_value_info("ldr", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    for name, c, s in LATENTS:
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", c, f"H{s}", f"W{s}"]))
    inits = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in
             [("start", 0), ("end", 2), ("axis", 1)]]
    nodes = [helper.make_node("Slice", ["ldr", "start", "end", "axis"], ["hdr"])]
    outputs = [helper.make_tensor_value_info("hdr", TensorProto.FLOAT, ["N", 2, "H", "W"])]
    model = helper.make_model(helper.make_graph(nodes, "broken", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    src = directory.parent / f"{directory.name}-src.onnx"
    onnx.save(model, str(src))
    return write_bundle(directory, src, synthetic_meta())
