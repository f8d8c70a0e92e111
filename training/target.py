"""Target representation: log-domain HDR as a correction over the naive inverse.

t = (log(y + eps) - log(srgb_to_linear(x) + eps)) / scale

It is ~0 in well-exposed pixels and large only in clipped highlights and crushed shadows, so the
flow spends its capacity where information is missing. The exact parameters are written into
model.json; the exported graph applies the inverse itself so the engine gets linear radiance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

MAX_LOG_CORRECTION = 14.0  # e^14 ~ 20 stops above the naive value: bounds the reverse pass


@dataclass
class TargetTransform:
    eps: float = 1e-3
    scale: float = 1.0

    def to_json(self) -> dict:
        return {"type": "log_correction", "linearize": "srgb", **asdict(self)}


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Exact piecewise sRGB EOTF (torch twin of engine.color.srgb_to_linear, kept in the graph)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def encode(hdr: torch.Tensor, ldr: torch.Tensor, tt: TargetTransform) -> torch.Tensor:
    naive = srgb_to_linear(ldr)
    return (torch.log(hdr.clamp_min(0.0) + tt.eps) - torch.log(naive + tt.eps)) / tt.scale


def decode(t: torch.Tensor, ldr: torch.Tensor, tt: TargetTransform) -> torch.Tensor:
    naive = srgb_to_linear(ldr)
    corr = (t * tt.scale).clamp(-MAX_LOG_CORRECTION, MAX_LOG_CORRECTION)
    return ((naive + tt.eps) * torch.exp(corr) - tt.eps).clamp_min(0.0)
