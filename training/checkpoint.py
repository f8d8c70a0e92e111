"""Checkpoints without pickle: weights and optimizer tensors as safetensors, everything else JSON.

A checkpoint folder holds ``model.safetensors``, ``optimizer.safetensors``, ``config.json`` (the
TrainConfig) and ``state.json`` (step, optimizer scalars, RNG states of every rank, metrics).
Writes go to a temporary folder that is renamed into place, so a kill mid-save never leaves a
half-written checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .configs import TrainConfig
from .model import HDRCNF


def _atomic_dir(target: Path) -> Path:
    tmp = target.with_name("." + target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _commit_dir(tmp: Path, target: Path) -> None:
    old = target.with_name("." + target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path: Path, model: HDRCNF, opt: torch.optim.Optimizer | None, cfg: TrainConfig,
                    state: dict) -> None:
    path = Path(path)
    tmp = _atomic_dir(path)
    save_file(model_state(model), str(tmp / "model.safetensors"))
    st = dict(state)
    if opt is not None:
        tensors, meta = optimizer_tensors(opt)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        st["optimizer"] = meta
    (tmp / "config.json").write_text(json.dumps(cfg.to_json(), indent=1))
    (tmp / "state.json").write_text(json.dumps(st, indent=1))
    _commit_dir(tmp, path)


def load_config(path: Path) -> TrainConfig:
    return TrainConfig.from_json(json.loads((Path(path) / "config.json").read_text()))


def load_model(path: Path) -> tuple[HDRCNF, TrainConfig, dict]:
    """Model (eval mode) + its config + state.json of a checkpoint folder."""
    path = Path(path)
    cfg = load_config(path)
    model = HDRCNF(cfg.model)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    model.eval()
    state = json.loads((path / "state.json").read_text())
    return model, cfg, state


def load_training_state(path: Path, model: HDRCNF, opt: torch.optim.Optimizer) -> dict:
    path = Path(path)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    state = json.loads((path / "state.json").read_text())
    restore_optimizer(opt, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    return state
