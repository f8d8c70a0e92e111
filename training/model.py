"""HDR-CNF: LDR encoder + conditional flow + target transform, with the config dataclasses.

``ModelConfig`` is the whole architecture; the named configs ``compact`` (CPU, shipped default) and
``paper`` (SRFlow-sized, for GPUs) live in ``training.configs``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .encoder import RRDB, ContextBranch, EncoderConfig, LDREncoder, ResidualDenseBlock
from .flow import ActNorm, FlowConfig, HDRCNFFlow, InvConv1x1
from .flow.hdrcnf import FlowStep, latent_channels
from .target import TargetTransform, decode, encode

LOG_2PI = math.log(2 * math.pi)


@dataclass
class ModelConfig:
    flow: FlowConfig = field(default_factory=FlowConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    target: TargetTransform = field(default_factory=TargetTransform)
    # a training-only regression head on the encoder's H/2 features (``AuxHead``); the exported
    # reverse pass does not use it
    aux_head: bool = False

    @property
    def stride(self) -> int:
        """Input sizes (and tile origins) must be multiples of this: the flow's squeezes and the
        encoder's downsampling both need it."""
        return math.lcm(2 ** self.flow.levels, self.encoder.stride)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        return cls(FlowConfig(**d["flow"]), EncoderConfig(**d["encoder"]), TargetTransform(**d["target"]),
                   d.get("aux_head", False))


class AuxHead(nn.Module):
    """Predicts the target (the log correction) at full resolution from the encoder's H/2
    features, for an L1 term on the encoder alone (``loss.aux_weight``). The flow models the whole
    conditional distribution; this asks the features themselves to carry the brightness of the
    clip, as a deterministic single-image HDR network would (MODEL_CARD, row aux)."""

    def __init__(self, cond_channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cond_channels, cond_channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(cond_channels, 12, 3, padding=1))

    def forward(self, level1: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.body(level1), 2)


