"""Named training configurations (dataclasses, no dict soup).

- ``compact``: trains on a 2-core CPU in about 1.5 hours and ships as the default model; its
  inference must stay fast on CPUs (1024x512 in well under 2 s with onnxruntime).
- ``paper``: SRFlow-sized (L=3, K=16, hidden 64, RRDB nf=64 nb=23), for GPUs.
- ``tiny``: seconds per step, for tests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .data import PatchConfig
from .encoder import EncoderConfig
from .flow import FlowConfig
from .lights import LightConfig
from .model import ModelConfig
from .target import TargetTransform


@dataclass
class LossConfig:
    # lambda: the cycle term is an L1 in the normalised log domain (~0.1-1 per pixel) while NLL is
    # ~0-3 bits/dim; weight 1 keeps both in play without the cycle term swamping the density.
    cycle_weight: float = 1.0
    # tau: the reverse pass for the cycle term uses latents at this temperature; 0 is the mode but
    # made the prototype diverge (DESIGN pitfalls); 0.5 sits close to the inference temperature.
    cycle_tau: float = 0.5
    clip_weight: float = 4.0       # extra cycle weight on clipped pixels
    bright_weight: float = 0.0     # extra cycle weight per unit of the true log correction (losses.cycle_loss)
    # the cycle term sees the reverse pass with measured channels kept (training.target), as the
    # exported graph outputs it, so it no longer asks the flow to get channels right that the rule
    # replaces anyway
    cycle_keep_measured: bool = False
    # weight of an L1 term between the encoder's auxiliary prediction of the target and the target
    # (needs model.aux_head=true; clipped pixels weighted as in the cycle term)
    aux_weight: float = 0.0
    dequant_noise: float = 0.01    # std of Gaussian noise on the log-domain target
    # weight of the per-patch light-energy term (losses.energy_loss) on the same tau reverse pass;
    # 0 switches it off. It targets what lighting with the HDRI shows: total power and irradiance.
    energy_weight: float = 0.0


@dataclass
class TrainConfig:
    name: str
    model: ModelConfig
    patches: PatchConfig = field(default_factory=PatchConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    steps: int = 6000
    batch: int = 8
    lr: float = 5e-4
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 20.0
    val_every: int = 500
    ckpt_every: int = 250
    seed: int = 0
    val_width: int = 256
    inference_temperature: float = 0.6

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        patches = dict(d.pop("patches"))
        patches["light"] = LightConfig.from_json(patches.get("light", {}))
        return cls(model=ModelConfig.from_json(d.pop("model")), patches=PatchConfig(**patches),
                   loss=LossConfig(**d.pop("loss")), **d)


def compact() -> TrainConfig:
    return TrainConfig(
        name="compact",
        model=ModelConfig(FlowConfig(levels=3, steps=4, hidden=32),
                          EncoderConfig(nf=32, nb=2, gc=16, cond_channels=32, trunk_scale=4),
                          TargetTransform()),
        patches=PatchConfig(patch=64), steps=9000, batch=8,
    )


def paper() -> TrainConfig:
    return TrainConfig(
        name="paper",
        model=ModelConfig(FlowConfig(levels=3, steps=16, hidden=64, lu=True),
                          EncoderConfig(nf=64, nb=23, gc=32, cond_channels=64, trunk_scale=4),
                          TargetTransform()),
        patches=PatchConfig(patch=160), steps=200000, batch=16, lr=2.5e-4, warmup=1000,
        val_every=5000, ckpt_every=1000,
    )


def tiny() -> TrainConfig:
    return TrainConfig(
        name="tiny",
        model=ModelConfig(FlowConfig(levels=2, steps=2, hidden=16),
                          EncoderConfig(nf=8, nb=1, gc=8, cond_channels=8, trunk_scale=4),
                          TargetTransform()),
        patches=PatchConfig(patch=32), steps=100, batch=4, lr=2e-3, warmup=5, val_every=50, ckpt_every=50,
        val_width=64,
    )


CONFIGS = {"compact": compact, "paper": paper, "tiny": tiny}
