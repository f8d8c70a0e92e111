"""Every invertible layer and the whole flow: identity round trip, cancelling log-dets, and
log-dets equal to the autograd Jacobian."""
import pytest
import torch

from training.flow import (ActNorm, AffineInjector, ConditionalAffineCoupling, ConditionalGaussianize,
                           FlowConfig, HDRCNFFlow, InvConv1x1, Split, Squeeze)
from training.model import HDRCNF, ModelConfig
from training.encoder import EncoderConfig
from training.target import TargetTransform

from .flow_check import assert_invertible, assert_logdet_matches_jacobian, randomize_

C, CC = 4, 3


def _layers():
    return {
        "actnorm": lambda: ActNorm(C),
        "invconv": lambda: InvConv1x1(C),
        "invconv_lu": lambda: InvConv1x1(C, lu=True),
        "injector": lambda: AffineInjector(C, CC, 8),
        "coupling": lambda: ConditionalAffineCoupling(C, CC, 8),
        "gaussianize": lambda: ConditionalGaussianize(C, CC, 8),
        "squeeze": lambda: Squeeze(),
    }


@pytest.mark.parametrize("name", list(_layers()))
def test_layer_round_trip_and_jacobian(name):
    torch.manual_seed(0)
    layer = randomize_(_layers()[name]())
    x = torch.randn(2, C, 4, 4)
    cond = torch.randn(2, CC, 4, 4)
    layer.train()
    layer(x, cond)  # actnorm data-dependent init
    layer.eval()
    assert_invertible(layer, x, cond)
    assert_logdet_matches_jacobian(layer, x[:1], cond[:1])


def test_split_round_trip_and_jacobian():
    torch.manual_seed(0)
    layer = randomize_(Split(C, CC, 8))
    x, cond = torch.randn(2, C, 4, 4), torch.randn(2, CC, 4, 4)
    assert_invertible(layer, x, cond)
    assert_logdet_matches_jacobian(layer, x[:1], cond[:1])


def test_actnorm_data_dependent_init():
    x = 3.0 + 2.0 * torch.randn(8, C, 8, 8)
    layer = ActNorm(C).train()
    y, _ = layer(x)
    assert bool(layer.initialized)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(C), atol=1e-4)
    assert torch.allclose(y.std(dim=(0, 2, 3)), torch.ones(C), atol=1e-3)


def test_zero_init_steps_are_identity():
    x, cond = torch.randn(2, C, 4, 4), torch.randn(2, CC, 4, 4)
    for layer in (AffineInjector(C, CC, 8), ConditionalAffineCoupling(C, CC, 8)):
        y, ld = layer(x, cond)
        assert torch.equal(y, x) and torch.equal(ld, torch.zeros(2))


def test_invconv_frozen_inverse_matches():
    layer = InvConv1x1(6)
    y, _ = layer(torch.randn(1, 6, 3, 3))
    a, lda = layer.reverse(y)
    layer.freeze()
    b, ldb = layer.reverse(y)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(lda, ldb, atol=1e-5)


def _tiny_flow():
    cfg = FlowConfig(levels=2, steps=2, hidden=8)
    return randomize_(HDRCNFFlow(cfg, cond_channels=CC), scale=0.05)


def test_whole_flow_round_trip():
    torch.manual_seed(0)
    flow = _tiny_flow()
    x = torch.randn(2, 3, 8, 8)
    conds = [torch.randn(2, CC, 4, 4), torch.randn(2, CC, 2, 2)]
    flow.train()
    flow(x, conds)
    flow.eval()
    with torch.no_grad():
        latents, ld = flow(x, conds)
        back, ld_r = flow.reverse(latents, conds)
    assert [tuple(z.shape) for z in latents] == [(2, 6, 4, 4), (2, 24, 2, 2)]
    assert torch.allclose(back, x, atol=1e-4)
    assert torch.allclose(ld + ld_r, torch.zeros(2), atol=1e-3)


def test_whole_flow_logdet_matches_jacobian():
    torch.manual_seed(1)
    flow = _tiny_flow().double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    conds = [torch.randn(1, CC, 2, 2, dtype=torch.float64), torch.randn(1, CC, 1, 1, dtype=torch.float64)]
    flow.train()
    flow(torch.randn(4, 3, 4, 4, dtype=torch.float64), [c.expand(4, -1, -1, -1) for c in conds])
    flow.eval()

    def f(inp):
        latents, _ = flow(inp.view_as(x), conds)
        return torch.cat([z.reshape(-1) for z in latents])

    jac = torch.autograd.functional.jacobian(f, x.reshape(-1))
    expected = torch.linalg.slogdet(jac)[1]
    assert abs(float(flow(x, conds)[1][0].detach() - expected)) < 1e-3


def test_full_model_reverse_inverts_encode():
    torch.manual_seed(0)
    # keep_measured off: the rule replaces measured channels beside a clipped one on purpose
    # (tests/training/test_target.py), and random LDR values do reach the clip code
    cfg = ModelConfig(FlowConfig(levels=3, steps=1, hidden=8), EncoderConfig(nf=8, nb=1, gc=4, cond_channels=8),
                      TargetTransform(keep_measured=False))
    model = randomize_(HDRCNF(cfg), scale=0.02)
    ldr = torch.rand(2, 3, 16, 16)
    hdr = torch.rand(2, 3, 16, 16) * 4
    target = model.to_target(hdr, ldr)
    model.train()
    model.encode(ldr, target)
    model.eval()
    with torch.no_grad():
        latents, _ = model.encode(ldr, target)
        out = model(ldr, *latents)
    assert torch.allclose(out, hdr, rtol=1e-3, atol=1e-4)
