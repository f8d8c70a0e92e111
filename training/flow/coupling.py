"""Conditional affine coupling (RealNVP/Glow with SRFlow conditioning)."""
from __future__ import annotations

import torch
from torch import nn

from .subnet import conv_subnet, split_shift_scale


class ConditionalAffineCoupling(nn.Module):
    """The first half of the channels, together with the LDR features, predicts shift and scale
    for the second half; the first half passes through unchanged, so inversion is exact."""

    def __init__(self, channels: int, cond_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.keep = channels // 2
        self.net = conv_subnet(self.keep + cond_channels, hidden, 2 * (channels - self.keep), kernel)

    def _params(self, xa: torch.Tensor, cond: torch.Tensor):
        return split_shift_scale(self.net(torch.cat([xa, cond], dim=1)))

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        xa, xb = x[:, : self.keep], x[:, self.keep:]
        shift, log_scale = self._params(xa, cond)
        return torch.cat([xa, xb * torch.exp(log_scale) + shift], dim=1), log_scale.sum(dim=(1, 2, 3))

    def reverse(self, y: torch.Tensor, cond: torch.Tensor):
        ya, yb = y[:, : self.keep], y[:, self.keep:]
        shift, log_scale = self._params(ya, cond)
        return torch.cat([ya, (yb - shift) * torch.exp(-log_scale)], dim=1), -log_scale.sum(dim=(1, 2, 3))
