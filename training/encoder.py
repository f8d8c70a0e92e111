"""LDR feature-extraction network: RRDB trunk (ESRGAN/SRFlow style) giving one feature map per level.

It runs once per image and conditions every injector, coupling and prior. The trunk works at
H/``trunk_scale`` (SRFlow's RRDB also runs at a quarter of the output resolution), which keeps
inference fast on CPUs and widens the receptive field per convolution; level 1 (H/2) additionally
sees a shallow full-detail stem so fine edges of clipped regions stay sharp.

An optional context branch (``context_down`` > 0) widens the receptive field to a few hundred
pixels at little cost: it works at H/(trunk_scale * 2**context_down) with dilated convolutions
and adds its upsampled result to the trunk. A lamp or sun that clips over a disc wider than the
trunk's ~56 px view is otherwise seen as "clipped" only, with no hint of how large and so how
bright the source is. Its output convolution starts at zero, so adding the branch to a trained
model changes nothing until fine-tuning teaches it (``HDRCNF.load_weights``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from engine.geometry import GEOMETRY_CHANNELS


@dataclass
class EncoderConfig:
    nf: int = 32             # trunk width
    nb: int = 2              # number of RRDB blocks
    gc: int = 16             # growth channels inside a dense block
    cond_channels: int = 32  # channels of each per-level feature map
    trunk_scale: int = 4     # 2 or 4: resolution divisor of the RRDB trunk
    mask_threshold: float = 0.9  # soft clip mask ramps from here to 1.0
    context_down: int = 0    # context branch: extra stride-2 steps below the trunk (0 = no branch)
    context_blocks: int = 3  # dilated 3x3 convolutions in the branch, dilation 1, 2, 4, ...
    geometry: bool = False   # also take engine.geometry's planes (panorama flag, sin latitude)
    geometry_latitude: bool = True  # with geometry: use the latitude plane too (False: the flag alone)

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this for the encoder's resolutions to line up."""
        return self.trunk_scale * 2 ** self.context_down


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

    RESIDUAL_SCALE = 0.2  # with dense blocks that add nothing, the block computes (1 + 0.2) x

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualDenseBlock(nf, gc) for _ in range(3)])

    def forward(self, x):
        return x + self.RESIDUAL_SCALE * self.blocks(x)


class ContextBranch(nn.Module):
    """Downsample ``down`` times, dilated residual convolutions, upsample back; zero at init."""

    def __init__(self, nf: int, down: int, blocks: int):
        super().__init__()
        self.scale = 2 ** down
        self.downs = nn.ModuleList([nn.Conv2d(nf, nf, 3, stride=2, padding=1) for _ in range(down)])
        self.body = nn.ModuleList([nn.Conv2d(nf, nf, 3, padding=2 ** i, dilation=2 ** i) for i in range(blocks)])
        self.out = nn.Conv2d(nf, nf, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        h = x
        for down in self.downs:
            h = F.leaky_relu(down(h), 0.2)
        for conv in self.body:
            h = h + F.leaky_relu(conv(h), 0.2)
        return self.out(F.interpolate(h, scale_factor=float(self.scale), mode="bilinear", align_corners=False))


class LDREncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig, levels: int):
        super().__init__()
        if cfg.trunk_scale not in (2, 4):
            raise ValueError("trunk_scale must be 2 or 4")
        self.cfg, self.levels = cfg, levels
        nf, cc = cfg.nf, cfg.cond_channels
        planes = 3 + 1 + (self._geometry_planes() if cfg.geometry else 0)  # LDR, clip mask, geometry
        self.stem = nn.Conv2d(4 * planes, nf, 3, padding=1)  # on the 2x2-unshuffled planes, at H/2
        self.down = nn.Conv2d(nf, nf, 3, stride=2, padding=1) if cfg.trunk_scale == 4 else None
        self.trunk = nn.Sequential(*[RRDB(nf, cfg.gc) for _ in range(cfg.nb)])
        self.trunk_out = nn.Conv2d(nf, nf, 3, padding=1)
        self.context = ContextBranch(nf, cfg.context_down, cfg.context_blocks) if cfg.context_down > 0 else None
        self.head1 = nn.Conv2d(2 * nf if cfg.trunk_scale == 4 else nf, cc, 3, padding=1)
        self.head2 = nn.Conv2d(nf, cc, 3, padding=1) if levels >= 2 else None
        # levels beyond what the trunk resolution gives directly: stride-2 convs
        first_down = 2 if cfg.trunk_scale == 4 else 1
        self.downs = nn.ModuleList(
            [nn.Conv2d(nf if i == 0 else cc, cc, 3, stride=2, padding=1) for i in range(max(0, levels - first_down))]
        )

    def _geometry_planes(self) -> int:
        """How many of the geometry planes the encoder reads: all, or the panorama flag alone (the
        graph still takes them all: the engine's input contract does not change)."""
        return len(GEOMETRY_CHANNELS) if self.cfg.geometry_latitude else 1

    def forward(self, ldr: torch.Tensor, geometry: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per-level features of the LDR (+ its geometry planes, which a geometry model needs)."""
        x = torch.cat([ldr, soft_clip_mask(ldr, self.cfg.mask_threshold)], dim=1)
        if self.cfg.geometry:
            if geometry is None:
                raise ValueError("this encoder takes geometry planes (engine.geometry) beside the LDR")
            x = torch.cat([x, geometry[:, : self._geometry_planes()]], dim=1)
        s2 = F.leaky_relu(self.stem(F.pixel_unshuffle(x, 2)), 0.2)
        t_in = F.leaky_relu(self.down(s2), 0.2) if self.down is not None else s2
        trunk = t_in + self.trunk_out(self.trunk(t_in))
        if self.context is not None:
            trunk = trunk + self.context(trunk)
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
