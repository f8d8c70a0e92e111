"""Invertible layers of the HDR-CNF flow, one module each, and the multi-level flow built from them.

Every layer follows one contract so the generic tests can check all of them the same way:
``forward(x, cond) -> (y, logdet)`` maps data towards the latent space and
``reverse(y, cond) -> (x, logdet)`` maps back, with the reverse log-determinant the negative of
the forward one. ``logdet`` is per sample, shape [N].
"""
from .actnorm import ActNorm
from .invconv import InvConv1x1
from .injector import AffineInjector
from .coupling import ConditionalAffineCoupling
from .squeeze import Squeeze
from .split import ConditionalGaussianize, Split
from .subnet import bounded_log_scale
from .hdrcnf import FlowConfig, HDRCNFFlow

__all__ = [
    "ActNorm", "InvConv1x1", "AffineInjector", "ConditionalAffineCoupling", "Squeeze",
    "ConditionalGaussianize", "Split", "bounded_log_scale", "FlowConfig", "HDRCNFFlow",
]
