"""Real training steps on a tiny model and real HDR crops: learning, exact resume, DDP, bad data."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.errors import InputError
from training.checkpoint import load_model
from training.configs import tiny
from training.data import PatchSampler, load_images
from training.losses import bits_per_dim
from training.model import HDRCNF
from training.train import apply_overrides, main, train

ROOT = Path(__file__).resolve().parents[2]


def _fixed_batch(hdr_dir, cfg):
    sampler = PatchSampler(load_images([hdr_dir]), cfg.patches)
    ldr, hdr = sampler.batch(np.random.default_rng(123), 16)
    return torch.from_numpy(ldr), torch.from_numpy(hdr)


def _nll(model, ldr, hdr):
    with torch.no_grad():
        target = model.to_target(hdr, ldr)
        return float(bits_per_dim(model.log_prob(*model.encode(ldr, target)), target[0].numel()))


def test_nll_drops_and_cycle_loss_runs(hdr_dir, tmp_path):
    cfg = tiny()
    cfg.steps = 100
    ldr, hdr = _fixed_batch(hdr_dir, cfg)
    torch.manual_seed(cfg.seed)
    start = HDRCNF(cfg.model).train()
    start.encode(ldr, start.to_target(hdr, ldr))  # the same data-dependent init training does
    start.eval()
    before = _nll(start, ldr, hdr)
    state = train(cfg, [hdr_dir], tmp_path / "run", split=None, quiet=True)
    model, _, _ = load_model(tmp_path / "run" / "last")
    after = _nll(model, ldr, hdr)
    assert state["step"] == 100 and state["skipped_steps"] == 0
    assert (before - after) >= 0.3 * abs(before), (before, after)
    # the cycle term is part of the objective: its weight is on and the reverse pass is finite
    assert cfg.loss.cycle_weight > 0
    with torch.no_grad():
        out = model.sample(ldr[:2], temperature=cfg.loss.cycle_tau)
    assert torch.isfinite(out).all() and out.shape == hdr[:2].shape


def test_resume_is_bit_identical(hdr_dir, split_file, tmp_path):
    cfg = tiny()
    cfg.steps, cfg.ckpt_every, cfg.val_every = 12, 4, 6
    train(cfg, [hdr_dir], tmp_path / "a", split=split_file, quiet=True)
    train(cfg, [hdr_dir], tmp_path / "b", split=split_file, quiet=True, until=7)
    assert json.loads((tmp_path / "b" / "last" / "state.json").read_text())["step"] == 7
    # the rest drawn by worker processes: same batches, so still bit-identical
    train(cfg, [hdr_dir], tmp_path / "b", resume=True, split=split_file, quiet=True, data_workers=2)
    a = load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (tmp_path / "a" / "best" / "model.safetensors").exists()


def test_time_limit_stops_with_a_checkpoint_that_resumes(hdr_dir, tmp_path, capsys):
    cfg = tiny()
    cfg.steps = 10
    state = train(cfg, [hdr_dir], tmp_path / "run", split=None, quiet=True, max_minutes=0)
    assert state["step"] == 1  # the limit is checked after each step: one step, then a checkpoint
    assert json.loads((tmp_path / "run" / "last" / "state.json").read_text())["step"] == 1
    assert "--max-minutes 0 reached" in capsys.readouterr().err
    assert train(cfg, [hdr_dir], tmp_path / "run", resume=True, split=None, quiet=True)["step"] == 10


def test_torchrun_ddp_two_ranks_hold_identical_weights(hdr_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "--config", "tiny", "--data", str(hdr_dir), "--out", str(out),
           "--steps", "4", "--quiet", "--split", str(ROOT / "training" / "splits" / "val.txt")]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["step"] == 4
    sums = state["rank_param_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert len(state["rng"]) == 2 and state["rng"][0] != state["rng"][1]  # ranks draw different data


def test_bad_data_folders_give_one_line_errors(tmp_path, capsys, hdr_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--config", "tiny", "--data", str(empty), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(empty) in err[0]
    assert main(["--config", "tiny", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    # a corrupt EXR among good ones is skipped with a warning naming it
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "broken.exr").write_bytes(b"not an exr at all")
    (mixed / "good.exr").write_bytes((hdr_dir / "3ddemodata_circus_arena.exr").read_bytes())
    images = load_images([mixed])
    assert [im.name for im in images] == ["good.exr"]
    assert "broken.exr" in capsys.readouterr().err
    # an image smaller than the patch size is an error naming the file when nothing else remains
    small = tmp_path / "small"
    small.mkdir()
    from engine.io import write_exr
    write_exr(small / "tiny.exr", np.ones((16, 16, 3), np.float32))
    assert main(["--config", "tiny", "--data", str(small), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "tiny.exr" in err and "Traceback" not in err


def test_set_takes_ranges_as_comma_separated_numbers():
    cfg = apply_overrides(tiny(), ["patches.light.lamp.radius_px=4,32", "patches.light.falloff=(2, 2.5)"])
    assert cfg.patches.light.lamp.radius_px == (4.0, 32.0)
    assert cfg.patches.light.falloff == (2.0, 2.5)
    for bad in ("patches.light.lamp.radius_px=4", "patches.light.lamp.radius_px=4,x"):
        with pytest.raises(InputError, match="radius_px"):
            apply_overrides(tiny(), [bad])
