"""Training loop and CLI.

    python -m training.train --config compact --data ../shared/data/hdr --out runs/compact
    python -m training.train --config compact --data ... --out runs/compact --resume
    torchrun --nproc_per_node 2 -m training.train --config paper --data DIR --out runs/paper

Each step: draw patches with the camera model, compute NLL (bits/dim) and the cycle loss, skip the
step if the loss or the gradients are not finite (logged), clip gradients, Adam. Rank 0 keeps
``last/`` every ``ckpt_every`` steps and ``best/`` at each validation (lowest validation NLL).
``--resume`` restores weights, optimizer, step and every rank's RNG, so the continued run is
bit-identical to an uninterrupted one.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from safetensors.torch import load_file
from tqdm import tqdm

from engine.errors import InputError

from .batches import BatchStream, draw
from .checkpoint import load_training_state, save_checkpoint
from .configs import CONFIGS, TrainConfig
from .data import DEFAULT_SPLIT, PatchSampler, load_images, read_split
from .losses import bits_per_dim, cycle_loss, energy_loss
from .target import decode, keep_measured_target
from .model import HDRCNF
from .validate import Validator


class Objective(nn.Module):
    """The whole training loss as one module, so DDP sees a single forward()."""

    def __init__(self, model: HDRCNF, cfg: TrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, ldr, hdr, noise, cycle_noise, geometry=None):
        lc = self.cfg.loss
        target = self.model.to_target(hdr, ldr) + lc.dequant_noise * noise
        conds = self.model.encoder(ldr, geometry)
        latents, logdet = self.model.flow(target, conds)
        nll = bits_per_dim(self.model.log_prob(latents, logdet), target[0].numel())
        cyc = torch.zeros((), device=ldr.device)
        energy = torch.zeros((), device=ldr.device)
        if lc.cycle_weight > 0 or lc.energy_weight > 0:
            recon = self.model.flow.reverse([lc.cycle_tau * z for z in cycle_noise], conds)[0]
            if lc.cycle_keep_measured:
                recon = keep_measured_target(recon, ldr, self.model.cfg.target)
            cyc = cycle_loss(recon, target, ldr, lc.clip_weight, lc.bright_weight)
            if lc.energy_weight > 0:  # decode bounds the log correction itself (MAX_LOG_CORRECTION)
                energy = energy_loss(decode(recon, ldr, self.model.cfg.target), hdr)
        loss = nll + lc.cycle_weight * cyc + lc.energy_weight * energy
        if lc.aux_weight > 0:  # the encoder's own regression of the target (model.AuxHead)
            loss = loss + lc.aux_weight * cycle_loss(self.model.aux(conds[0]), target, ldr, lc.clip_weight)
        return loss, nll.detach(), cyc.detach(), energy.detach()


def _rng_state(gen: torch.Generator) -> dict:
    """The noise generator's state (the patches need none: training.batches seeds them per step)."""
    return {"torch": base64.b64encode(gen.get_state().numpy().tobytes()).decode()}


def _set_rng_state(gen: torch.Generator, st: dict) -> None:
    gen.set_state(torch.frombuffer(bytearray(base64.b64decode(st["torch"])), dtype=torch.uint8))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def _distributed() -> tuple[int, int]:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _gather(obj, world: int):
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _draw(batch, gen, model, device):
    """A batch on the device: LDR, geometry planes (None unless the model takes them), HDR, the
    dequantisation noise and the cycle term's latents."""
    x, hdr = batch
    ldr, geometry = model.split_input(torch.from_numpy(x).to(device))
    hdr = torch.from_numpy(hdr).to(device)
    n, _, h, w = ldr.shape
    noise = torch.randn(hdr.shape, generator=gen).to(device)
    cyc = [torch.randn(s, generator=gen).to(device) for s in model.latent_shapes(n, h, w)]
    return ldr, geometry, hdr, noise, cyc


