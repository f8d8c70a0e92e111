"""HDR-CNF training: the conditional flow, LDR synthesis, losses, training loop, evaluation, export.

This is the only package of the project that imports PyTorch.
"""
