"""Training losses: NLL in bits per dimension and the cycle-consistency loss.

The cycle term runs the reverse pass from a latent drawn at temperature ``tau`` and asks it to
reproduce the ground truth (L1 in the normalised log domain). NLL alone makes the flow cover the
conditional distribution; the cycle term pulls its samples at the inference temperature towards
the truth, which is what lifts clipped highlights with confidence. Clipped pixels are weighted up
because that is where the LDR carries no information and where users look.

The optional energy term compares the *total light* of each patch (Rec.709 luminance summed in
linear radiance) between that reverse pass and the truth, in log space. Per-pixel L1 in the log
domain is minimised by the conditional median, which puts a small, very bright source (the sun, a
bare bulb) at the level of its clipped halo; a 3D artist lighting with the HDRI sees that missing
energy as dim, soft shadows. The energy term's gradient on a pixel is proportional to its share of
the *predicted* light: it lifts whatever the model already makes bright, so with a flat prediction
it lifts the whole clipped region rather than the sun in it (measured: MODEL_CARD, experiments E
and E2). It is therefore off by default.
"""
from __future__ import annotations

import math

import torch

from engine.color import REC709


CYCLE_OUTPUT_BOUND = 20.0  # reverse-pass outputs are clamped before they enter a loss (NaN guard)


def bits_per_dim(log_prob: torch.Tensor, dims: int) -> torch.Tensor:
    """Mean negative log-likelihood in bits per dimension."""
    return (-log_prob / (dims * math.log(2.0))).mean()


def clipped_weight(ldr: torch.Tensor, clip_weight: float, threshold: float = 0.98) -> torch.Tensor:
    """1 everywhere, 1 + clip_weight where any channel of the LDR is (nearly) clipped."""
    clipped = (ldr.max(dim=1, keepdim=True).values >= threshold).float()
    return 1.0 + clip_weight * clipped


def cycle_loss(recon: torch.Tensor, target: torch.Tensor, ldr: torch.Tensor, clip_weight: float,
               bright_weight: float = 0.0) -> torch.Tensor:
    """Weighted L1 between the reverse pass from a tau-temperature latent (``recon``) and the target,
    both in the normalised log domain; ``recon`` is clamped first so a bad step cannot make NaNs.

    ``bright_weight`` adds weight in proportion to how far the *true* pixel is above the naive
    inverse (its log correction): a sun or lamp core is a few pixels in a crop, and without it
    their error is outvoted by the thousands of ordinary clipped pixels around them. Measured
    (MODEL_CARD, runs W1/W3): it does restore light (power error 0.883 -> 0.837 stops at weight 1),
    but where the LDR cannot tell a core from its surroundings the weighted median rises for all
    of them, so ordinary clipped pixels come out too bright (highlight error 0.520 -> 0.553). Off
    by default."""
    recon = recon.clamp(-CYCLE_OUTPUT_BOUND, CYCLE_OUTPUT_BOUND)
    weight = clipped_weight(ldr, clip_weight)
    if bright_weight > 0:
        weight = weight + bright_weight * target.detach().clamp_min(0.0).amax(dim=1, keepdim=True)
    return (weight * (recon - target).abs()).sum() / (weight.sum() * target.shape[1])


def energy_loss(pred_linear: torch.Tensor, target_linear: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean over patches of |log E_pred - log E_true|, E = summed Rec.709 luminance of the patch.

    Both inputs are linear radiance [N,3,H,W] (clip point 1.0). ``eps`` per pixel keeps black
    patches finite and makes the term scale-aware only where there is light to speak of.
    """
    luma = torch.as_tensor(REC709, dtype=pred_linear.dtype, device=pred_linear.device).view(1, 3, 1, 1)
    floor = eps * pred_linear[0, 0].numel()
    e_pred = (pred_linear.clamp_min(0.0) * luma).sum(dim=(1, 2, 3)) + floor
    e_true = (target_linear.clamp_min(0.0) * luma).sum(dim=(1, 2, 3)) + floor
    return (torch.log(e_pred) - torch.log(e_true)).abs().mean()