class HDRCNF(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = LDREncoder(cfg.encoder, cfg.flow.levels)
        self.flow = HDRCNFFlow(cfg.flow, cfg.encoder.cond_channels)
        self.aux = AuxHead(cfg.encoder.cond_channels) if cfg.aux_head else None

    def load_weights(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Load ``state``; it may come from a smaller model (growing a model): one with fewer flow
        steps per level or encoder trunk blocks, or without the encoder's context branch or the
        auxiliary head.

        Everything else must match exactly. The steps the state lacks start as the identity
        (actnorm bias/log-scale 0 and marked initialised, 1x1 convolution = I, subnets already
        zero-initialised), an added trunk block starts as a pure gain (each dense block's fusing
        convolution zeroed, so the block computes 1.2x; the trunk's output convolution is divided by
        that gain, since nothing but the blocks lies between them), a missing context branch adds
        zero (its output convolution is zero-initialised) and the auxiliary head is not part of the
        function, so the grown model computes exactly the function of the smaller one and
        fine-tuning adds capacity without losing what was learned. A model that takes geometry
        planes (``encoder.geometry``) grown from one that does not gets stem weights of zero for
        them, so it ignores them until fine-tuning. Returns the names of the modules that were
        added ("encoder.stem" for its geometry inputs).
        """
        grown_stem = []
        stem_key, stem = "encoder.stem.weight", self.encoder.stem.weight
        if stem_key in state and state[stem_key].shape[1] < stem.shape[1] and self.cfg.encoder.geometry:
            old = state[stem_key]  # LDR + mask come first in the unshuffled planes, geometry after
            if old.shape[0] != stem.shape[0] or old.shape[2:] != stem.shape[2:]:
                raise ValueError(f"weights do not fit this model: {stem_key} is {tuple(old.shape)}, "
                                 f"expected {tuple(stem.shape)}")
            padded = torch.zeros_like(stem)
            padded[:, : old.shape[1]] = old
            state, grown_stem = {**state, stem_key: padded}, ["encoder.stem"]
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches: another architecture
            raise ValueError(str(exc).strip().splitlines()[-1].strip()) from None
        missing = set(missing)
        modules = dict(self.named_modules())
        # Added modules: flow steps, trunk blocks, a context branch or the auxiliary head, none of
        # whose tensors the state has.
        added = [name for name, m in modules.items() if type(m) in (FlowStep, RRDB, ContextBranch, AuxHead)
                 and {f"{name}.{k}" for k in m.state_dict()} <= missing]
        others = missing - {f"{name}.{k}" for name in added for k in modules[name].state_dict()}
        if unexpected or others:
            raise ValueError(f"weights do not fit this model: missing {sorted(others)[:3]}, "
                             f"unexpected {list(unexpected)[:3]}")
        with torch.no_grad():
            for name in added:  # a context branch is already zero from its constructor
                for m in modules[name].modules():
                    if isinstance(m, ActNorm):
                        m.bias.zero_()
                        m.log_scale.zero_()
                        m.initialized.fill_(1)
                    elif isinstance(m, InvConv1x1):
                        if m.lu:
                            raise ValueError("growing a model with LU-decomposed 1x1 convolutions is not supported")
                        m.weight.copy_(torch.eye(m.weight.shape[0]))
                    elif isinstance(m, ResidualDenseBlock):
                        m.fuse.weight.zero_()
                        m.fuse.bias.zero_()
                if isinstance(modules[name], RRDB):
                    self.encoder.trunk_out.weight.div_(1.0 + RRDB.RESIDUAL_SCALE)
        return added + grown_stem

    def latent_shapes(self, n: int, h: int, w: int) -> list[tuple[int, int, int, int]]:
        return [(n, c, h // 2 ** (i + 1), w // 2 ** (i + 1)) for i, c in enumerate(latent_channels(self.cfg.flow))]

    def to_target(self, hdr: torch.Tensor, ldr: torch.Tensor) -> torch.Tensor:
        return encode(hdr, ldr, self.cfg.target)

    def split_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The graph's input -> (LDR, geometry planes or None): a geometry model's input carries
        ``engine.geometry``'s planes after the LDR's three channels."""
        if self.cfg.encoder.geometry:
            return x[:, :3], x[:, 3:]
        return x, None

    def encode(self, ldr: torch.Tensor, target: torch.Tensor, conds=None, geometry=None):
        """Target (already in the normalised log domain) -> (standard-normal latents, logdet)."""
        conds = self.encoder(ldr, geometry) if conds is None else conds
        return self.flow(target, conds)

    def log_prob(self, latents, logdet) -> torch.Tensor:
        """log p(target | ldr) per sample, in nats."""
        lp = logdet
        for eps in latents:
            lp = lp - 0.5 * (eps ** 2 + LOG_2PI).sum(dim=(1, 2, 3))
        return lp

    def reverse_target(self, ldr: torch.Tensor, latents, conds=None, geometry=None) -> torch.Tensor:
        conds = self.encoder(ldr, geometry) if conds is None else conds
        return self.flow.reverse(latents, conds)[0]

    def forward(self, x: torch.Tensor, *latents: torch.Tensor) -> torch.Tensor:
        """The exported reverse pass: LDR (+ geometry planes, ``split_input``) + standardised
        latents -> linear HDR (clip point 1.0)."""
        ldr, geometry = self.split_input(x)
        return decode(self.reverse_target(ldr, list(latents), geometry=geometry), ldr, self.cfg.target)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, temperature: float = 0.6, generator: torch.Generator | None = None):
        """HDR from the graph's input ``x`` (``forward``) with latents at ``temperature``."""
        n, _, h, w = x.shape
        # drawn on the CPU generator (reproducible across devices), then moved to the model's device
        latents = [temperature * torch.randn(s, generator=generator).to(x.device)
                   for s in self.latent_shapes(n, h, w)]
        return self(x, *latents)
