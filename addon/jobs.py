# SPDX-License-Identifier: GPL-3.0-or-later
"""Conversion jobs: the engine runs on a worker thread, results are applied on the main thread.

The work is kept in plain functions so that tests and scripts can run it synchronously:

- `run_conversion(source, settings, progress, cancel)` reads the photo (when it is a file) and runs
  the engine. numpy + engine only, never `bpy`: safe on any thread.
- `ConversionJob` runs `run_conversion` on a daemon thread and reports through a queue; `poll()`
  drains that queue on the main thread. `cancel()` sets a flag the engine polls between model runs.
- `apply_result(context, output)` (main thread only) stores the HDR as a packed float image and
  wires the HDR-CNF compositor node; it either completes or leaves the file as it was.

Nothing in this module imports `bpy` at module level; `apply_result` imports the bpy-side helpers
lazily.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from . import engine_link

# ------------------------------------------------------------------------------------ data


@dataclass
class Settings:
    """Everything the engine needs besides the photo (read from the scene and the preferences)."""

    temperature: float | None = None  # None: the model's default temperature
    seed: int = 0
    samples: int = 1
    exposure: float = 0.0             # EV baked into the result (x 2**EV)
    panorama: str = "auto"            # auto | on | off
    light: bool = True                # panoramas: add the light the clip hides (engine.light)
    full_resolution: bool = False     # run the flow at the photo's own size (no engine.scale reduction)
    backend: str = "auto"             # auto | onnxruntime | tensorrt
    threads: int = 0                  # 0: the engine's default (physical cores)
    model_dir: str = ""               # "" : the bundled default model
    cache_dir: str = ""
    tile: int = 1024


@dataclass
class Source:
    """The photo to convert: a file read on the worker, or pixels read on the main thread."""

    name: str                         # stem used for the result's name
    key: str                          # identity of the photo: one result image per key
    path: str = ""
    pixels: np.ndarray | None = field(default=None, repr=False)  # (H, W, 3) display-encoded 0..1


@dataclass
class Output:
    hdr: np.ndarray = field(repr=False)  # (H, W, 3) float32 linear
    panorama: bool
    seconds: float                    # engine time (convert_array)
    total_seconds: float              # read + model load + convert
    model_name: str
    model_version: str
    model_sha256: str
    backend: str                      # e.g. "onnxruntime (cpu, 2 threads)"
    peak_stops: float
    source: Source
    settings: Settings
    light_stops: float | None = None  # stops the light stage added (None: not a panorama, off or nothing clipped)
    flow_factor: int = 1              # the reduction engine.scale ran the flow at (1: full size)


# ------------------------------------------------------------------------- engine helpers

_ENGINE_LOCK = threading.Lock()
_ENGINE_CACHE: dict = {}  # holds at most one (key -> (bundle, backend)); a new key replaces it


def load_engine(settings: Settings):
    """(bundle, backend) for these settings. The verified bundle is re-read every time (cheap, and
    a replaced model is noticed); the backend session is reused while the model file, backend and
    thread count stay the same. Raises engine.errors.BundleError / InputError."""
    bundle_mod = engine_link.module("bundle")
    backends = engine_link.module("backends")
    bundle = bundle_mod.load_bundle(settings.model_dir or None)
    key = (str(bundle.onnx_path), bundle.sha256, settings.backend, int(settings.threads))
    with _ENGINE_LOCK:
        hit = _ENGINE_CACHE.get(key)
        if hit is not None:
            return bundle, hit
        backend = backends.create_backend(bundle, settings.backend, threads=int(settings.threads) or None)
        _ENGINE_CACHE.clear()
        _ENGINE_CACHE[key] = backend
        return bundle, backend


def clear_engine_cache() -> None:
    with _ENGINE_LOCK:
        _ENGINE_CACHE.clear()


def describe_backend(backend) -> str:
    name = getattr(backend, "name", "?")
    device = getattr(backend, "device", "")
    threads = getattr(backend, "threads", None)
    extra = ", ".join(x for x in (device, f"{threads} threads" if threads and device == "cpu" else "") if x)
    return f"{name} ({extra})" if extra else name


def run_conversion(source: Source, settings: Settings, progress=None, cancel=None) -> Output:
    """Read the photo (if a file), load the model and convert. No bpy: callable from any thread.

    Raises engine.errors.InputError (bad photo, option or model: one line for the user),
    engine.errors.Cancelled, or anything else for internal errors."""
    t0 = time.perf_counter()
    errors = engine_link.errors()
    convert = engine_link.module("convert")
    if source.pixels is not None:
        ldr = source.pixels
    elif source.path:
        ldr = engine_link.module("io").read_ldr(source.path)
    else:
        raise errors.InputError("no photo chosen: pick a photo file or a loaded image first")
    if cancel is not None and cancel():
        raise errors.Cancelled("conversion cancelled")
    bundle, backend = load_engine(settings)
    options = convert.ConvertOptions(
        temperature=settings.temperature, seed=int(settings.seed), samples=int(settings.samples),
        exposure=float(settings.exposure), panorama=settings.panorama, tile=int(settings.tile),
        light=bool(settings.light), full_resolution=bool(settings.full_resolution))
    result = convert.convert_array(ldr, backend, bundle, options, progress=progress, cancel=cancel)
    return Output(
        hdr=result.hdr, panorama=bool(result.panorama), seconds=float(result.seconds),
        total_seconds=time.perf_counter() - t0, model_name=bundle.name, model_version=bundle.version,
        model_sha256=bundle.sha256, backend=describe_backend(backend),
        peak_stops=float(result.peak_stops), source=source, settings=settings,
        light_stops=result.info.get("light_stops"), flow_factor=int(result.info.get("flow_factor", 1)))


def error_message(exc: BaseException) -> str:
    """One line for `self.report({'ERROR'}, ...)`: the engine's own message for user errors,
    a short 'internal error' line otherwise (the traceback goes to the console only)."""
    errors = engine_link.errors()
    if isinstance(exc, (errors.InputError, errors.Cancelled)):
        text = str(exc)
    elif isinstance(exc, MemoryError):
        text = "not enough memory for this image: use a smaller photo or a smaller tile size"
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


# ------------------------------------------------------------------------------ the job

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"


class ConversionJob:
    """One conversion on a worker thread. The worker only calls `runner` (no bpy) and posts
    ("progress", fraction) / ("done", Output) / ("failed", message) / ("cancelled", message) to a
    queue; the main thread calls `poll()` to drain it and read `state`, `progress`, `output`,
    `error`."""

    def __init__(self, source: Source, settings: Settings, runner=run_conversion):
        self.source = source
        self.settings = settings
        self._runner = runner
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name="hdrcnf-convert", daemon=True)
        self.state = PENDING
        self.progress = 0.0
        self.output: Output | None = None
        self.error = ""
        self.started = 0.0

    # main thread ------------------------------------------------------------------------
    def start(self) -> "ConversionJob":
        self.state = RUNNING
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED, CANCELLED)

    def poll(self) -> str:
        """Drain the queue (non-blocking) and return the state."""
        while True:
            try:
                kind, value = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                self.progress = max(self.progress, float(value))
            elif kind == DONE:
                self.output, self.progress, self.state = value, 1.0, DONE
            elif kind in (FAILED, CANCELLED):
                self.error, self.state = value, kind
        return self.state

    def wait(self, timeout: float | None = None) -> str:
        """Block until the worker ends (or `timeout` seconds pass), then poll."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self.poll()

    # worker thread ----------------------------------------------------------------------
    def _work(self) -> None:
        put = self._queue.put
        try:
            errors = engine_link.errors()
            try:
                out = self._runner(self.source, self.settings,
                                   progress=lambda f: put(("progress", f)), cancel=self._cancel.is_set)
            except errors.Cancelled as e:
                put((CANCELLED, str(e) or "conversion cancelled"))
            except errors.InputError as e:
                put((FAILED, error_message(e)))
            else:
                put((DONE, out))
        except BaseException as e:  # noqa: BLE001 - the worker must always report back
            traceback.print_exc(file=sys.stderr)
            put((FAILED, error_message(e)))


