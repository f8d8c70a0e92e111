"""Invertible 1x1 convolution (Glow), plain or LU-decomposed."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class InvConv1x1(nn.Module):
    """y = W x per pixel, W a learned invertible C x C matrix initialised to a random rotation.

    ``lu=True`` parameterises W = P L (U + diag(s)) so the log-determinant is sum(log|s|) instead
    of a slogdet, cheaper for wide layers. For ONNX export (which has no matrix inverse) call
    ``freeze()``: it computes W^-1 once in float64 and the reverse pass then uses that constant.
    """

    def __init__(self, channels: int, lu: bool = False):
        super().__init__()
        self.lu = lu
        w = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        if lu:
            p, lower, upper = torch.linalg.lu(w)
            s = torch.diagonal(upper)
            self.register_buffer("perm", p.float())
            self.register_buffer("sign_s", torch.sign(s).float())
            self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
            self.lower = nn.Parameter(lower.float())
            self.upper = nn.Parameter(torch.triu(upper, 1).float())
            self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())
        else:
            self.weight = nn.Parameter(w.float())
        # set by freeze(): non-persistent buffers, so .to(device) moves them and checkpoints skip them
        self.register_buffer("frozen_inverse", None, persistent=False)
        self.register_buffer("frozen_log_abs_det", None, persistent=False)

    def matrix(self) -> torch.Tensor:
        if not self.lu:
            return self.weight
        c = self.log_s.shape[0]
        eye = torch.eye(c, device=self.log_s.device, dtype=self.log_s.dtype)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def log_abs_det(self) -> torch.Tensor:
        if self.lu:
            return self.log_s.sum()
        return torch.linalg.slogdet(self.weight)[1]

    @torch.no_grad()
    def freeze(self) -> None:
        """Bake W^-1 and log|det W| as constants (float64 inverse) for export."""
        w = self.matrix().double()
        self.frozen_inverse = torch.linalg.inv(w).float()
        self.frozen_log_abs_det = torch.linalg.slogdet(w)[1].float()

    def unfreeze(self) -> None:
        self.frozen_inverse = self.frozen_log_abs_det = None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        w = self.matrix()
        c = w.shape[0]
        logdet = self.log_abs_det() * x.shape[2] * x.shape[3] * x.new_ones(x.shape[0])
        return F.conv2d(x, w.view(c, c, 1, 1)), logdet

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        if self.frozen_inverse is not None:
            w_inv, lad = self.frozen_inverse, self.frozen_log_abs_det
        else:
            w_inv, lad = torch.linalg.inv(self.matrix()), self.log_abs_det()
        c = w_inv.shape[0]
        logdet = -lad * y.shape[2] * y.shape[3] * y.new_ones(y.shape[0])
        return F.conv2d(y, w_inv.view(c, c, 1, 1)), logdet
