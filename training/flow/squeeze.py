"""Squeeze: 2x2 space-to-depth, the flow's only change of resolution. Volume preserving."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Squeeze(nn.Module):
    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        return F.pixel_shuffle(y, 2), y.new_zeros(y.shape[0])
