"""Export: PyTorch vs onnxruntime parity, dynamic N/H/W, a bundle the engine loads."""
import json

import numpy as np
import onnx
import pytest
import torch

from engine.backends import create_backend
from engine.bundle import load_bundle
from engine.scale import FlowScale
from training.checkpoint import load_model
from training.configs import tiny
from training.export import check_parity, export_bundle, main
from training.train import train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from pathlib import Path
    cfg = tiny()
    cfg.steps = 30
    out = tmp_path_factory.mktemp("run")
    train(cfg, [Path(__file__).resolve().parent.parent / "fixtures" / "hdr"], out, split=None, quiet=True)
    return out / "last"


def test_export_writes_verified_bundle(checkpoint, tmp_path):
    bundle = export_bundle(checkpoint, tmp_path / "bundle")
    assert bundle.levels == 2 and bundle.stride == 4
    assert [(z.name, z.channels, z.scale) for z in bundle.latents] == [("z1", 6, 2), ("z2", 24, 4)]
    assert bundle.receptive_field >= bundle.stride
    assert bundle.meta["export"]["parity_max_rel_error"] <= 1e-3
    assert json.loads((tmp_path / "bundle" / "model.json").read_text())["sha256"] == bundle.sha256
    graph = onnx.load(str(bundle.onnx_path)).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["ldr"][0] == "n" and isinstance(dims["ldr"][2], str) and isinstance(dims["ldr"][3], str)
    assert load_bundle(tmp_path / "bundle").sha256 == bundle.sha256
    assert bundle.meta["scale"] == FlowScale().to_meta()   # the training scale engine.scale keeps near


def test_exported_graph_runs_at_two_sizes_and_matches_torch(checkpoint, tmp_path):
    bundle = export_bundle(checkpoint, tmp_path / "bundle")
    backend = create_backend(bundle, "onnxruntime", threads=1)
    model, _, _ = load_model(checkpoint)
    for n, h, w in [(1, 32, 48), (2, 64, 20)]:
        g = torch.Generator().manual_seed(h)
        ldr = torch.rand(n, 3, h, w, generator=g)
        lat = [0.7 * torch.randn(s, generator=g) for s in model.latent_shapes(n, h, w)]
        with torch.no_grad():
            ref = model(ldr, *lat).numpy()
        got = backend.run(ldr.numpy(), {f"z{i + 1}": z.numpy() for i, z in enumerate(lat)})
        assert got.shape == (n, 3, h, w)
        assert np.max(np.abs(got - ref) / (np.abs(ref) + 1e-3)) <= 1e-3


def test_parity_check_fails_on_a_wrong_graph(checkpoint, tmp_path):
    bundle = export_bundle(checkpoint, tmp_path / "bundle")
    model, _, _ = load_model(checkpoint)
    with torch.no_grad():  # perturb the PyTorch side: the check must notice
        for p in model.encoder.parameters():
            p.add_(0.05)
    for m in model.modules():
        if hasattr(m, "freeze"):
            m.freeze()
    with pytest.raises(RuntimeError, match="parity"):
        check_parity(model, bundle.onnx_path, 0.6)


