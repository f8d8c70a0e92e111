"""Target representation: log-domain HDR as a correction over the naive inverse.

t = (log(y + eps) - log(srgb_to_linear(x) + eps)) / scale        kind "log_correction" (default)
t = log(y + eps) / scale                                          kind "log" (absolute)

The correction is ~0 in well-exposed pixels and large only in clipped highlights and crushed
shadows, so the flow spends its capacity where information is missing; the absolute log makes the
flow carry the whole image through its conditioning (the ablation in MODEL_CARD compares them).
The exact parameters are written into model.json; the exported graph applies the inverse itself
so the engine gets linear radiance either way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

MAX_LOG_CORRECTION = 14.0  # e^14 ~ 20 stops above the naive value (or above 1): bounds the reverse pass
KINDS = ("log_correction", "log")


@dataclass
class TargetTransform:
    eps: float = 1e-3
    scale: float = 1.0
    kind: str = "log_correction"

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ValueError for an unknown kind (also after a field was set, e.g. by ``--set``)."""
        if self.kind not in KINDS:
            raise ValueError(f"target kind {self.kind!r}: choose from {', '.join(KINDS)}")

    def to_json(self) -> dict:
        d = asdict(self)
        return {"type": d.pop("kind"), "linearize": "srgb", **d}


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Exact piecewise sRGB EOTF (torch twin of engine.color.srgb_to_linear, kept in the graph)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _base(ldr: torch.Tensor, tt: TargetTransform) -> torch.Tensor:
    """log(naive + eps) for the correction; 0 for the absolute log."""
    if tt.kind == "log":
        return torch.zeros_like(ldr)
    return torch.log(srgb_to_linear(ldr) + tt.eps)


def encode(hdr: torch.Tensor, ldr: torch.Tensor, tt: TargetTransform) -> torch.Tensor:
    return (torch.log(hdr.clamp_min(0.0) + tt.eps) - _base(ldr, tt)) / tt.scale


def decode(t: torch.Tensor, ldr: torch.Tensor, tt: TargetTransform) -> torch.Tensor:
    corr = (t * tt.scale).clamp(-MAX_LOG_CORRECTION, MAX_LOG_CORRECTION)
    return (torch.exp(_base(ldr, tt) + corr) - tt.eps).clamp_min(0.0)
