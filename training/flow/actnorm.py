"""Activation normalisation (Glow): per-channel affine with data-dependent initialisation."""
from __future__ import annotations

import torch
from torch import nn


class ActNorm(nn.Module):
    """y = (x + bias) * exp(log_scale), per channel.

    The first forward pass in training mode sets bias and scale so that the batch comes out with
    zero mean and unit variance per channel; this is what lets deep flows start stable without
    batch norm. The ``initialized`` flag is a buffer so checkpoints and DDP broadcasts keep it.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, correction=0)
        self.bias.data.copy_(-mean)
        self.log_scale.data.copy_(torch.log(1.0 / (std + 1e-6)).clamp(-5.0, 5.0))
        self.initialized.fill_(1)

    def _logdet(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_scale.sum() * x.shape[2] * x.shape[3] * x.new_ones(x.shape[0])

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        if self.training and not bool(self.initialized):
            self._initialize(x)
        return (x + self.bias) * torch.exp(self.log_scale), self._logdet(x)

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        return y * torch.exp(-self.log_scale) - self.bias, -self._logdet(y)
