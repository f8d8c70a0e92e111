"""Inference backends: run the bundle's ONNX reverse pass on NCHW float32 batches.

Every backend offers the same small protocol (`name`, `device`, `run(ldr, latents)`) so the
converter, the CLI and the Blender add-on never care which one runs. Two optional methods let
a backend go faster without changing that protocol: `batch_size(h, w)` (how many windows of
that size one run takes; 1 when absent) and `run_stream(batches)` (a pipelined generator, see
`run_batches`). `auto` prefers TensorRT when it is importable and a CUDA GPU is present, and
otherwise onnxruntime (which itself uses its CUDA execution provider when the installed build
has one).
"""
from __future__ import annotations

import ctypes
import importlib.util
import sys
from typing import Iterable, Iterator, Protocol

import numpy as np

from ..errors import InputError

BACKENDS = ("auto", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16")


class Backend(Protocol):
    name: str
    device: str
    photo: "Backend | None"   # set by create_backend: the photo flow's backend, for a bundle with one

    def run(self, ldr: np.ndarray, latents: dict[str, np.ndarray]) -> np.ndarray:
        """ldr float32 [N, 3 (+ the bundle's geometry planes), H, W] + {latent name: float32
        [N, C, H/s, W/s]} -> hdr [N, 3, H, W]."""
        ...


def run_batches(backend, batches: Iterable[tuple]) -> Iterator[tuple]:
    """Run `(meta, ldr, latents)` items through `backend` and yield `(meta, output)` in order.

    Backends with a `run_stream` method get the whole iterable and may overlap work (TensorRT
    copies the next batch to the GPU and lets the host prepare the one after while the current
    one computes); others are simply called once per item. Exceptions raised while producing
    an item (e.g. Cancelled) propagate to the caller either way."""
    stream = getattr(backend, "run_stream", None)
    if stream is not None:
        yield from stream(batches)
        return
    for meta, ldr, latents in batches:
        out = backend.run(ldr, latents)
        del ldr, latents  # dropped before the next batch is produced
        yield meta, out


def cuda_devices() -> tuple[list[str], str]:
    """Names of the CUDA GPUs visible through the driver API, and a reason when there are none.

    Uses libcuda directly through ctypes: no torch, no pycuda, and it cannot fail harder than
    returning an empty list."""
    libnames = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so", "libcuda.dylib")
    lib = None
    for libname in libnames:
        try:
            lib = ctypes.CDLL(libname)
            break
        except OSError:
            continue
    if lib is None:
        return [], "no NVIDIA driver (libcuda) found"
    try:
        if lib.cuInit(0) != 0:
            return [], "the NVIDIA driver found no usable GPU (cuInit failed)"
        count = ctypes.c_int(0)
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
            return [], "no CUDA GPU present"
        names = []
        for i in range(count.value):
            dev = ctypes.c_int(0)
            buf = ctypes.create_string_buffer(256)
            if lib.cuDeviceGet(ctypes.byref(dev), i) == 0 and lib.cuDeviceGetName(buf, 256, dev) == 0:
                names.append(buf.value.decode(errors="replace"))
            else:
                names.append(f"cuda:{i}")
        return names, ""
    except Exception as e:  # a broken driver install must not crash `hdrcnf info`
        return [], f"CUDA driver error: {e}"


def tensorrt_status() -> tuple[bool, str, str]:
    """(available, device, reason) for the TensorRT backend."""
    if importlib.util.find_spec("tensorrt") is None:
        return False, "-", "the 'tensorrt' package is not installed (pip install 'hdrcnf[gpu]')"
    gpus, why = cuda_devices()
    if not gpus:
        return False, "-", why
    from . import tensorrt as trt_backend  # noqa: PLC0415 - only when the package exists

    if not trt_backend.IMPLEMENTED:
        return False, f"cuda:0 {gpus[0]}", "the TensorRT backend is not implemented in this version"
    return True, f"cuda:0 {gpus[0]} (TensorRT {trt_backend.trt.__version__})", ""


def available_backends() -> list[tuple[str, str, bool, str]]:
    """[(name, device, available, reason)] for every concrete backend, for `hdrcnf info`."""
    from .onnxruntime import ort_status

    ok, device, why = ort_status()
    trt_ok, trt_device, trt_why = tensorrt_status()
    return [("onnxruntime", device, ok, why), ("tensorrt", trt_device, trt_ok, trt_why)]


def create_backend(bundle, name: str = "auto", threads: int | None = None, precision: str = "fp32",
                   cache_dir=None, tile: int | None = None, max_batch: int | None = None,
                   log=None) -> Backend:
    """Build a backend for `bundle`; for a bundle with a photo flow, the backend's `photo`
    attribute is a second backend of the same kind for that flow (engine.convert picks it for
    photos). Unknown names, an unavailable TensorRT, or a precision the
    chosen backend cannot honour raise InputError with one line telling the user what to do.

    TensorRT only: `cache_dir` holds the engine and timing caches (default
    `~/.cache/hdrcnf/trt`, or $HDRCNF_CACHE/trt), `tile` is the largest window side the
    engine's optimisation profile must cover (default 1024, the converter's default tile),
    `max_batch` the largest batch of windows (default: as many as fit 4 megapixels), `log` a
    callable receiving progress lines such as the one-off build time (default: stderr)."""
    backend = _create(bundle, name, threads, precision, cache_dir, tile, max_batch, log)
    backend.photo = None
    if getattr(bundle, "photo", None) is not None:
        backend.photo = _create(bundle.photo, name, threads, precision, cache_dir, tile, max_batch, log)
    return backend


def _create(bundle, name, threads, precision, cache_dir, tile, max_batch, log) -> Backend:
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    if name == "auto":
        trt_ok, _, trt_why = tensorrt_status()
        if trt_ok:
            name = "tensorrt"
        elif precision == "fp16":
            raise InputError(f"--precision fp16 needs the tensorrt backend, which is unavailable: {trt_why}; "
                             f"use --precision fp32")
        else:
            name = "onnxruntime"
    if name == "tensorrt":
        trt_ok, _, trt_why = tensorrt_status()
        if not trt_ok:
            raise InputError(f"tensorrt backend unavailable: {trt_why}; use --backend onnxruntime")
        from .tensorrt import TensorRTBackend

        return TensorRTBackend(bundle, precision=precision, cache_dir=cache_dir, tile=tile,
                               max_batch=max_batch, log=log)
    if precision != "fp32":
        raise InputError("the onnxruntime backend runs only --precision fp32; use --backend tensorrt for fp16")
    from .onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(bundle, threads=threads)
