"""Helpers shared by the benchmarks: machine description, timing, synthetic photos, models."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: Published peer: ExpandNet (Marnerides et al. 2018) needs about 1.7 s for a 1024x512 image on a
#: CPU of this class; the issue asks the default model to be no slower.
EXPANDNET_1024x512_S = 1.7
PRETRAINED = REPO / "training" / "pretrained" / "compact"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="ascii", errors="replace"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = "load %.1f/%.1f/%.1f" % os.getloadavg()
    except OSError:
        load = ""
    return f"{cpu}, {os.cpu_count()} logical CPUs, {load}, {time.strftime('%Y-%m-%d')}"


def gpu_name() -> str | None:
    from engine.backends import cuda_devices

    names, _ = cuda_devices()
    return names[0] if names else None


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth sky-like uint8 photo with a clipped sun and some texture (cheap at 16K)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    img = np.empty((h, w, 3), dtype=np.uint8)
    band = max(1, (32 << 20) // (w * 12))
    for r0 in range(0, h, band):
        yy = y[r0:r0 + band]
        base = 0.2 + 0.6 * (1 - yy) + 0.08 * np.sin(12.0 * np.pi * x) * np.cos(7.0 * np.pi * yy)
        d2 = ((yy - 0.3) * h) ** 2 + ((x - 0.4) * w) ** 2
        sun = 1.5 * np.exp(-d2 / (0.03 * min(h, w)) ** 2)
        v = base + sun + rng.normal(0, 0.01, (yy.shape[0], w)).astype(np.float32)
        for c, k in enumerate((0.8, 0.9, 1.0)):
            img[r0:r0 + band, :, c] = np.clip(v * k * 255.0, 0, 255).astype(np.uint8)
    return img


def feeds(bundle, n: int, h: int, w: int, seed: int = 0, temperature: float = 0.6) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    x = (photo(h, w, seed).astype(np.float32) / 255.0).transpose(2, 0, 1)[None].repeat(n, 0).copy()
    lat = {s.name: (temperature * rng.standard_normal(s.shape(n, h, w))).astype(np.float32) for s in bundle.latents}
    return x, lat


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time every callable `repeats` times, round-robin (so load changes hit all alike)."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return times


def med(ts: list[float]) -> float:
    return statistics.median(ts)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def torch_model(config: str = "compact"):
    """(PyTorch HDRCNF in eval mode with frozen 1x1 inverses, description of its weights)."""
    from training import configs
    from training.flow import InvConv1x1
    from training.model import HDRCNF

    if config == "compact" and (PRETRAINED / "model.safetensors").is_file():
        from training.checkpoint import load_model

        model, _, _ = load_model(PRETRAINED)
        what = f"trained weights ({PRETRAINED.relative_to(REPO)})"
    else:
        import torch

        torch.manual_seed(0)
        model = HDRCNF(getattr(configs, config)().model)
        what = f"random init of the '{config}' config (speed does not depend on the weights)"
    for m in model.modules():
        if isinstance(m, InvConv1x1):
            m.freeze()
    model.eval()
    return model, what