# ------------------------------------------------------------------------ model info (UI)

_INFO_CACHE: dict = {}


def model_info(model_dir: str = "") -> tuple[str, str]:
    """(label, problem) for the model the panels show: e.g. ("hdrcnf-compact 0.1.0", "").
    Reads only model.json (no hashing), cached by path and mtime, so panels can call it on
    every redraw."""
    if model_dir:
        folder = model_dir
    else:
        try:
            folder = str(engine_link.module("bundle").default_bundle_path())
        except Exception as e:  # noqa: BLE001 - the UI must draw whatever happens
            return "", f"engine not importable: {error_message(e)}"
    path = os.path.join(folder, "model.json")
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return "", f"no model at {folder}"
    hit = _INFO_CACHE.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        value = (f"{meta['name']} {meta['version']}", "")
    except (OSError, ValueError, KeyError, TypeError) as e:
        value = ("", f"unreadable model.json: {e}")
    _INFO_CACHE[path] = (mtime, value)
    return value


_BACKEND_CACHE: dict = {}


def planned_backend(name: str) -> str:
    """What `name` resolves to, without building a session (cached: probing CUDA is not free)."""
    if name in _BACKEND_CACHE:
        return _BACKEND_CACHE[name]
    try:
        backends = engine_link.module("backends")
        trt_ok, trt_device, trt_why = backends.tensorrt_status()
        if name == "tensorrt" or (name == "auto" and trt_ok):
            text = f"tensorrt ({trt_device})" if trt_ok else f"tensorrt unavailable: {trt_why}"
        else:
            import importlib.util

            ort_ok = importlib.util.find_spec("onnxruntime") is not None
            text = "onnxruntime" if ort_ok else "onnxruntime missing (reinstall the extension)"
        if name == "auto":
            text = f"auto: {text}"
    except Exception as e:  # noqa: BLE001 - drawn in a panel
        text = f"{name} ({error_message(e)})"
    _BACKEND_CACHE[name] = text
    return text


# -------------------------------------------------------------------- main thread (bpy)


def apply_result(context, output: Output, scene=None):
    """Main thread: store `output` as the packed float image for its photo (replacing the
    previous one in place) and make sure the scene's compositor has an HDR-CNF node showing it.
    Returns (image, node). On failure nothing new is left behind and the previous result (if
    any) stays in use."""
    from . import nodes  # bpy-side helpers, imported here so this module stays bpy-free

    scene = scene or context.scene
    meta = {
        "hdrcnf_source": output.source.key,
        "hdrcnf_model": f"{output.model_name} {output.model_version}",
        "hdrcnf_seed": int(output.settings.seed),
        "hdrcnf_temperature": -1.0 if output.settings.temperature is None else float(output.settings.temperature),
        "hdrcnf_samples": int(output.settings.samples),
        "hdrcnf_exposure": float(output.settings.exposure),
        "hdrcnf_panorama": bool(output.panorama),
        "hdrcnf_peak_stops": float(output.peak_stops),
        "hdrcnf_light_stops": -1.0 if output.light_stops is None else float(output.light_stops),
        "hdrcnf_flow_factor": int(output.flow_factor),
        "hdrcnf_seconds": float(output.seconds),
    }
    return nodes.install_result(scene, output.hdr, output.source.name, meta)
