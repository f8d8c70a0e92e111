"""Weight averaging of real tiny-model checkpoints: the mean it writes and the mistakes it refuses."""
import torch
from safetensors.torch import load_file

from training.average import average_checkpoints, main
from training.checkpoint import load_model, save_checkpoint
from training.configs import tiny
from training.model import HDRCNF


def _checkpoint(path, seed, cfg=None):
    cfg = cfg or tiny()
    torch.manual_seed(seed)
    model = HDRCNF(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    save_checkpoint(path, model, None, cfg, {"step": seed, "data": ["a.exr"]})
    return load_file(str(path / "model.safetensors"))


def test_average_is_the_elementwise_mean_and_loads(tmp_path):
    a = _checkpoint(tmp_path / "a", 1)
    b = _checkpoint(tmp_path / "b", 2)
    out = average_checkpoints([tmp_path / "a", tmp_path / "b"], tmp_path / "avg")
    avg = load_file(str(out / "model.safetensors"))
    for k, t in avg.items():
        if t.is_floating_point():
            torch.testing.assert_close(t, (a[k] + b[k]) / 2)
    model, _, state = load_model(out)  # a usable checkpoint: model + provenance of the newest member
    assert state["step"] == 2 and len(state["averaged_from"]) == 2
    ldr = torch.rand(1, 3, 32, 32)
    assert torch.isfinite(model.sample(ldr, 0.5)).all()


def test_refuses_checkpoints_of_different_models(tmp_path, capsys):
    _checkpoint(tmp_path / "a", 1)
    other = tiny()
    other.model.flow.hidden = 24
    _checkpoint(tmp_path / "b", 2, other)
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "avg")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "different model configs" in err
    assert not (tmp_path / "avg").exists()
    assert main([str(tmp_path / "nothing"), "-o", str(tmp_path / "avg")]) == 2