def test_export_cli_rejects_non_checkpoint(tmp_path, capsys):
    assert main([str(tmp_path), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a training checkpoint" in err[0]


def test_export_over_a_bundle_drops_its_light_head_and_says_how_to_refit(checkpoint, tmp_path, capsys):
    """A light head is fitted on one model's outputs: re-exporting a new model over a bundle must
    not keep the old head, and the CLI says how to fit a new one."""
    from engine.bundle import write_bundle
    from engine.light import FEATURES, LightHead

    first = export_bundle(checkpoint, tmp_path / "bundle")
    n = len(FEATURES)
    head = LightHead(mean=(0.0,) * n, std=(1.0,) * n, weights=(1.0,) + (0.0,) * n, max_stops=3.0)
    assert write_bundle(first.path, first.onnx_path, {**first.meta, "light": head.to_meta()}).light == head
    assert main([str(checkpoint), "-o", str(tmp_path / "bundle")]) == 0
    assert load_bundle(tmp_path / "bundle").light is None
    out = capsys.readouterr().out
    assert "no panorama light stage yet" in out and "training.light_budget" in out


def test_remeasure_restores_the_measured_receptive_field_and_keeps_the_rest(checkpoint, tmp_path, capsys):
    """--remeasure rewrites only the tiling fields of a bundle exported from the same checkpoint (its
    scores stay); another model's bundle is refused with one line, exit 2, and left untouched."""
    from engine.bundle import write_bundle
    from training.export import receptive_field

    bundle = export_bundle(checkpoint, tmp_path / "bundle")
    model, _, _ = load_model(checkpoint)
    measured = receptive_field(model)
    stale = write_bundle(bundle.path, bundle.onnx_path,
                         {**bundle.meta, "receptive_field": bundle.stride, "scores": {"kept": 1}})
    assert stale.receptive_field == bundle.stride
    assert main([str(checkpoint), "-o", str(bundle.path), "--remeasure"]) == 0
    again = load_bundle(bundle.path)
    assert again.receptive_field == bundle.receptive_field >= measured[0]
    assert again.meta["receptive_field_full"] == measured[1] and again.meta["scores"] == {"kept": 1}
    assert again.sha256 == bundle.sha256                  # the graph is not touched

    other_cfg = tiny()
    other_cfg.model.flow.hidden = 8                        # another model: its graph cannot match
    other = tmp_path / "other"
    from training.checkpoint import save_checkpoint
    from training.model import HDRCNF
    save_checkpoint(other, HDRCNF(other_cfg.model), None, other_cfg, {"step": 0})
    before = (bundle.path / "model.json").read_bytes()
    assert main([str(other), "-o", str(bundle.path), "--remeasure"]) == 2
    err = capsys.readouterr().err
    assert "was not exported from" in err and len(err.strip().splitlines()) == 1
    assert (bundle.path / "model.json").read_bytes() == before



def test_add_photo_flow_makes_a_two_flow_bundle(checkpoint, tmp_path, capsys):
    """--add-photo-flow exports a checkpoint of the same architecture as the bundle's photo.onnx,
    keeps the bundle's flow, scores and light head, and refuses another architecture in one line."""
    bundle = export_bundle(checkpoint, tmp_path / "bundle", version="0.1.0")
    bundle = write_bundle_meta(bundle, scores={"kept": 1})
    assert main([str(checkpoint), "-o", str(bundle.path), "--add-photo-flow", "--version", "0.2.0"]) == 0
    two = load_bundle(bundle.path)
    assert two.photo is not None and two.sha256 == bundle.sha256 and two.version == "0.2.0"
    assert two.meta["scores"] == {"kept": 1} and two.receptive_field >= bundle.receptive_field
    assert two.meta["photo_training"]["parity_max_rel_error"] <= 1e-3
    backend = create_backend(two, "onnxruntime", threads=1)
    ldr = np.random.default_rng(0).random((1, 3, 32, 48)).astype(np.float32)
    lat = {z.name: np.zeros(z.shape(1, 32, 48), np.float32) for z in two.latents}
    np.testing.assert_allclose(backend.photo.run(ldr, lat), backend.run(ldr, lat), rtol=1e-4, atol=1e-5)

    other_cfg = tiny()
    other_cfg.model.flow.hidden = 8
    from training.checkpoint import save_checkpoint
    from training.model import HDRCNF
    save_checkpoint(tmp_path / "other", HDRCNF(other_cfg.model), None, other_cfg, {"step": 0})
    before = (bundle.path / "model.json").read_bytes()
    assert main([str(tmp_path / "other"), "-o", str(bundle.path), "--add-photo-flow"]) == 2
    err = capsys.readouterr().err
    assert "architecture differs" in err and len(err.strip().splitlines()) == 1
    assert (bundle.path / "model.json").read_bytes() == before


def write_bundle_meta(bundle, **changes):
    from engine.bundle import write_bundle
    return write_bundle(bundle.path, bundle.onnx_path, {**bundle.meta, **changes})
