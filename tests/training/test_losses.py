"""Loss functions on hand-made tensors: the numbers they must give and where their gradients go."""
import math

import pytest
import torch

from training.losses import clipped_weight, cycle_loss, energy_loss


def _patch(value: float, n: int = 2, size: int = 8) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def test_energy_loss_is_zero_for_equal_light_and_counts_stops():
    hdr = torch.rand(2, 3, 8, 8) * 10
    assert float(energy_loss(hdr, hdr)) == 0.0
    # Twice the light everywhere is one stop = ln 2 nats, whichever way round.
    assert math.isclose(float(energy_loss(2 * hdr, hdr, eps=0.0)), math.log(2), rel_tol=1e-5)
    assert math.isclose(float(energy_loss(hdr, 2 * hdr, eps=0.0)), math.log(2), rel_tol=1e-5)


def test_energy_loss_is_finite_on_black_patches():
    loss = energy_loss(_patch(0.0), _patch(0.0))
    assert torch.isfinite(loss) and float(loss) == 0.0


def test_energy_loss_lifts_the_brightest_pixel_most():
    # A patch whose truth holds a small, very bright source that the prediction left at the clip
    # level: the gradient (on log radiance) must point up and be largest on the brightest pixel.
    truth = _patch(0.5, n=1)
    truth[:, :, 4, 4] = 1000.0
    log_pred = torch.log(truth.clone().clamp(max=1.0)).requires_grad_(True)
    energy_loss(torch.exp(log_pred), truth).backward()
    g = -log_pred.grad[0].sum(dim=0)
    assert (g > 0).all()
    assert int(g.argmax()) == 4 * 8 + 4


def test_cycle_loss_weights_clipped_pixels():
    ldr = torch.zeros(1, 3, 4, 4)
    ldr[..., :2] = 1.0  # left half clipped
    target = torch.zeros(1, 3, 4, 4)
    err_left, err_right = target.clone(), target.clone()
    err_left[..., :2] = 1.0
    err_right[..., 2:] = 1.0
    w = clipped_weight(ldr, 4.0)
    assert float(w.max()) == 5.0 and float(w.min()) == 1.0
    assert float(cycle_loss(err_left, target, ldr, 4.0)) > float(cycle_loss(err_right, target, ldr, 4.0))


def test_cycle_loss_bright_weight_favours_pixels_far_above_the_naive_inverse():
    """Two clipped pixels, the same error on each: with bright_weight the one whose true value is
    10 nats above the naive inverse (a sun core) gets 1 + 4 + 10 times the gradient of an L1 pixel,
    the one at 0.5 nats (its halo) 1 + 4 + 0.5 times; without it both get the same."""
    ldr = torch.ones(1, 3, 1, 2)
    target = torch.tensor([10.0, 0.5]).view(1, 1, 1, 2).expand(1, 3, 1, 2).contiguous()
    for bright, ratio in ((0.0, 1.0), (1.0, 15.0 / 5.5)):
        recon = (target - 1.0).requires_grad_()
        cycle_loss(recon, target, ldr, 4.0, bright).backward()
        g = recon.grad.abs()[0, 0, 0]
        assert float(g[0] / g[1]) == pytest.approx(ratio)
