"""The target transforms: both kinds invert exactly, are named in model.json, and train and export."""
import json
from pathlib import Path

import pytest
import torch

from engine.errors import InputError
from training.configs import tiny
from training.export import export_bundle
from training.target import TargetTransform, decode, encode, keep_measured_target, srgb_to_linear
from training.train import apply_overrides, train

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hdr"


@pytest.mark.parametrize("kind", ["log_correction", "log"])
def test_decode_inverts_encode(kind):
    g = torch.Generator().manual_seed(0)
    ldr = torch.rand(2, 3, 8, 8, generator=g)
    hdr = torch.rand(2, 3, 8, 8, generator=g) * torch.tensor([1.0, 50.0]).view(2, 1, 1, 1)
    tt = TargetTransform(kind=kind, keep_measured=False)
    assert torch.allclose(decode(encode(hdr, ldr, tt), ldr, tt), hdr, rtol=1e-4, atol=1e-5)
    assert tt.to_json()["type"] == kind and "kind" not in tt.to_json()


@pytest.mark.parametrize("kind", ["log_correction", "log"])
def test_measured_channels_beside_a_clipped_one_keep_the_naive_inverse(kind):
    # pixel 0: blue at the clip, red and green measured; pixel 1: nothing at the clip;
    # pixel 2: all three at the clip; pixel 3: blue one code below the rule's threshold.
    codes = torch.tensor([[200.0, 240.0, 255.0], [200.0, 240.0, 250.0], [255.0, 254.0, 253.0],
                          [200.0, 240.0, 252.0]])
    ldr = (codes / 255.0).T.reshape(1, 3, 1, 4)
    t = torch.full_like(ldr, 1.5)  # the flow lifts every channel by 1.5 nats
    tt = TargetTransform(kind=kind)
    kept, lifted = decode(t, ldr, tt), decode(t, ldr, TargetTransform(kind=kind, keep_measured=False))
    naive = srgb_to_linear(ldr)
    measured = torch.zeros_like(ldr, dtype=torch.bool)
    measured[0, :2, 0, 0] = True
    assert torch.allclose(kept[measured], naive[measured])
    assert torch.equal(kept[~measured], lifted[~measured])  # the clipped channel and other pixels: the flow's
    assert (lifted[measured] > 2 * naive[measured]).all()
    with pytest.raises(ValueError, match="clip_code"):
        TargetTransform(clip_code=256)


@pytest.mark.parametrize("kind", ["log_correction", "log"])
def test_the_cycle_terms_view_of_the_rule_decodes_as_the_graph_does_and_passes_no_gradient(kind):
    g = torch.Generator().manual_seed(1)
    ldr = torch.randint(230, 256, (2, 3, 6, 6), generator=g).float() / 255.0  # many partly clipped pixels
    t = torch.randn(2, 3, 6, 6, generator=g).requires_grad_(True)
    tt = TargetTransform(kind=kind)
    kept = keep_measured_target(t, ldr, tt)
    assert torch.allclose(decode(kept, ldr, tt), decode(t, ldr, tt), rtol=1e-4, atol=1e-5)
    kept.sum().backward()
    measured = (ldr * 255 < 252.5) & (ldr * 255 >= 252.5).any(dim=1, keepdim=True)
    assert measured.any() and (~measured).any()
    assert (t.grad[measured] == 0).all() and (t.grad[~measured] == 1).all()


def test_a_model_trains_with_the_cycle_term_seeing_measured_channels_kept(tmp_path):
    cfg = apply_overrides(tiny(), ["loss.cycle_keep_measured=true"])
    cfg.steps = 10
    state = train(cfg, [FIXTURES], tmp_path / "run", split=None, quiet=True)
    assert state["step"] == 10 and state["skipped_steps"] == 0
    assert json.loads((tmp_path / "run" / "last" / "config.json").read_text())["loss"]["cycle_keep_measured"] is True


def test_the_correction_is_zero_where_the_naive_inverse_is_right_and_the_log_is_not():
    ldr = torch.full((1, 3, 4, 4), 0.5)
    naive = ((0.5 + 0.055) / 1.055) ** 2.4
    hdr = torch.full_like(ldr, naive)
    assert encode(hdr, ldr, TargetTransform()).abs().max() < 1e-6
    assert encode(hdr, ldr, TargetTransform(kind="log")).mean() == pytest.approx(torch.log(torch.tensor(naive + 1e-3)).item())


def test_unknown_kind_and_bright_weight_with_the_absolute_log_are_refused():
    with pytest.raises(ValueError):
        TargetTransform(kind="linear")
    with pytest.raises(InputError, match="choose from"):
        apply_overrides(tiny(), ["model.target.kind=linear"])
    with pytest.raises(InputError, match="bright_weight"):
        apply_overrides(tiny(), ["model.target.kind=log", "loss.bright_weight=1"])


def test_an_absolute_log_model_trains_and_exports_with_parity(tmp_path):
    cfg = apply_overrides(tiny(), ["model.target.kind=log"])
    cfg.steps = 10
    train(cfg, [FIXTURES], tmp_path / "run", split=None, quiet=True)
    bundle = export_bundle(tmp_path / "run" / "last", tmp_path / "bundle")
    assert bundle.meta["export"]["parity_max_rel_error"] <= 1e-3
    meta = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert meta["target_transform"]["type"] == "log"
