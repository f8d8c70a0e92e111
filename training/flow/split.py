"""Split and the learned conditional Gaussian prior.

Instead of scoring a factored-out latent under N(mu, sigma) we *standardise* it,
eps = (z - mu) / sigma, and let the flow's output be eps ~ N(0, I). The two are the same density
(the -sum(log sigma) appears as a log-determinant), but this way the reverse pass takes
standard-normal latents: the engine draws ``T * N(0, 1)`` and the exported graph applies mu and
sigma itself, so temperature and seeding live entirely in the host.
"""
from __future__ import annotations

import torch
from torch import nn

from .subnet import conv_subnet, split_shift_scale


class ConditionalGaussianize(nn.Module):
    """eps = (z - mu(h)) * exp(-log_sigma(h)), with (mu, log_sigma) predicted from ``h``."""

    def __init__(self, channels: int, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.net = conv_subnet(in_channels, hidden, 2 * channels, kernel)

    def forward(self, z: torch.Tensor, h: torch.Tensor):
        mu, log_sigma = split_shift_scale(self.net(h))
        return (z - mu) * torch.exp(-log_sigma), -log_sigma.sum(dim=(1, 2, 3))

    def reverse(self, eps: torch.Tensor, h: torch.Tensor):
        mu, log_sigma = split_shift_scale(self.net(h))
        return eps * torch.exp(log_sigma) + mu, log_sigma.sum(dim=(1, 2, 3))


class Split(nn.Module):
    """Half the channels leave the flow as a latent whose prior is conditioned on the kept half
    and on the LDR features. forward: x -> ((kept, eps), logdet); reverse: ((kept, eps)) -> x."""

    def __init__(self, channels: int, cond_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.keep = channels // 2
        self.prior = ConditionalGaussianize(channels - self.keep, self.keep + cond_channels, hidden, kernel)

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        kept, z = x[:, : self.keep], x[:, self.keep:]
        eps, logdet = self.prior(z, torch.cat([kept, cond], dim=1))
        return (kept, eps), logdet

    def reverse(self, y, cond: torch.Tensor):
        kept, eps = y
        z, logdet = self.prior.reverse(eps, torch.cat([kept, cond], dim=1))
        return torch.cat([kept, z], dim=1), logdet