def param_checksum(model: nn.Module) -> str:
    """sha256 of all parameters' bytes: equal on every rank iff DDP kept the replicas identical."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def train(cfg: TrainConfig, data: list[str], out: Path, resume: bool = False, split: Path = DEFAULT_SPLIT,
          threads: int | None = None, quiet: bool = False, until: int | None = None,
          init_from: Path | None = None, max_minutes: float | None = None, data_workers: int = 0) -> dict:
    """Train (or continue) a run; stops at ``cfg.steps``, or earlier at ``until`` or after
    ``max_minutes`` of wall time (a job's time limit) with a checkpoint, so that a later
    ``resume`` continues exactly where it stopped. ``data_workers`` processes draw batches ahead
    (training.batches), which a GPU needs; the batches do not depend on it."""
    rank, world = _distributed()
    device = torch.device(f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu")
    if threads:
        torch.set_num_threads(threads)
    held_out = read_split(split) if split else set()
    images = load_images(data, exclude=held_out)
    sampler = PatchSampler(images, cfg.patches, geometry=cfg.model.encoder.geometry)
    torch.manual_seed(cfg.seed)
    model = HDRCNF(cfg.model).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    state = {"step": 0, "best_val_nll": None, "skipped_steps": 0, "history": []}
    last = out / "last"
    if resume and (last / "state.json").exists():
        state = load_training_state(last, model, opt)
        _set_rng_state(gen, state["rng"][rank])
    elif resume and rank == 0:
        print(f"note: nothing to resume in {last}, starting fresh", file=sys.stderr)
    if state["step"] == 0 and init_from is not None:
        try:
            added = model.load_weights(load_file(str(Path(init_from) / "model.safetensors")))
        except ValueError as exc:
            raise InputError(f"--init-from {init_from}: {exc}") from None
        if added and rank == 0:
            print(f"grown from {init_from}: added {len(added)} module(s) that leave the model's output unchanged "
                  f"({', '.join(added[:3])}{', ...' if len(added) > 3 else ''})", file=sys.stderr)
        state["init_from"] = str(init_from)
    elif state["step"] == 0:  # actnorm data-dependent init on rank 0's first batch (DDP broadcasts it)
        model.train()
        with torch.no_grad():
            ldr, geometry, hdr, _, _ = _draw(draw(sampler, cfg.seed, 999, 0, cfg.batch),
                                             torch.Generator().manual_seed(7), model, device)
            model.encode(ldr, model.to_target(hdr, ldr), geometry=geometry)
    objective = Objective(model, cfg)
    ddp = nn.parallel.DistributedDataParallel(objective) if world > 1 else objective
    validator = None
    if rank == 0 and held_out:
        try:
            validator = Validator(data, held_out, cfg, device)
        except InputError:
            print("note: none of the held-out split's images are in the data folders; validation is off",
                  file=sys.stderr)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{cfg.name}: {n_params:,} parameters, {len(images)} training images, world size {world}",
              file=sys.stderr)
    bar = tqdm(total=cfg.steps, initial=state["step"], disable=rank != 0 or quiet, dynamic_ncols=True)
    t0, steps_timed = time.perf_counter(), 0
    deadline = None if max_minutes is None else t0 + 60.0 * max_minutes
    model.train()
    stop = cfg.steps if until is None else min(until, cfg.steps)
    state["data"] = sorted(im.name for im in images)
    stream = BatchStream(sampler, cfg.batch, cfg.seed, rank, workers=data_workers)
    try:
        while state["step"] < stop:
            step = state["step"]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            ldr, geometry, hdr, noise, cyc_noise = _draw(stream.get(step), gen, model, device)
            loss, nll, cyc, energy = ddp(ldr, hdr, noise, cyc_noise, geometry)
            opt.zero_grad(set_to_none=True)
            ok = torch.isfinite(loss)
            if world > 1:
                flag = ok.float().to(device)
                dist.all_reduce(flag, op=dist.ReduceOp.MIN)
                ok = flag > 0
            if bool(ok):
                loss.backward()
                gnorm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if world > 1:
                    gflag = torch.isfinite(gnorm).float().to(device)
                    dist.all_reduce(gflag, op=dist.ReduceOp.MIN)
                    ok = gflag > 0
                else:
                    ok = torch.isfinite(gnorm)
            if bool(ok):
                opt.step()
            else:
                state["skipped_steps"] += 1
                if rank == 0:
                    tqdm.write(f"step {step}: non-finite loss or gradient, step skipped "
                               f"({state['skipped_steps']} so far)", file=sys.stderr)
            state["step"] = step + 1
            steps_timed += 1
            if rank == 0:
                rate = steps_timed / (time.perf_counter() - t0)
                extra = {"energy": f"{float(energy):.3f}"} if cfg.loss.energy_weight > 0 else {}
                bar.set_postfix(loss=f"{loss.item():.3f}", nll=f"{float(nll):.3f}", cyc=f"{float(cyc):.3f}",
                                **extra, its=f"{rate:.2f}")
                bar.update(1)
            out_of_time = deadline is not None and time.perf_counter() > deadline
            if world > 1 and deadline is not None:  # every rank stops at the same step
                flag = torch.tensor(float(out_of_time), device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                out_of_time = bool(flag > 0)
            if out_of_time:
                stop = state["step"]
                if rank == 0:
                    tqdm.write(f"step {stop}: --max-minutes {max_minutes:g} reached; continue with --resume",
                               file=sys.stderr)
            done = state["step"] == stop
            if state["step"] % cfg.ckpt_every == 0 or done or (validator and state["step"] % cfg.val_every == 0):
                rngs = _gather(_rng_state(gen), world)
                sums = _gather(param_checksum(model), world) if done else None
                if rank == 0:
                    state["rng"] = rngs
                    state["seconds_per_step"] = (time.perf_counter() - t0) / steps_timed
                    if validator and (state["step"] % cfg.val_every == 0 or done):
                        metrics = validator(model)
                        model.train()
                        metrics["step"] = state["step"]
                        state["history"].append(metrics)
                        tqdm.write(f"step {state['step']}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                                                                         if k != "step"), file=sys.stderr)
                        if state["best_val_nll"] is None or metrics["val_nll_bpd"] < state["best_val_nll"]:
                            state["best_val_nll"] = metrics["val_nll_bpd"]
                            save_checkpoint(out / "best", model, None, cfg, state)
                    if done and world > 1:
                        state["rank_param_checksums"] = sums
                    save_checkpoint(last, model, opt, cfg, state)
                if world > 1:
                    dist.barrier()
    finally:
        stream.close()  # worker processes, if any
    bar.close()
    if world > 1:
        dist.destroy_process_group()
    return state


def _override_value(item: str, current, value: str):
    """``value`` (the text after ``=``) converted to the type of the field's ``current`` value.

    A range such as ``patches.light.lamp.radius_px`` is a tuple: it takes comma-separated numbers,
    as many as it holds (``4,32``), each of its element's type; without this, ``tuple("4,32")``
    would store the characters and the sampler would fail far from the command line."""
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(current, tuple):
        items = [v.strip() for v in value.strip().strip("()[]").split(",")]
        if len(items) != len(current):
            raise InputError(f"--set {item}: expected {len(current)} comma-separated values, "
                             f"e.g. {','.join(map(str, current))}")
        try:
            return tuple(type(c)(v) for c, v in zip(current, items))
        except ValueError:
            raise InputError(f"--set {item}: {value!r} is not {len(current)} numbers") from None
    try:
        return type(current)(value)
    except ValueError:
        raise InputError(f"--set {item}: {value!r} is not a valid {type(current).__name__}") from None


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``section.field=value`` overrides (e.g. ``loss.clip_weight=20``) to a config,
    converting the value to the field's current type; an unknown key is an InputError."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item}: expected KEY=VALUE, e.g. loss.clip_weight=20")
        obj, parts = cfg, key.split(".")
        for part in parts[:-1]:
            if not hasattr(obj, part):
                raise InputError(f"--set {item}: unknown config section {part!r}")
            obj = getattr(obj, part)
        if not hasattr(obj, parts[-1]):
            raise InputError(f"--set {item}: unknown config field {parts[-1]!r}")
        setattr(obj, parts[-1], _override_value(item, getattr(obj, parts[-1]), value))
    try:
        cfg.model.target.check()
    except ValueError as exc:
        raise InputError(f"--set: {exc}") from None
    if cfg.loss.aux_weight > 0 and not cfg.model.aux_head:
        raise InputError("--set loss.aux_weight trains the encoder's auxiliary head: add --set model.aux_head=true")
    if cfg.loss.bright_weight > 0 and cfg.model.target.kind != "log_correction":
        raise InputError("--set loss.bright_weight weights by the true log correction: it needs "
                         "model.target.kind=log_correction")
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="compact")
    ap.add_argument("--data", action="append", required=True, help="folder of .exr/.hdr images (repeatable)")
    ap.add_argument("--out", type=Path, required=True, help="run folder, e.g. runs/compact")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last")
    ap.add_argument("--steps", type=int, help="override the config's number of steps")
    ap.add_argument("--split", type=Path, default=DEFAULT_SPLIT, help="held-out file names (never trained on)")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--until", type=int, help="stop at this step with a checkpoint; continue later with --resume")
    ap.add_argument("--max-minutes", type=float, help="stop after this much wall time with a checkpoint "
                    "(a job's time limit); continue later with --resume")
    ap.add_argument("--data-workers", type=int, default=0,
                    help="processes drawing batches ahead (a GPU needs several; same batches either way)")
    ap.add_argument("--init-from", type=Path, help="start from this checkpoint's weights (fine-tuning; fresh optimizer)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field, e.g. --set loss.clip_weight=20, or a range: "
                         "--set patches.light.lamp.radius_px=4,32 (repeatable)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    cfg = CONFIGS[args.config]()
    if args.steps:
        cfg.steps = args.steps
    try:
        apply_overrides(cfg, args.set)
        train(cfg, args.data, args.out, args.resume, args.split, args.threads, args.quiet, args.until,
              args.init_from, args.max_minutes, args.data_workers)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: resume with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
