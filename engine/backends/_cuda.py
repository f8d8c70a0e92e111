"""The few CUDA driver-API calls the TensorRT backend needs, through ctypes on libcuda.

Why not cuda-python, pycuda or PyTorch: the engine never depends on PyTorch, pycuda needs a compiler,
and cuda-python's major version must match the driver's CUDA major version (cuda-python 13
refuses a CUDA 12 driver), so pinning it right for every render node is a support burden.
The driver API below has been ABI-stable since CUDA 4 (the `_v2` entry points), ships with
every NVIDIA driver as libcuda.so.1 / nvcuda.dll, and is exactly what `engine.backends`
already uses to list GPUs. TensorRT's own runtime (statically linked cudart) uses the device's
*primary* context, so retaining that context and making it current in every calling thread
keeps our buffers and TensorRT's in the same address space.

Everything here raises `CudaError` with the driver's error name; nothing is imported from
TensorRT, so this module can be imported (not used) on a machine without a GPU.
"""
from __future__ import annotations

import ctypes
import sys

import numpy as np

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_STREAM_NON_BLOCKING = 0x1
CU_EVENT_DISABLE_TIMING = 0x2

_ptr = ctypes.c_void_p
_dptr = ctypes.c_uint64  # CUdeviceptr
_size = ctypes.c_size_t


class CudaError(RuntimeError):
    pass


def _load():
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    last = None
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            last = e
    raise CudaError(f"no NVIDIA driver (libcuda) found: {last}")


_SIGNATURES = {
    "cuInit": [ctypes.c_uint],
    "cuDeviceGet": [ctypes.POINTER(ctypes.c_int), ctypes.c_int],
    "cuDeviceGetCount": [ctypes.POINTER(ctypes.c_int)],
    "cuDeviceGetName": [ctypes.c_char_p, ctypes.c_int, ctypes.c_int],
    "cuDeviceGetAttribute": [ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int],
    "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_ptr), ctypes.c_int],
    "cuDevicePrimaryCtxRelease_v2": [ctypes.c_int],
    "cuCtxSetCurrent": [_ptr],
    "cuStreamCreate": [ctypes.POINTER(_ptr), ctypes.c_uint],
    "cuStreamDestroy_v2": [_ptr],
    "cuStreamSynchronize": [_ptr],
    "cuStreamWaitEvent": [_ptr, _ptr, ctypes.c_uint],
    "cuEventCreate": [ctypes.POINTER(_ptr), ctypes.c_uint],
    "cuEventDestroy_v2": [_ptr],
    "cuEventRecord": [_ptr, _ptr],
    "cuEventSynchronize": [_ptr],
    "cuMemAlloc_v2": [ctypes.POINTER(_dptr), _size],
    "cuMemFree_v2": [_dptr],
    "cuMemHostAlloc": [ctypes.POINTER(_ptr), _size, ctypes.c_uint],
    "cuMemFreeHost": [_ptr],
    "cuMemcpyHtoDAsync_v2": [_dptr, _ptr, _size, _ptr],
    "cuMemcpyDtoHAsync_v2": [_ptr, _dptr, _size, _ptr],
    "cuMemGetInfo_v2": [ctypes.POINTER(_size), ctypes.POINTER(_size)],
    "cuGetErrorName": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
}


class Driver:
    """libcuda with argument types declared, and `call(name, *args)` that checks the result."""

    def __init__(self):
        self.lib = _load()
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(self.lib, name, None)
            if fn is None:
                continue
            fn.argtypes = argtypes
            fn.restype = ctypes.c_int

    def call(self, name: str, *args) -> None:
        fn = getattr(self.lib, name)
        rc = fn(*args)
        if rc != 0:
            msg = ctypes.c_char_p()
            try:
                self.lib.cuGetErrorName(rc, ctypes.byref(msg))
                text = (msg.value or b"").decode()
            except Exception:
                text = ""
            raise CudaError(f"{name} failed: {text or 'CUDA error'} ({rc})")


