"""LDR feature-extraction network: RRDB trunk (ESRGAN/SRFlow style) giving one feature map per level.

It runs once per image and conditions every injector, coupling and prior. The trunk works at
H/``trunk_scale`` (SRFlow's RRDB also runs at a quarter of the output resolution), which keeps
inference fast on CPUs and widens the receptive field per convolution; level 1 (H/2) additionally
sees a shallow full-detail stem so fine edges of clipped regions stay sharp.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class EncoderConfig:
    nf: int = 32             # trunk width
    nb: int = 2              # number of RRDB blocks
    gc: int = 16             # growth channels inside a dense block
    cond_channels: int = 32  # channels of each per-level feature map
    trunk_scale: int = 4     # 2 or 4: resolution divisor of the RRDB trunk
    mask_threshold: float = 0.9  # soft clip mask ramps from here to 1.0


def soft_clip_mask(ldr: torch.Tensor, threshold: float) -> torch.Tensor:
    """0 below ``threshold``, ramps to 1 at the clip point: tells the network where data is missing."""
    peak = ldr.max(dim=1, keepdim=True).values
    return ((peak - threshold) / (1.0 - threshold)).clamp(0.0, 1.0)


class ResidualDenseBlock(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(nf + i * gc, gc, 3, padding=1) for i in range(4)])
        self.fuse = nn.Conv2d(nf + 4 * gc, nf, 3, padding=1)

    def forward(self, x):
        feats = [x]
        for conv in self.convs:
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.fuse(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and a scaled skip."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualDenseBlock(nf, gc) for _ in range(3)])

    def forward(self, x):
        return x + 0.2 * self.blocks(x)


class LDREncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig, levels: int):
        super().__init__()
        if cfg.trunk_scale not in (2, 4):
            raise ValueError("trunk_scale must be 2 or 4")
        self.cfg, self.levels = cfg, levels
        nf, cc = cfg.nf, cfg.cond_channels
        self.stem = nn.Conv2d(4 * 4, nf, 3, padding=1)  # on the 2x2-unshuffled LDR + mask, at H/2
        self.down = nn.Conv2d(nf, nf, 3, stride=2, padding=1) if cfg.trunk_scale == 4 else None
        self.trunk = nn.Sequential(*[RRDB(nf, cfg.gc) for _ in range(cfg.nb)])
        self.trunk_out = nn.Conv2d(nf, nf, 3, padding=1)
        self.head1 = nn.Conv2d(2 * nf if cfg.trunk_scale == 4 else nf, cc, 3, padding=1)
        self.head2 = nn.Conv2d(nf, cc, 3, padding=1) if levels >= 2 else None
        # levels beyond what the trunk resolution gives directly: stride-2 convs
        first_down = 2 if cfg.trunk_scale == 4 else 1
        self.downs = nn.ModuleList(
            [nn.Conv2d(nf if i == 0 else cc, cc, 3, stride=2, padding=1) for i in range(max(0, levels - first_down))]
        )

    def forward(self, ldr: torch.Tensor) -> list[torch.Tensor]:
        x = torch.cat([ldr, soft_clip_mask(ldr, self.cfg.mask_threshold)], dim=1)
        s2 = F.leaky_relu(self.stem(F.pixel_unshuffle(x, 2)), 0.2)
        t_in = F.leaky_relu(self.down(s2), 0.2) if self.down is not None else s2
        trunk = t_in + self.trunk_out(self.trunk(t_in))
        feats = []
        if self.down is not None:
            up = F.interpolate(trunk, scale_factor=2.0, mode="nearest")
            feats.append(self.head1(torch.cat([s2, up], dim=1)))
            if self.levels >= 2:
                feats.append(self.head2(trunk))
        else:
            feats.append(self.head1(trunk))
        h = trunk
        for down in self.downs:
            h = down(F.leaky_relu(h, 0.2))
            feats.append(h)
        return feats[: self.levels]
