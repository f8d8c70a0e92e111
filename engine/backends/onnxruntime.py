"""onnxruntime backend: the default everywhere (CPU; CUDA execution provider when present).

Session settings chosen for one big graph run per tile: full graph optimisation, intra-op
threads = physical cores (hyper-threads only contend for the same FPUs), one inter-op thread
and sequential execution (the reverse flow is a chain, there is little to run in parallel).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import BundleError

try:
    import onnxruntime as ort
except ImportError as _e:  # pragma: no cover - onnxruntime is a hard dependency
    ort = None
    _IMPORT_ERROR = str(_e)
else:
    _IMPORT_ERROR = ""


def physical_cores() -> int:
    """Physical cores available to this process (psutil when installed, else logical CPUs)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        logical = os.cpu_count() or 1
    try:
        import psutil

        phys = psutil.cpu_count(logical=False)
    except Exception:
        phys = _linux_physical_cores()
    return max(1, min(phys, logical) if phys else logical)


def _linux_physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; None where that file is absent."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    cores = set()
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


def ort_status() -> tuple[bool, str, str]:
    """(available, device, reason) for this backend."""
    if ort is None:
        return False, "-", f"onnxruntime cannot be imported: {_IMPORT_ERROR}"
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        device = "cuda (CUDAExecutionProvider)"
    else:
        device = f"cpu ({physical_cores()} cores)"
    return True, device, ""


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, bundle, threads: int | None = None):
        ok, device, why = ort_status()
        if not ok:
            raise BundleError(why)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.threads = int(threads) if threads else physical_cores()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # warnings from the optimiser are not the user's business
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(bundle.onnx_path), sess_options=opts, providers=providers)
        except Exception as e:
            raise BundleError(f"{bundle.onnx_path}: onnxruntime cannot load the model: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.input_name = bundle.input_name
        self.output_name = bundle.output_name
        inputs = {i.name for i in self.session.get_inputs()}
        expected = {self.input_name, *(s.name for s in bundle.latents)}
        if inputs != expected:
            raise BundleError(f"{bundle.onnx_path}: model inputs {sorted(inputs)} do not match model.json "
                              f"(expects {sorted(expected)}); re-export the bundle")
        outputs = {o.name for o in self.session.get_outputs()}
        if self.output_name not in outputs:
            raise BundleError(f"{bundle.onnx_path}: model has no output {self.output_name!r} "
                              f"(has {sorted(outputs)}); re-export the bundle")

    def run(self, ldr: np.ndarray, latents: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {self.input_name: np.ascontiguousarray(ldr, dtype=np.float32)}
        for k, v in latents.items():
            feeds[k] = np.ascontiguousarray(v, dtype=np.float32)
        return self.session.run([self.output_name], feeds)[0]
