"""Export a training checkpoint's reverse pass to the engine's model bundle (ONNX + model.json).

    python -m training.export runs/compact/best -o engine/models/default

The graph takes the LDR and one standard-normal latent per level and returns linear HDR; the
priors' means/scales and the target transform's inverse are inside it, so the host only draws
``T * N(0, 1)``. ONNX has no matrix inverse, so every 1x1 convolution's inverse is computed once
in float64 and baked in. The export verifies itself against PyTorch with onnxruntime at two sizes
and fails if they disagree.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from engine.bundle import Bundle, write_bundle
from engine.errors import InputError
from engine.geometry import GEOMETRY_CHANNELS, window_planes
from engine.scale import FlowScale

from .checkpoint import load_model
from .flow import InvConv1x1
from .flow.hdrcnf import latent_channels
from .model import HDRCNF

OPSET = 17
PARITY_RTOL = 1e-3
LICENCE = ("GPL-3.0-or-later (code); weights trained on CC0-1.0 Poly Haven HDRIs, BSD-3-Clause "
           "OpenEXR sample images and MIT open3d skyboxes")


def _freeze(model: HDRCNF) -> None:
    for m in model.modules():
        if isinstance(m, InvConv1x1):
            m.freeze()


def _inputs(model: HDRCNF, n: int, h: int, w: int, temperature: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    ldr = torch.rand(n, 3, h, w, generator=g)
    ldr[:, :, : h // 3, : w // 3] = 1.0  # a clipped block, where the model does the most
    if model.cfg.encoder.geometry:  # the planes of a panorama's rows (engine.geometry)
        planes = torch.from_numpy(window_planes(0, h, w, h, panorama=True).transpose(2, 0, 1).copy())
        ldr = torch.cat([ldr, planes.expand(n, -1, -1, -1)], dim=1)
    latents = [temperature * torch.randn(s, generator=g) for s in model.latent_shapes(n, h, w)]
    return ldr, latents


# Clipped discs the effective radius is also measured inside: where a white area hides how bright
# it is, the flow draws on context further away than on textured content (measured on 0.4.0's
# weights: 53 px on random content, 73 px inside a 48-px disc, 84 px inside a 64-px one), and a
# tile overlap short of that shows as a step in a highlight that straddles a tile seam.
CLIPPED_PROBE_RADII = (16, 32, 64)


def receptive_field(model: HDRCNF, size: int | None = None, mass: float = 0.999) -> tuple[int, int]:
    """(effective, full) radius in pixels of the centre output pixel's dependence on the inputs.

    Measured with autograd on the real weights: the full radius is where any gradient is non-zero,
    the effective radius holds ``mass`` of the total |gradient| (LDR and latents together), the
    largest over probes of random content with the centre on texture and inside clipped discs
    (CLIPPED_PROBE_RADII). Tile overlap uses the effective radius; beyond it a change of input
    moves the output by less than the tiling tolerance. The probe is 256 px, larger for models
    that downsample more (a context branch at H/16 sees ~±200 px)."""
    size = size or max(256, 32 * model.cfg.stride)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    dist = torch.maximum((yy - size // 2).abs(), (xx - size // 2).abs()).flatten()
    order = torch.argsort(dist)
    discs = [None, *(((yy - size // 2) ** 2 + (xx - size // 2) ** 2) < r * r for r in CLIPPED_PROBE_RADII)]
    effective = full = 0
    for disc in discs:
        g = _centre_gradient(model, size, disc).flatten().double()
        cum = torch.cumsum(g[order], 0) / g.sum()
        effective = max(effective, int(dist[order][int(torch.searchsorted(cum, torch.tensor(mass, dtype=cum.dtype)))]))
        full = max(full, int(dist[g > 0].max()))
    return effective, full


def _centre_gradient(model: HDRCNF, size: int, disc: torch.Tensor | None) -> torch.Tensor:
    """(size, size) |d output(centre) / d input| summed over channels, latents spread over the
    pixels they cover; ``disc`` (a boolean mask) is set to the clip point first."""
    ldr, latents = _inputs(model, 1, size, size, 0.6, 1)
    if disc is not None:
        ldr[:, :3, disc] = 1.0
    ldr.requires_grad_(True)
    for z in latents:
        z.requires_grad_(True)
    out = model(ldr, *latents)
    out[0, :, size // 2, size // 2].sum().backward()
    grad = ldr.grad.abs().sum(dim=(0, 1))
    for z in latents:
        s = size // z.shape[-1]
        grad = grad + torch.repeat_interleave(torch.repeat_interleave(z.grad.abs().sum(dim=(0, 1)), s, 0), s, 1) / (s * s)
    return grad


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def check_parity(model: HDRCNF, onnx_path: Path, temperature: float,
                 sizes=((1, 64, 96), (2, 48, 128))) -> float:
    """Max relative error of onnxruntime vs PyTorch over two input sizes; raises if > PARITY_RTOL."""
    sess = _session(onnx_path)
    worst = 0.0
    for i, (n, h, w) in enumerate(sizes):
        ldr, latents = _inputs(model, n, h, w, temperature, 100 + i)
        with torch.no_grad():
            ref = model(ldr, *latents).numpy()
        feeds = {"ldr": ldr.numpy(), **{f"z{k + 1}": z.numpy() for k, z in enumerate(latents)}}
        got = sess.run(["hdr"], feeds)[0]
        if got.shape != ref.shape:
            raise RuntimeError(f"onnx output shape {got.shape} != torch {ref.shape}")
        rel = float(np.max(np.abs(got - ref) / (np.abs(ref) + 1e-3)))
        worst = max(worst, rel)
    if not worst <= PARITY_RTOL:
        raise RuntimeError(f"ONNX parity failed: max relative error {worst:.3g} > {PARITY_RTOL}")
    return worst


def export_onnx(model: HDRCNF, path: Path) -> None:
    levels = model.cfg.flow.levels
    ldr, latents = _inputs(model, 1, 64, 64, 0.6, 0)
    names = [f"z{i + 1}" for i in range(levels)]
    dyn = {"ldr": {0: "n", 2: "h", 3: "w"}, "hdr": {0: "n", 2: "h", 3: "w"}}
    for i, name in enumerate(names):
        s = 2 ** (i + 1)
        dyn[name] = {0: "n", 2: f"h_{s}", 3: f"w_{s}"}
    with torch.no_grad():
        torch.onnx.export(model, (ldr, *latents), str(path), input_names=["ldr", *names], output_names=["hdr"],
                          dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def export_bundle(checkpoint: str | Path, out_dir: str | Path, name: str | None = None, version: str = "0.1.0",
                  temperature: float | None = None, scores: dict | None = None) -> Bundle:
    """Checkpoint folder -> verified model bundle in ``out_dir``."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not (checkpoint / "model.safetensors").exists():
        raise InputError(f"{checkpoint}: not a training checkpoint (no model.safetensors)")
    model, cfg, state = load_model(checkpoint)
    _freeze(model)
    temperature = cfg.inference_temperature if temperature is None else temperature
    effective_rf, full_rf = receptive_field(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path)
        parity = check_parity(model, onnx_path, temperature)
        stride = cfg.model.stride
        meta = {
            "name": name or f"hdrcnf-{cfg.name}",
            "version": version,
            "levels": cfg.model.flow.levels,
            "stride": stride,
            "latents": [{"name": f"z{i + 1}", "channels": c, "scale": 2 ** (i + 1)}
                        for i, c in enumerate(latent_channels(cfg.model.flow))],
            "receptive_field": tile_radius(effective_rf, stride),
            "receptive_field_full": full_rf,
            "default_temperature": float(temperature),
            "input": {"name": "ldr", "encoding": "srgb", "layout": "NCHW",
                      **({"channels": 3 + len(GEOMETRY_CHANNELS), "geometry": list(GEOMETRY_CHANNELS)}
                         if cfg.model.encoder.geometry else {})},
            "output": {"name": "hdr", "encoding": "linear", "clip_point": 1.0},
            # the training data's scale (1024x512 panoramas, 256-px views), which engine.scale
            # keeps large photos near; edit it in model.json for a model trained at another scale
            "scale": FlowScale().to_meta(),
            "target_transform": cfg.model.target.to_json(),
            "config": cfg.to_json(),
            "training": {"steps": state.get("step"), "seconds_per_step": state.get("seconds_per_step"),
                         "data": state.get("data", []), "history": state.get("history", [])[-3:]},
            "parameters": sum(p.numel() for p in model.parameters()),
            "export": {"opset": OPSET, "parity_max_rel_error": parity, "torch": torch.__version__},
            "scores": scores or {},
            "licence": LICENCE,
        }
        return write_bundle(out_dir, onnx_path, meta)


