"""onnxruntime backend: the default everywhere (CPU; CUDA execution provider when present).

Session settings chosen for one big graph run per tile (measured on the 2-core CI machine,
benchmarks/README.md):
- full graph optimisation (constant folding, conv fusions, the NCHWc layout): ORT_ENABLE_ALL
  runs the default model 1.4x faster than ORT_ENABLE_EXTENDED;
- intra-op threads = physical cores (hyper-threads only contend for the same FPUs), one
  inter-op thread and sequential execution (the reverse flow is a chain);
- no spinning: idle worker threads block instead of busy-waiting between operators. A tile is
  a few hundred large operators, so spinning saves nothing measurable on an idle machine, but
  on a busy one (Blender's UI, a render node running other jobs, a training run) spinning
  threads steal the cores the convolutions need: 1.19 s vs 1.38 s per 1024x512 run measured
  side by side on a loaded 2-core machine;
- arena on, memory pattern off: the tile shapes of one image vary (edge tiles are smaller), a
  per-shape pattern planner only adds peak memory (608 -> 413 MB for a 1024x1024 tile,
  2169 -> 1393 MB for 2048x2048) and was not faster.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import BundleError

# onnxruntime's telemetry writes an identifier under $HOME when it is imported, and where it cannot
# (a read-only home on a farm node, a sandboxed Blender) prints a coloured warning no option can
# silence afterwards. A conversion tool has no use for it; a user who wants it sets the variable.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

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


#: Largest batch (pixels over all tiles of one run) the CPU path assembles. Batching small
#: tiles amortises per-run overhead; past about one megapixel a run is compute-bound and a
#: bigger batch only raises peak memory (~0.4 KB per pixel in flight).
CPU_BATCH_PIXELS = 1 << 20
GPU_BATCH_PIXELS = 8 << 20


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, bundle, threads: int | None = None, spinning: bool = False,
                 batch_pixels: int | None = None):
        ok, device, why = ort_status()
        if not ok:
            raise BundleError(why)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.threads = int(threads) if threads else physical_cores()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = True
        opts.enable_mem_pattern = False
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.log_severity_level = 3  # warnings from the optimiser are not the user's business
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(bundle.onnx_path), sess_options=opts, providers=providers)
        except Exception as e:
            raise BundleError(f"{bundle.onnx_path}: onnxruntime cannot load the model: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        if batch_pixels is None:
            batch_pixels = GPU_BATCH_PIXELS if self.device == "cuda" else CPU_BATCH_PIXELS
        self.batch_pixels = int(batch_pixels)
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

    def batch_size(self, height: int, width: int) -> int:
        """How many (height, width) windows to run at once: as many as fit the pixel budget,
        and on the CPU at most one per thread (measured: 8 windows of 256x256 in one run take
        the same time as 8 runs, so a bigger CPU batch only costs memory and progress updates)."""
        n = max(1, self.batch_pixels // max(1, height * width))
        return n if self.device == "cuda" else min(n, self.threads)

    def run(self, ldr: np.ndarray, latents: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {self.input_name: np.ascontiguousarray(ldr, dtype=np.float32)}
        for k, v in latents.items():
            feeds[k] = np.ascontiguousarray(v, dtype=np.float32)
        return self.session.run([self.output_name], feeds)[0]
