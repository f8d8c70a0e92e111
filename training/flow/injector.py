"""Affine injector (SRFlow): a per-pixel affine map whose shift and scale come from the conditioning only."""
from __future__ import annotations

import torch
from torch import nn

from .subnet import conv_subnet, split_shift_scale


class AffineInjector(nn.Module):
    """y = x * exp(s(c)) + t(c).

    Because shift and scale depend only on the LDR features, the transform is invertible for any
    x and its log-determinant is just sum(s). This is how the LDR's content reaches every channel
    of the flow, not only the half that a coupling layer transforms.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.net = conv_subnet(cond_channels, hidden, 2 * channels, kernel)

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        shift, log_scale = split_shift_scale(self.net(cond))
        return x * torch.exp(log_scale) + shift, log_scale.sum(dim=(1, 2, 3))

    def reverse(self, y: torch.Tensor, cond: torch.Tensor):
        shift, log_scale = split_shift_scale(self.net(cond))
        return (y - shift) * torch.exp(-log_scale), -log_scale.sum(dim=(1, 2, 3))
