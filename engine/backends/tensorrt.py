"""TensorRT backend: an engine built from the bundle's ONNX reverse pass, cached on disk.

Build (once per model, GPU, compute capability, TensorRT version, precision and profile; see
engine.backends.trt_cache for the key): the ONNX graph is parsed into a *strongly typed*
network (the only kind TensorRT 11 builds, supported since 10.0). fp32 turns TF32 off so the
result matches onnxruntime to ~1e-5; fp16 first rewrites the graph with explicit casts
(engine.backends.mixed_precision: convolutions in fp16, the flow's invertible state and the
decode in fp32). One optimisation profile covers every window the tile planner makes for the
chosen tile (one stride up to tile x tile, batch 1 up to max_batch), tuned for full batches of
full tiles. A persistent timing cache per GPU makes rebuilds (new model, other precision) fast.
Concurrent processes (Ray actors on one node) take a file lock so the engine is built once.

Run: device buffers for the largest profile shape are allocated once, in two slots, with
page-locked host staging buffers. `run_stream` pipelines batches over three CUDA streams:
upload of batch k+1, compute of batch k and download of batch k-1 overlap, and the host
prepares/blends other batches meanwhile. CUDA itself is reached through the driver API with
ctypes (engine.backends._cuda): no torch, pycuda or cuda-python.

Importing this module without the `tensorrt` package raises the one-line InputError the CLI
shows for `--backend tensorrt`.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import InputError

try:
    import tensorrt as trt
except ImportError as _e:
    raise InputError(f"tensorrt backend unavailable: cannot import tensorrt ({_e}); "
                     f"use --backend onnxruntime") from None

from . import _cuda
from .trt_cache import (DEFAULT_BATCH_PIXELS, DEFAULT_TILE, Profile, engine_cache_key, engine_file_name,
                        resolve_cache_dir, timing_cache_file_name)

IMPLEMENTED = True
TRT_VERSION = getattr(trt, "__version__", "unknown")


class _Logger(trt.ILogger):
    """Keeps TensorRT's errors (for our one-line messages); prints nothing unless
    HDRCNF_TRT_VERBOSE is set."""

    def __init__(self):
        trt.ILogger.__init__(self)
        self.errors: list[str] = []

    def log(self, severity, msg):  # noqa: D401 - TensorRT callback
        sev = trt.ILogger.Severity
        if severity in (sev.INTERNAL_ERROR, sev.ERROR):
            self.errors.append(str(msg))
        if os.environ.get("HDRCNF_TRT_VERBOSE"):
            sys.stderr.write(f"[tensorrt] {severity}: {msg}\n")


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class _FileLock:
    """An exclusive advisory lock on `path` (POSIX flock; a no-op where unavailable)."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _atomic_bytes(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(memoryview(data))
    os.replace(tmp, path)