class Device:
    """One GPU: its primary context, name, compute capability and helpers for memory/streams."""

    def __init__(self, ordinal: int = 0):
        self.drv = Driver()
        self.drv.call("cuInit", 0)
        dev = ctypes.c_int()
        self.drv.call("cuDeviceGet", ctypes.byref(dev), int(ordinal))
        self.handle = dev.value
        self.ordinal = int(ordinal)
        buf = ctypes.create_string_buffer(256)
        self.drv.call("cuDeviceGetName", buf, 256, self.handle)
        self.name = buf.value.decode(errors="replace")
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.drv.call("cuDeviceGetAttribute", ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                      self.handle)
        self.drv.call("cuDeviceGetAttribute", ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                      self.handle)
        self.compute_capability = (major.value, minor.value)
        ctx = _ptr()
        self.drv.call("cuDevicePrimaryCtxRetain", ctypes.byref(ctx), self.handle)
        self.ctx = ctx
        self.make_current()

    def make_current(self) -> None:
        """The driver's current context is per thread: call before using the GPU in a thread."""
        self.drv.call("cuCtxSetCurrent", self.ctx)

    def mem_info(self) -> tuple[int, int]:
        free, total = _size(), _size()
        self.drv.call("cuMemGetInfo_v2", ctypes.byref(free), ctypes.byref(total))
        return free.value, total.value

    def stream(self) -> "Stream":
        return Stream(self)

    def event(self) -> "Event":
        return Event(self)

    def alloc(self, nbytes: int) -> "DeviceBuffer":
        return DeviceBuffer(self, nbytes)

    def pinned(self, nbytes: int) -> "PinnedBuffer":
        return PinnedBuffer(self, nbytes)


class Stream:
    def __init__(self, dev: Device):
        self.dev = dev
        h = _ptr()
        dev.drv.call("cuStreamCreate", ctypes.byref(h), CU_STREAM_NON_BLOCKING)
        self.handle = h

    @property
    def ptr(self) -> int:
        """The integer handle TensorRT's execute_async_v3 takes."""
        return int(self.handle.value or 0)

    def synchronize(self) -> None:
        self.dev.drv.call("cuStreamSynchronize", self.handle)

    def wait(self, event: "Event") -> None:
        self.dev.drv.call("cuStreamWaitEvent", self.handle, event.handle, 0)

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.dev.drv.call("cuStreamDestroy_v2", self.handle)
            finally:
                self.handle = None


class Event:
    def __init__(self, dev: Device):
        self.dev = dev
        h = _ptr()
        dev.drv.call("cuEventCreate", ctypes.byref(h), CU_EVENT_DISABLE_TIMING)
        self.handle = h

    def record(self, stream: Stream) -> None:
        self.dev.drv.call("cuEventRecord", self.handle, stream.handle)

    def synchronize(self) -> None:
        self.dev.drv.call("cuEventSynchronize", self.handle)

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.dev.drv.call("cuEventDestroy_v2", self.handle)
            finally:
                self.handle = None


class DeviceBuffer:
    """`nbytes` of device memory (256-byte aligned by the driver), freed by close()."""

    def __init__(self, dev: Device, nbytes: int):
        self.dev, self.nbytes = dev, int(nbytes)
        p = _dptr()
        dev.drv.call("cuMemAlloc_v2", ctypes.byref(p), _size(max(self.nbytes, 1)))
        self.ptr = int(p.value)

    def upload(self, host: "PinnedBuffer", nbytes: int, stream: Stream) -> None:
        self.dev.drv.call("cuMemcpyHtoDAsync_v2", _dptr(self.ptr), _ptr(host.ptr), _size(nbytes), stream.handle)

    def download(self, host: "PinnedBuffer", nbytes: int, stream: Stream) -> None:
        self.dev.drv.call("cuMemcpyDtoHAsync_v2", _ptr(host.ptr), _dptr(self.ptr), _size(nbytes), stream.handle)

    def close(self) -> None:
        if self.ptr:
            try:
                self.dev.drv.call("cuMemFree_v2", _dptr(self.ptr))
            finally:
                self.ptr = 0


class PinnedBuffer:
    """Page-locked host memory (what makes async copies truly async), viewable as numpy."""

    def __init__(self, dev: Device, nbytes: int):
        self.dev, self.nbytes = dev, int(nbytes)
        p = _ptr()
        dev.drv.call("cuMemHostAlloc", ctypes.byref(p), _size(max(self.nbytes, 1)), 0)
        self.ptr = int(p.value)

    def view(self, shape, dtype=np.float32) -> np.ndarray:
        """A numpy array over the first prod(shape) elements (valid until close())."""
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        if n > self.nbytes:
            raise ValueError(f"view of {n} bytes exceeds the {self.nbytes}-byte buffer")
        raw = (ctypes.c_char * max(n, 1)).from_address(self.ptr)
        return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def close(self) -> None:
        if self.ptr:
            try:
                self.dev.drv.call("cuMemFreeHost", _ptr(self.ptr))
            finally:
                self.ptr = 0
