"""Target representation: log-domain HDR as a correction over the naive inverse.

t = (log(y + eps) - log(srgb_to_linear(x) + eps)) / scale        kind "log_correction" (default)
t = log(y + eps) / scale                                          kind "log" (absolute)

The correction is ~0 in well-exposed pixels and large only in clipped highlights and crushed
shadows, so the flow spends its capacity where information is missing; the absolute log makes the
flow carry the whole image through its conditioning (the ablation in MODEL_CARD compares them).
The exact parameters are written into model.json; the exported graph applies the inverse itself
so the engine gets linear radiance either way.

Measured channels are kept (``keep_measured``). Where a pixel has a channel at the clip and others
below it, those others were measured by the camera: the decoded output keeps their naive inverse
and the flow fills only the channels the clip destroyed. Half of all clipped pixels are of that
kind (a blue sky clips in blue first, a warm lamp's halo in red), and the flow lifts their
measured channels along with the clipped one: measured on D4 with the nine extra panoramas and a
third of the training images, the unclipped channels of one-channel-clipped pixels came out
0.15-0.34 stops off (biased up) where the naive inverse was 0.02-0.20 off, so keeping them lowers
the highlight error by 0.017 and 0.015 stops (MODEL_CARD, row keep). The clipped channels of the
same pixels keep the flow's value.
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
    # Measured channels are kept: in a pixel where a channel's 8-bit code reaches ``clip_code``,
    # the channels below it decode to the naive inverse (module docstring). Configs saved before
    # this field existed load with it on: it is a rule on the output, not something trained.
    keep_measured: bool = True
    clip_code: int = 253

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ValueError for an unknown kind (also after a field was set, e.g. by ``--set``)."""
        if self.kind not in KINDS:
            raise ValueError(f"target kind {self.kind!r}: choose from {', '.join(KINDS)}")
        if not 1 <= self.clip_code <= 255:
            raise ValueError(f"target clip_code {self.clip_code}: an 8-bit code, 1 to 255")

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


def measured_near_clip(ldr: torch.Tensor, clip_code: int) -> torch.Tensor:
    """Channels below the clip in pixels where another channel is at it (bool, shape of ``ldr``).

    ``ldr`` is display-encoded in [0, 1]; a channel is at the clip from half a code below
    ``clip_code`` (8-bit codes arrive as code / 255, so the test is exact for them)."""
    at_clip = ldr * 255.0 >= clip_code - 0.5
    return ~at_clip & at_clip.any(dim=1, keepdim=True)


def keep_measured_target(t: torch.Tensor, ldr: torch.Tensor, tt: TargetTransform) -> torch.Tensor:
    """``t`` with the measured channels near the clip replaced by the naive inverse's encoding:
    what ``decode`` will output there, in the target domain (the cycle term's view of the rule;
    a target transform without the rule leaves ``t`` as it is, as ``decode`` does)."""
    if not tt.keep_measured:
        return t
    naive = encode(srgb_to_linear(ldr), ldr, tt)
    return torch.where(measured_near_clip(ldr, tt.clip_code), naive, t)


def decode(t: torch.Tensor, ldr: torch.Tensor, tt: TargetTransform) -> torch.Tensor:
    """The inverse of ``encode`` (linear radiance), with measured channels kept (``keep_measured``)."""
    corr = (t * tt.scale).clamp(-MAX_LOG_CORRECTION, MAX_LOG_CORRECTION)
    hdr = (torch.exp(_base(ldr, tt) + corr) - tt.eps).clamp_min(0.0)
    if tt.keep_measured:
        hdr = torch.where(measured_near_clip(ldr, tt.clip_code), srgb_to_linear(ldr), hdr)
    return hdr