class _Slot:
    """Device input/output buffers for the largest profile shape, their pinned host twins and
    the events that order the three streams around them."""

    def __init__(self, dev: _cuda.Device, sizes: dict[str, int]):
        self.dev_bufs = {name: dev.alloc(n) for name, n in sizes.items()}
        self.host_bufs = {name: dev.pinned(n) for name, n in sizes.items()}
        self.uploaded, self.computed, self.downloaded = dev.event(), dev.event(), dev.event()
        self.used = False

    def close(self) -> None:
        for b in (*self.dev_bufs.values(), *self.host_bufs.values()):
            b.close()
        for e in (self.uploaded, self.computed, self.downloaded):
            e.close()


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, bundle, precision: str = "fp32", cache_dir=None, tile: int | None = None,
                 max_batch: int | None = None, log=None, device: int = 0):
        if precision not in ("fp32", "fp16"):
            raise InputError(f"unknown precision {precision!r} (choose from fp32, fp16)")
        self.log = log or _stderr
        self.precision = precision
        try:
            self.gpu = _cuda.Device(device)
        except _cuda.CudaError as e:
            raise InputError(f"tensorrt backend unavailable: {e}; use --backend onnxruntime") from None
        self.device = f"cuda:{device}"
        self.bundle = bundle
        stride = bundle.stride
        tile = int(tile or DEFAULT_TILE)
        tile = max(stride, (tile // stride) * stride)
        if max_batch is None:
            max_batch = max(1, DEFAULT_BATCH_PIXELS // (tile * tile))
        self.profile = Profile.for_tile(tile, stride, int(max_batch))
        self.tile, self.max_batch = tile, int(max_batch)
        from .mixed_precision import RECIPE

        self.recipe = RECIPE if precision == "fp16" else "fp32-notf32"
        self.key = engine_cache_key(bundle.sha256, self.gpu.name, self.gpu.compute_capability, TRT_VERSION,
                                    precision, self.profile, self.recipe)
        self.cache_dir = resolve_cache_dir(cache_dir)
        self.engine_path = self.cache_dir / engine_file_name(bundle.sha256, precision, self.key)
        self.build_seconds: float | None = None  # None: loaded from the cache
        self._logger = _Logger()
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._load_or_build()
        self._setup()

    # ------------------------------------------------------------------------------ engine

    def _load_or_build(self):
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{self.cache_dir}: cannot create the TensorRT cache folder: {e.strerror or e}; "
                             f"pass --cache-dir") from None
        with _FileLock(self.engine_path.with_suffix(".lock")):
            if self.engine_path.is_file():
                engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
                if engine is not None:
                    return engine
                self.log(f"tensorrt: cached engine {self.engine_path.name} could not be loaded "
                         f"({'; '.join(self._logger.errors[-1:]) or 'incompatible'}); rebuilding")
                self._logger.errors.clear()
            t0 = time.perf_counter()
            self.log(f"tensorrt: building the {self.precision} engine for {self.gpu.name} "
                     f"(profile {self.profile.describe()}); once per model, GPU and TensorRT version")
            data = self._build()
            self.build_seconds = time.perf_counter() - t0
            _atomic_bytes(self.engine_path, data)
            meta = {"model": self.bundle.name, "model_sha256": self.bundle.sha256, "gpu": self.gpu.name,
                    "compute_capability": ".".join(map(str, self.gpu.compute_capability)),
                    "tensorrt": TRT_VERSION, "precision": self.precision, "recipe": self.recipe,
                    "profile": {"min": self.profile.min, "opt": self.profile.opt, "max": self.profile.max},
                    "build_seconds": round(self.build_seconds, 2), "key": self.key}
            _atomic_bytes(self.engine_path.with_suffix(".json"), (json.dumps(meta, indent=1) + "\n").encode())
            self.log(f"tensorrt: engine built in {self.build_seconds:.1f}s, cached at {self.engine_path}")
        engine = self._runtime.deserialize_cuda_engine(bytes(memoryview(data)))
        if engine is None:
            raise RuntimeError(f"TensorRT could not load the engine it just built: {self._errors()}")
        return engine

    def _errors(self) -> str:
        return " ".join("; ".join(self._logger.errors[-3:]).split()) or "no details"

    def _onnx_bytes(self) -> bytes:
        raw = Path(self.bundle.onnx_path).read_bytes()
        if self.precision == "fp32":
            return raw
        from .mixed_precision import _onnx, to_mixed_fp16

        onnx = _onnx()
        return to_mixed_fp16(onnx.load_model_from_string(raw)).SerializeToString()

    def _build(self):
        builder = trt.Builder(self._logger)
        flags = 0
        strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if strongly is not None:
            flags |= 1 << int(strongly)
        elif self.precision == "fp16":  # pragma: no cover - TensorRT < 9
            raise InputError("tensorrt --precision fp16 needs TensorRT 10 or newer; use --precision fp32")
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(self._onnx_bytes()):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT cannot parse {self.bundle.onnx_path}: {' '.join(errs.split())[:500]}")
        config = builder.create_builder_config()
        free, _total = self.gpu.mem_info()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(min(free // 2, 8 << 30)))
        tf32 = getattr(trt.BuilderFlag, "TF32", None)
        if tf32 is not None:  # TF32 rounds fp32 convolutions to 10 mantissa bits: not "fp32"
            try:
                config.clear_flag(tf32)
            except Exception:
                pass
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in self.profile.shapes(self.bundle).items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        tc_path = self.cache_dir / timing_cache_file_name(self.gpu.name, self.gpu.compute_capability, TRT_VERSION)
        tc_data = tc_path.read_bytes() if tc_path.is_file() else b""
        cache = config.create_timing_cache(tc_data)
        if not config.set_timing_cache(cache, False) and tc_data:  # stale or foreign: start afresh
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)
        data = builder.build_serialized_network(network, config)
        if data is None:
            raise RuntimeError(f"TensorRT engine build failed: {self._errors()}")
        try:
            _atomic_bytes(tc_path, config.get_timing_cache().serialize())
        except OSError:
            pass  # the timing cache only speeds up later builds
        return data

    # ------------------------------------------------------------------------------- setup

    def _setup(self) -> None:
        eng = self.engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        self.inputs = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        expected = {self.bundle.input_name, *(s.name for s in self.bundle.latents)}
        if set(self.inputs) != expected or self.bundle.output_name not in outputs:
            raise InputError(f"{self.bundle.onnx_path}: engine inputs {sorted(self.inputs)} / outputs {outputs} do "
                             f"not match model.json; re-export the bundle")
        self.output = self.bundle.output_name
        for n in (*self.inputs, self.output):
            if eng.get_tensor_dtype(n) != trt.DataType.FLOAT:
                raise RuntimeError(f"engine tensor {n} is {eng.get_tensor_dtype(n)}, expected float32")
        self.context = eng.create_execution_context()
        if self.context is None:
            raise RuntimeError(f"TensorRT could not create an execution context: {self._errors()}")
        n, h, w = self.profile.max
        sizes = {self.bundle.input_name: n * 3 * h * w * 4, self.output: n * 3 * h * w * 4}
        for spec in self.bundle.latents:
            sizes[spec.name] = int(np.prod(spec.shape(n, h, w))) * 4
        self.slots = [_Slot(self.gpu, sizes) for _ in range(2)]
        self.s_in, self.s_run, self.s_out = self.gpu.stream(), self.gpu.stream(), self.gpu.stream()
        self._next = 0

    def batch_size(self, height: int, width: int) -> int:
        """Windows per run: up to the profile's max batch (the engine was tuned for full ones)."""
        return self.max_batch

    # --------------------------------------------------------------------------------- run

    def run(self, ldr: np.ndarray, latents: dict[str, np.ndarray]) -> np.ndarray:
        for _, out in self.run_stream([(None, ldr, latents)]):
            return np.array(out)  # the pinned buffer is reused by the next run
        raise AssertionError("unreachable")

    def run_stream(self, batches):
        """Yield (meta, hdr) for each (meta, ldr, latents), in order, with up to two batches in
        flight. Each yielded array is a view of page-locked memory that stays valid until the
        next item is requested (copy it to keep it)."""
        self.gpu.make_current()
        inflight: deque = deque()
        try:
            for meta, ldr, latents in batches:
                if len(inflight) == 2:
                    yield self._collect(inflight.popleft())
                inflight.append((meta, *self._submit(ldr, latents)))
            while inflight:
                yield self._collect(inflight.popleft())
        finally:
            if inflight:  # a consumer stopped early or the producer raised: drain the GPU
                for _, slot, _ in inflight:
                    slot.downloaded.synchronize()

    def _submit(self, ldr: np.ndarray, latents: dict[str, np.ndarray]):
        ldr = np.asarray(ldr, dtype=np.float32)
        n, c, h, w = ldr.shape
        if c != 3 or not self.profile.covers(n, h, w) or h % self.bundle.stride or w % self.bundle.stride:
            raise ValueError(f"TensorRT engine profile {self.profile.describe()} does not cover a batch of "
                             f"{n} x {h}x{w}; create the backend with tile >= {max(h, w)} and max_batch >= {n}")
        slot = self.slots[self._next]
        self._next ^= 1
        if slot.used:  # the slot's previous batch was collected (so downloaded); be explicit anyway
            slot.downloaded.synchronize()
        slot.used = True
        feeds = {self.bundle.input_name: ldr}
        for spec in self.bundle.latents:
            z = np.asarray(latents[spec.name], dtype=np.float32)
            if z.shape != spec.shape(n, h, w):
                raise ValueError(f"latent {spec.name} has shape {z.shape}, expected {spec.shape(n, h, w)}")
            feeds[spec.name] = z
        # upload stream: stage in pinned memory, copy once the previous compute on this slot is done
        self.s_in.wait(slot.computed)
        for name, arr in feeds.items():
            np.copyto(slot.host_bufs[name].view(arr.shape), arr)
            slot.dev_bufs[name].upload(slot.host_bufs[name], arr.nbytes, self.s_in)
            if not self.context.set_input_shape(name, arr.shape):
                raise RuntimeError(f"TensorRT rejected input shape {arr.shape} for {name}: {self._errors()}")
            self.context.set_tensor_address(name, slot.dev_bufs[name].ptr)
        slot.uploaded.record(self.s_in)
        # compute stream: after the upload and after the last download from this slot's output
        self.s_run.wait(slot.uploaded)
        self.s_run.wait(slot.downloaded)
        self.context.set_tensor_address(self.output, slot.dev_bufs[self.output].ptr)
        out_shape = tuple(self.context.get_tensor_shape(self.output))
        if out_shape != (n, 3, h, w):
            raise RuntimeError(f"TensorRT output shape {out_shape} != {(n, 3, h, w)}")
        if not self.context.execute_async_v3(self.s_run.ptr):
            raise RuntimeError(f"TensorRT execution failed: {self._errors()}")
        slot.computed.record(self.s_run)
        # download stream
        self.s_out.wait(slot.computed)
        nbytes = n * 3 * h * w * 4
        slot.dev_bufs[self.output].download(slot.host_bufs[self.output], nbytes, self.s_out)
        slot.downloaded.record(self.s_out)
        return slot, (n, 3, h, w)

    def _collect(self, item):
        meta, slot, shape = item
        slot.downloaded.synchronize()
        return meta, slot.host_bufs[self.output].view(shape)

    def close(self) -> None:
        """Free GPU memory now (otherwise at garbage collection)."""
        for s in getattr(self, "slots", []):
            s.close()
        self.slots = []
        for st in ("s_in", "s_run", "s_out"):
            if getattr(self, st, None) is not None:
                getattr(self, st).close()
                setattr(self, st, None)
        self.context = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
