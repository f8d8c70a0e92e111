"""Training losses: NLL in bits per dimension and the cycle-consistency loss.

The cycle term runs the reverse pass from a latent drawn at temperature ``tau`` and asks it to
reproduce the ground truth (L1 in the normalised log domain). NLL alone makes the flow cover the
conditional distribution; the cycle term pulls its samples at the inference temperature towards
the truth, which is what lifts clipped highlights with confidence. Clipped pixels are weighted up
because that is where the LDR carries no information and where users look.
"""
from __future__ import annotations

import math

import torch


CYCLE_OUTPUT_BOUND = 20.0  # reverse-pass outputs are clamped before they enter a loss (NaN guard)


def bits_per_dim(log_prob: torch.Tensor, dims: int) -> torch.Tensor:
    """Mean negative log-likelihood in bits per dimension."""
    return (-log_prob / (dims * math.log(2.0))).mean()


def clipped_weight(ldr: torch.Tensor, clip_weight: float, threshold: float = 0.98) -> torch.Tensor:
    """1 everywhere, 1 + clip_weight where any channel of the LDR is (nearly) clipped."""
    clipped = (ldr.max(dim=1, keepdim=True).values >= threshold).float()
    return 1.0 + clip_weight * clipped


def cycle_loss(recon: torch.Tensor, target: torch.Tensor, ldr: torch.Tensor, clip_weight: float) -> torch.Tensor:
    """Weighted L1 between the reverse pass from a tau-temperature latent (``recon``) and the target,
    both in the normalised log domain; ``recon`` is clamped first so a bad step cannot make NaNs."""
    recon = recon.clamp(-CYCLE_OUTPUT_BOUND, CYCLE_OUTPUT_BOUND)
    weight = clipped_weight(ldr, clip_weight)
    return (weight * (recon - target).abs()).sum() / (weight.sum() * target.shape[1])
