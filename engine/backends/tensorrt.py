"""TensorRT backend (placeholder): selection and availability only in this version.

Importing this module without the `tensorrt` package raises the same one-line InputError the
CLI shows for `--backend tensorrt`. The real implementation (engine build from the ONNX reverse
pass with optimisation profiles for the tile sizes, fp16, a timing cache, engines cached on disk
keyed by model sha256 + GPU + TensorRT version + precision) lands in a later task; until then
`IMPLEMENTED` is False so `auto` never picks it.
"""
from __future__ import annotations

from ..errors import InputError

try:
    import tensorrt as trt  # noqa: F401
except ImportError as _e:
    raise InputError(f"tensorrt backend unavailable: cannot import tensorrt ({_e}); "
                     f"use --backend onnxruntime") from None

IMPLEMENTED = False


class TensorRTBackend:
    name = "tensorrt"
    device = "cuda"

    def __init__(self, bundle, precision: str = "fp32"):
        raise InputError("tensorrt backend unavailable: not implemented in this version; use --backend onnxruntime")

    def run(self, ldr, latents):  # pragma: no cover - never constructed yet
        raise NotImplementedError
