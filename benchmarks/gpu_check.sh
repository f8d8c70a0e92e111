#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU, one command that installs the `gpu` extra, runs the
# TensorRT tests and benchmarks/bench_backends.py, and finishes within 8 minutes:
#
#     bash benchmarks/gpu_check.sh            (or: make gpu-check)
#
# Everything it prints is also saved to benchmarks/results/gpu_check-<date>-<gpu>.txt; copy the
# tables into README "Performance" with the GPU model and the date. Engines and the timing cache
# persist in $HDRCNF_CACHE_DIR (default ./.cache), so a second run skips the engine builds.
# Without network access the install step fails quickly and whatever is installed is used; on an
# offline machine point pip at a wheelhouse made elsewhere with `pip download` (TensorRT's libraries
# come from pypi.nvidia.com): PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUDGET=${GPU_CHECK_BUDGET:-470}          # seconds, leaves margin under 8 minutes
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  for cand in python3.11 python3; do command -v $cand >/dev/null && { $cand -m venv .venv && break; }; done
  PY=.venv/bin/python
fi
mkdir -p benchmarks/results
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' /' '__')
LOG="benchmarks/results/gpu_check-$(date +%Y-%m-%d)-${GPU:-nogpu}.txt"
exec > >(tee "$LOG") 2>&1
echo "== gpu_check $(date -Is) on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>/dev/null || echo "nvidia-smi: not found"

echo "== install .[gpu,train,dev] (skipped when everything imports)"
if ! "$PY" -c "import tensorrt, onnx, onnxruntime, torch, pytest, pytest_timeout, engine" 2>/dev/null; then
  timeout $(( $(left) > 300 ? 240 : $(left) / 2 )) "$PY" -m pip install -q --disable-pip-version-check --timeout 20 --retries 1 \
    -c .ci/constraints.txt -e '.[gpu,train,dev]' || echo "install failed or timed out: continuing with what is installed"
fi
"$PY" - <<'PY'
import importlib
for m in ("tensorrt", "onnxruntime", "torch", "onnx"):
    try:
        mod = importlib.import_module(m)
        extra = f", cuda {mod.cuda.is_available()}" if m == "torch" else ""
        print(f"{m} {getattr(mod, '__version__', '?')}{extra}")
    except Exception as e:
        print(f"{m}: not importable ({e})")
from engine.backends import available_backends
for row in available_backends():
    print("backend", row)
PY
export HDRCNF_CACHE_DIR=${HDRCNF_CACHE_DIR:-$PWD/.cache}
CACHE="$HDRCNF_CACHE_DIR/trt"

echo "== TensorRT tests (parity fp32/fp16, engine cache, pipeline) [$(left)s left]"
timeout $(( $(left) > 200 ? 200 : $(left) )) "$PY" -m pytest -q -rs -p no:cacheprovider \
  tests/perf/test_tensorrt_gpu.py tests/perf/test_mixed_precision.py tests/perf/test_trt_cache.py
echo "pytest exit: $?"

echo "== bench_backends: default model, 1024x512 [$(left)s left]"
timeout $(( $(left) > 150 ? 150 : $(left) )) "$PY" benchmarks/bench_backends.py --repeat 10 --cache-dir "$CACHE"
echo "bench exit: $?"

if [ "$(left)" -gt 150 ]; then
  echo "== bench_backends: paper config (random weights), 4096x2048 panorama, fp16 [$(left)s left]"
  timeout $(( $(left) - 10 )) "$PY" benchmarks/bench_backends.py --config paper --size 4096x2048 --tile 2048 \
    --precisions fp16 --repeat 5 --cache-dir "$CACHE"
  echo "bench exit: $?"
else
  echo "== paper config skipped: $(left)s left (rerun: engines are cached now)"
fi
echo "== done in $(( $(date +%s) - T0 ))s; log: $LOG"
