"""The target transforms: both kinds invert exactly, are named in model.json, and train and export."""
import json
from pathlib import Path

import pytest
import torch

from engine.errors import InputError
from training.configs import tiny
from training.export import export_bundle
from training.target import TargetTransform, decode, encode
from training.train import apply_overrides, train

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hdr"


@pytest.mark.parametrize("kind", ["log_correction", "log"])
def test_decode_inverts_encode(kind):
    g = torch.Generator().manual_seed(0)
    ldr = torch.rand(2, 3, 8, 8, generator=g)
    hdr = torch.rand(2, 3, 8, 8, generator=g) * torch.tensor([1.0, 50.0]).view(2, 1, 1, 1)
    tt = TargetTransform(kind=kind)
    assert torch.allclose(decode(encode(hdr, ldr, tt), ldr, tt), hdr, rtol=1e-4, atol=1e-5)
    assert tt.to_json()["type"] == kind and "kind" not in tt.to_json()


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
