"""Average the weights of several checkpoints of one model (stochastic weight averaging).

    python -m training.average runs/compact-v5/snaps/6000 runs/compact-v5/snaps/6250 ... -o runs/v5-swa

Why: late in a run, consecutive checkpoints of the compact flow differ by several hundredths of a
stop of held-out highlight error from one 250-step checkpoint to the next: that is optimiser
noise, not progress, and picking the best one picks the luckiest draw. The mean of the weights of
checkpoints taken along the same low-learning-rate stretch sits in the middle of that noise and
scores better than most of its members (Izmailov et al. 2018, "Averaging weights leads to wider
optima"). Floating-point tensors are averaged; integer/bool buffers (e.g. actnorm's "initialised"
flag) must agree and are copied. The result is a model-only checkpoint (no optimizer state) for
``training.export``, ``training.evaluate`` or ``--init-from``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from engine.errors import InputError

from .checkpoint import load_config, save_checkpoint
from .model import HDRCNF


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of float tensors; non-float tensors must be identical across states."""
    if not states:
        raise InputError("nothing to average: give at least one checkpoint")
    keys = set(states[0])
    out = {}
    for i, st in enumerate(states[1:], start=1):
        if set(st) != keys:
            raise InputError(f"checkpoint {i + 1} has different tensors than the first (another model?)")
    for k in sorted(keys):
        ts = [st[k] for st in states]
        if any(t.shape != ts[0].shape for t in ts):
            raise InputError(f"tensor {k!r} has different shapes across checkpoints (another model?)")
        if ts[0].is_floating_point():
            out[k] = torch.stack([t.double() for t in ts]).mean(dim=0).to(ts[0].dtype)
        else:
            if any(not torch.equal(t, ts[0]) for t in ts):
                raise InputError(f"buffer {k!r} differs across checkpoints; they cannot be averaged")
            out[k] = ts[0].clone()
    return out


def average_checkpoints(paths: list[Path], out: Path) -> Path:
    """Write the weight average of the checkpoint folders ``paths`` to ``out``."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not (p / "model.safetensors").is_file() or not (p / "config.json").is_file():
            raise InputError(f"{p}: not a checkpoint folder (model.safetensors + config.json)")
    cfgs = [load_config(p) for p in paths]
    if any(c.model.to_json() != cfgs[0].model.to_json() for c in cfgs):
        raise InputError("the checkpoints have different model configs; only one model's checkpoints can be averaged")
    model = HDRCNF(cfgs[0].model)
    model.load_state_dict(average_state_dicts([load_file(str(p / "model.safetensors")) for p in paths]))
    # Provenance (step, data, history) comes from the newest member, minus what only resuming needs.
    last = json.loads((paths[-1] / "state.json").read_text()) if (paths[-1] / "state.json").is_file() else {}
    state = {k: v for k, v in last.items() if k not in ("rng", "optimizer")}
    state["averaged_from"] = [str(p) for p in paths]
    save_checkpoint(out, model, None, cfgs[-1], state)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.average", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", type=Path, nargs="+", help="checkpoint folders of the same model")
    ap.add_argument("-o", "--out", type=Path, required=True, help="checkpoint folder to write")
    args = ap.parse_args(argv)
    try:
        out = average_checkpoints(args.checkpoints, args.out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} (mean of {len(args.checkpoints)} checkpoints)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