def tile_radius(effective_rf: int, stride: int) -> int:
    """model.json's receptive_field: the measured radius, at least one stride, rounded up to it."""
    return int(-(-max(effective_rf, stride) // stride) * stride)


def _checkpoint_and_bundle(checkpoint: str | Path, bundle_dir: str | Path):
    """(bundle, frozen model, config, state) for the commands that change an existing bundle."""
    from engine.bundle import load_bundle

    checkpoint = Path(checkpoint)
    if not (checkpoint / "model.safetensors").exists():
        raise InputError(f"{checkpoint}: not a training checkpoint (no model.safetensors)")
    bundle = load_bundle(bundle_dir)
    model, cfg, state = load_model(checkpoint)
    _freeze(model)
    return bundle, model, cfg, state


def remeasure_receptive_field(checkpoint: str | Path, bundle_dir: str | Path) -> Bundle:
    """Measure the receptive field of ``checkpoint`` again and store it in the existing bundle
    exported from it, leaving everything else (its scores, its light head) as it is. The
    checkpoint must be the bundle's model: the bundle's ONNX graph has to reproduce it (the export's
    parity check), so a bundle cannot be given another model's tiling."""
    bundle, model, cfg, _ = _checkpoint_and_bundle(checkpoint, bundle_dir)
    try:
        check_parity(model, bundle.onnx_path, bundle.default_temperature)
    except Exception as e:  # a different model: shapes or values disagree
        raise InputError(f"{bundle.path} was not exported from {checkpoint}: "
                         f"{' '.join(str(e).split())[:200]}") from None
    effective_rf, full_rf = receptive_field(model)
    stride = cfg.model.stride
    meta = {**bundle.meta, "receptive_field": tile_radius(effective_rf, stride), "receptive_field_full": full_rf}
    return write_bundle(bundle.path, bundle.onnx_path, meta)


def add_photo_flow(checkpoint: str | Path, bundle_dir: str | Path, version: str | None = None) -> Bundle:
    """Export ``checkpoint`` as the photo flow (``photo.onnx``) of the existing bundle: one flow per
    kind of input, the bundle's own flow then converting panoramas. The checkpoint must have the
    bundle's architecture (the engine feeds both flows the same inputs and latents); the tile
    overlap becomes the larger of the two flows' measured radii. Everything else in the bundle (its
    scores, its light head, which belongs to the panorama flow) stays."""
    bundle, model, cfg, state = _checkpoint_and_bundle(checkpoint, bundle_dir)
    exported = bundle.meta.get("config", {}).get("model")
    # through ModelConfig, so options added since the bundle was written compare at their defaults
    if exported is None or cfg.model.to_json() != type(cfg.model).from_json(exported).to_json():
        raise InputError(f"{checkpoint}: its architecture differs from the one {bundle.path} was exported "
                         f"with; a photo flow must be the same model trained on photos")
    effective_rf, _ = receptive_field(model)
    stride = cfg.model.stride
    with tempfile.TemporaryDirectory(dir=bundle.path) as tmp:
        onnx_path = Path(tmp) / "photo.onnx"
        export_onnx(model, onnx_path)
        parity = check_parity(model, onnx_path, bundle.default_temperature)
        meta = {**bundle.meta, "version": version or bundle.version,
                "receptive_field": max(bundle.receptive_field, tile_radius(effective_rf, stride)),
                "photo_training": {"steps": state.get("step"), "data": state.get("data", []),
                                   "history": state.get("history", [])[-3:], "parity_max_rel_error": parity}}
        return write_bundle(bundle.path, bundle.onnx_path, meta, photo_onnx_file=onnx_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="checkpoint folder, e.g. runs/compact/best")
    ap.add_argument("-o", "--out", type=Path, required=True, help="bundle folder to write")
    ap.add_argument("--name")
    ap.add_argument("--version", help="model version (default 0.1.0; with --add-photo-flow: the bundle's)")
    ap.add_argument("--temperature", type=float, help="default sampling temperature stored in model.json")
    ap.add_argument("--scores", type=Path, help="JSON file of evaluation scores to record")
    ap.add_argument("--remeasure", action="store_true",
                    help="instead: measure the checkpoint's receptive field again and store it in the "
                         "existing bundle OUT exported from it (the tiling overlap); nothing else changes")
    ap.add_argument("--add-photo-flow", action="store_true",
                    help="instead: export the checkpoint as the photo flow of the existing bundle OUT "
                         "(one flow per kind of input; OUT's own flow then converts panoramas)")
    args = ap.parse_args(argv)
    try:
        if args.add_photo_flow:
            b = add_photo_flow(args.checkpoint, args.out, args.version)
            print(f"{b.path}: photo flow {b.photo.onnx_path.name} (sha256 {b.photo.sha256[:12]}, parity "
                  f"{b.meta['photo_training']['parity_max_rel_error']:.2e}); receptive field {b.receptive_field} px")
            return 0
        if args.remeasure:
            b = remeasure_receptive_field(args.checkpoint, args.out)
            print(f"{b.path}: receptive field {b.receptive_field} px (full {b.meta['receptive_field_full']} px)")
            return 0
        scores = json.loads(args.scores.read_text()) if args.scores else None
        b = export_bundle(args.checkpoint, args.out, args.name, args.version or "0.1.0", args.temperature, scores)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {b.path} ({b.name} {b.version}, sha256 {b.sha256[:12]}, parity "
          f"{b.meta['export']['parity_max_rel_error']:.2e}, receptive field {b.receptive_field} px)")
    # A light head belongs to the model it was fitted on, so a fresh export has none.
    print(f"no panorama light stage yet: fit one with python -m training.light_budget --model {b.path} "
          f"--data DIR --split FILE --fit-data DIR --write (see MODEL_CARD)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
