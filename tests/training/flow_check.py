"""The one shared check every flow test uses: forward then reverse is the identity and the
log-determinants cancel; and the log-determinant equals log|det J| of the autograd Jacobian."""
from __future__ import annotations

import torch


def _flat(out):
    if isinstance(out, (tuple, list)):
        return torch.cat([o.reshape(o.shape[0], -1) for o in out], dim=1)
    return out.reshape(out.shape[0], -1)


def assert_invertible(layer, x, cond, atol=1e-4):
    """reverse(forward(x)) == x and logdet_fwd + logdet_rev == 0."""
    with torch.no_grad():
        y, ld_f = layer(x, cond)
        x_back, ld_r = layer.reverse(y, cond)
    assert torch.allclose(_flat(x_back), _flat(x), atol=atol), float((_flat(x_back) - _flat(x)).abs().max())
    assert torch.allclose(ld_f + ld_r, torch.zeros_like(ld_f), atol=atol * max(1.0, float(ld_f.abs().max())))
    return y, ld_f


def assert_logdet_matches_jacobian(layer, x, cond, atol=1e-3):
    """For a single sample (N=1), logdet == log|det dF/dx| computed by autograd in float64."""
    layer = layer.double()
    x = x.double()
    cond = cond.double() if cond is not None else None

    def f(inp):
        return _flat(layer(inp.view_as(x), cond)[0])[0]

    jac = torch.autograd.functional.jacobian(f, x.reshape(-1))
    expected = torch.linalg.slogdet(jac)[1]
    got = layer(x, cond)[1][0].detach()
    assert abs(float(got - expected)) <= atol, (float(got), float(expected))


def randomize_(module, scale=0.1, seed=0):
    """Give zero-initialised subnets non-trivial weights so the tests are not identities."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module
