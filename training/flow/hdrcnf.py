"""The multi-level HDR-CNF flow (SRFlow-style), assembled from the invertible layers.

Level l (1-based) works at resolution H/2^l:
  squeeze -> transition steps (actnorm, 1x1 conv) -> K conditional steps (actnorm, 1x1 conv,
  affine injector, conditional affine coupling) -> split (all but the last level).
The last level standardises everything that is left with a prior conditioned on the features.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .actnorm import ActNorm
from .coupling import ConditionalAffineCoupling
from .injector import AffineInjector
from .invconv import InvConv1x1
from .split import ConditionalGaussianize, Split
from .squeeze import Squeeze


@dataclass
class FlowConfig:
    levels: int = 3          # L
    steps: int = 4           # K conditional flow steps per level
    hidden: int = 32         # width of every shift/scale subnet
    transitions: int = 1     # transition steps (actnorm + 1x1 conv) after each squeeze
    lu: bool = False         # LU-decomposed 1x1 convolutions
    kernel: int = 3          # spatial kernel of the subnets
    in_channels: int = 3


def latent_channels(config: FlowConfig) -> list[int]:
    """Channels of the latent leaving each level: 3*2^l for split levels, 3*2^(L+1) at the top."""
    out, c = [], config.in_channels
    for level in range(config.levels):
        c *= 4
        if level < config.levels - 1:
            out.append(c - c // 2)
            c //= 2
        else:
            out.append(c)
    return out


class FlowStep(nn.Module):
    """One conditional step: actnorm -> 1x1 conv -> affine injector -> affine coupling."""

    def __init__(self, channels: int, cond_channels: int, cfg: FlowConfig):
        super().__init__()
        self.layers = nn.ModuleList([
            ActNorm(channels),
            InvConv1x1(channels, lu=cfg.lu),
            AffineInjector(channels, cond_channels, cfg.hidden, cfg.kernel),
            ConditionalAffineCoupling(channels, cond_channels, cfg.hidden, cfg.kernel),
        ])

    def forward(self, x, cond):
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, cond)
            logdet = logdet + ld
        return x, logdet

    def reverse(self, y, cond):
        logdet = y.new_zeros(y.shape[0])
        for layer in reversed(self.layers):
            y, ld = layer.reverse(y, cond)
            logdet = logdet + ld
        return y, logdet


class TransitionStep(FlowStep):
    """Unconditional actnorm + 1x1 conv right after a squeeze: mixes the new channels."""

    def __init__(self, channels: int, lu: bool):
        nn.Module.__init__(self)
        self.layers = nn.ModuleList([ActNorm(channels), InvConv1x1(channels, lu=lu)])


class FlowLevel(nn.Module):
    def __init__(self, in_channels: int, cond_channels: int, cfg: FlowConfig, last: bool):
        super().__init__()
        c = in_channels * 4
        self.squeeze = Squeeze()
        self.steps = nn.ModuleList(
            [TransitionStep(c, cfg.lu) for _ in range(cfg.transitions)]
            + [FlowStep(c, cond_channels, cfg) for _ in range(cfg.steps)]
        )
        self.last = last
        if last:
            self.prior = ConditionalGaussianize(c, cond_channels, cfg.hidden, cfg.kernel)
            self.out_channels = 0
        else:
            self.split = Split(c, cond_channels, cfg.hidden, cfg.kernel)
            self.out_channels = c // 2

    def forward(self, x, cond):
        x, logdet = self.squeeze(x)
        for step in self.steps:
            x, ld = step(x, cond)
            logdet = logdet + ld
        if self.last:
            eps, ld = self.prior(x, cond)
            return None, eps, logdet + ld
        (kept, eps), ld = self.split(x, cond)
        return kept, eps, logdet + ld

    def reverse(self, kept, eps, cond):
        if self.last:
            x, logdet = self.prior.reverse(eps, cond)
        else:
            x, logdet = self.split.reverse((kept, eps), cond)
        for step in reversed(self.steps):
            x, ld = step.reverse(x, cond)
            logdet = logdet + ld
        x, ld = self.squeeze.reverse(x)
        return x, logdet + ld


class HDRCNFFlow(nn.Module):
    """Bijection between the (normalised, log-domain) HDR target and per-level standard-normal
    latents, conditioned on one feature map per level (``conds[l]`` at H/2^(l+1))."""

    def __init__(self, cfg: FlowConfig, cond_channels: int):
        super().__init__()
        self.cfg = cfg
        levels, c = [], cfg.in_channels
        for level in range(cfg.levels):
            lvl = FlowLevel(c, cond_channels, cfg, last=level == cfg.levels - 1)
            levels.append(lvl)
            c = lvl.out_channels
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor, conds: list[torch.Tensor]):
        logdet = x.new_zeros(x.shape[0])
        latents = []
        for level, cond in zip(self.levels, conds):
            x, eps, ld = level(x, cond)
            latents.append(eps)
            logdet = logdet + ld
        return latents, logdet

    def reverse(self, latents: list[torch.Tensor], conds: list[torch.Tensor]):
        logdet = latents[0].new_zeros(latents[0].shape[0])
        x = None
        for level, eps, cond in zip(reversed(self.levels), reversed(latents), reversed(conds)):
            x, ld = level.reverse(x, eps, cond)
            logdet = logdet + ld
        return x, logdet
