"""Small conv nets that predict shift/scale, and the bounded scale every affine layer uses."""
from __future__ import annotations

import torch
from torch import nn

LOG_SCALE_BOUND = 2.0


def bounded_log_scale(raw: torch.Tensor, bound: float = LOG_SCALE_BOUND) -> torch.Tensor:
    """Soft-clamp a raw network output to a log-scale in (-bound, bound).

    ``bound * tanh(raw / bound)`` is 0 at 0 (so a zero-initialised subnet is the identity) and
    keeps both directions bounded: the forward pass never multiplies by more than e^bound and
    the reverse pass (used by the cycle loss and at inference) never divides by less than
    e^-bound. Unbounded or sigmoid scales let the reverse pass blow up (DESIGN pitfalls).
    """
    return bound * torch.tanh(raw / bound)


def conv_subnet(in_ch: int, hidden: int, out_ch: int, kernel: int = 3) -> nn.Sequential:
    """conv(k) -> ReLU -> conv1x1 -> ReLU -> conv(k), last layer zero-initialised (identity start)."""
    pad = kernel // 2
    last = nn.Conv2d(hidden, out_ch, kernel, padding=pad)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        nn.Conv2d(in_ch, hidden, kernel, padding=pad), nn.ReLU(inplace=True),
        nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True),
        last,
    )


def split_shift_scale(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-interleaved split of a subnet output into (shift, log_scale)."""
    shift, raw = h[:, 0::2], h[:, 1::2]
    return shift, bounded_log_scale(raw)
