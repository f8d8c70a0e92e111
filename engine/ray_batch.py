"""`hdrcnf convert ... --ray [ADDRESS]`: the batch as a Ray Data pipeline over a cluster.

    jobs (src, dst) --read (CPU tasks)--> pixels --convert (one model per actor, GPU or CPU)-->
    HDR --write (CPU tasks, atomic EXR)--> per-file status rows --> the driver prints them

- Decoding photos and ZIP-compressing EXRs are CPU work; as their own stages they run on CPU
  workers while the model actors only convert (on a GPU node the EXR write of an 8K panorama
  takes longer than its conversion). Ray Data streams the stages with backpressure, so only a
  few images are in flight at once.
- One model instance (backend) per actor, built once and reused for every file it gets:
  `num_gpus=1` actors, one per GPU, when the cluster has GPUs (TensorRT when it imports there,
  else onnxruntime's CUDA provider); CPU actors otherwise.
- Resumable and safe to re-run like the local batch: finished outputs are skipped before the
  pipeline starts, and every EXR is written to a temporary name and renamed.
- The same per-file lines, one-line errors, summary and exit status as the local batch; the
  written files are byte-identical to the local batch's (same converter, same writer).
- Paths are read and written by the workers: on a cluster, inputs and outputs must live on
  storage every node sees under the same path (NFS, a mounted bucket).

Pixels travel between stages as raw bytes plus dtype/shape columns, so every row has the same
Arrow schema whatever the photo's bit depth.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

import numpy as np

from .convert import ConvertOptions, ConvertResult, convert_array, write_result
from .errors import InputError
from .io import path_kind

PROG = "hdrcnf"


def _pack(a: np.ndarray | None) -> tuple[bytes, str, list[int]]:
    if a is None:
        return b"", "", []
    a = np.ascontiguousarray(a)
    return a.tobytes(), a.dtype.str, list(a.shape)


def _unpack(data: bytes, dtype: str, shape) -> np.ndarray | None:
    if not dtype:
        return None
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape([int(v) for v in shape])


def _error_row(row: dict, kind: str, message: str) -> dict:
    out = {k: row[k] for k in ("src", "dst")}
    out.update(kind=kind, message=" ".join(str(message).split()),
               pixels=b"", dtype="", shape=[], spread=b"", spread_shape=[], meta="")
    return out


def read_stage(row: dict) -> dict:
    """Decode one photo (CPU task)."""
    from .io import read_ldr_raw

    if row.get("kind"):
        return row
    try:
        image = read_ldr_raw(row["src"])
    except InputError as e:
        return _error_row(row, "input", str(e))
    except MemoryError:
        raise
    except Exception as e:  # an internal error for this file only
        return _error_row(row, "internal", f"{row['src']}: internal error: {type(e).__name__}: {e}")
    data, dtype, shape = _pack(image)
    return {"src": row["src"], "dst": row["dst"], "kind": "", "message": "",
            "pixels": data, "dtype": dtype, "shape": shape, "spread": b"", "spread_shape": [], "meta": ""}


class ConvertStage:
    """A Ray Data actor: one backend for its whole life, one image per call."""

    def __init__(self, settings: dict):
        from .backends import create_backend
        from .bundle import load_bundle

        self.settings = settings
        self.bundle = load_bundle(settings["model"])
        self.options = ConvertOptions(**settings["options"])
        self.half = bool(settings["half"])
        self.backend = create_backend(self.bundle, settings["backend"], threads=settings["threads"],
                                      precision=settings["precision"], cache_dir=settings["cache_dir"],
                                      tile=self.options.tile)

    def __call__(self, batch: dict) -> dict:
        rows = [dict(zip(batch, vals)) for vals in zip(*batch.values())]
        out = [self._one(r) for r in rows]
        return {k: [r[k] for r in out] for k in out[0]} if out else batch

    def _one(self, row: dict) -> dict:
        if row.get("kind"):
            return row
        try:
            image = _unpack(row["pixels"], row["dtype"], row["shape"])
            result = convert_array(image, self.backend, self.bundle, self.options)
        except InputError as e:
            return _error_row(row, "input", str(e))
        except MemoryError:
            raise
        except Exception as e:
            return _error_row(row, "internal", f"{row['src']}: internal error: {type(e).__name__}: {e}")
        hdr = result.hdr
        if self.half:  # what write_exr would store anyway: halves the bytes between stages
            hdr = np.clip(hdr, -65504.0, 65504.0).astype(np.float16)
        data, dtype, shape = _pack(hdr)
        spread, _, spread_shape = _pack(result.spread)
        meta = {"panorama": result.panorama, "info": result.info, "clip_point": result.clip_point,
                "seconds": result.seconds}
        return {"src": row["src"], "dst": row["dst"], "kind": "", "message": "",
                "pixels": data, "dtype": dtype, "shape": shape, "spread": spread, "spread_shape": spread_shape,
                "meta": json.dumps(meta)}


def _stage_class(settings: dict):
    """ConvertStage with the settings bound in, so the actor takes no constructor arguments of
    ours. (Ray Data 2.60 still logs one "has constructor arguments in the object store" line per
    actor from core_worker.cc: its own arguments, for any actor pool, ray-project/ray#57733.
    Setting max_restarts=0 would silence it at the cost of the actors' fault tolerance.)"""

    class Converter(ConvertStage):
        def __init__(self):
            super().__init__(settings)

    return Converter


def write_stage_factory(settings: dict):
    def write_stage(row: dict) -> dict:
        """Write one EXR atomically (CPU task); returns a small status row."""
        from pathlib import Path

        status = {"src": row["src"], "dst": row["dst"], "kind": row["kind"], "message": row["message"],
                  "line": ""}
        if row["kind"]:
            return status
        try:
            bundle = _bundle_cached(settings["model"])
            meta = json.loads(row["meta"])
            hdr = _unpack(row["pixels"], row["dtype"], row["shape"])
            spread = _unpack(row["spread"], "<f4", row["spread_shape"]) if len(row["spread"]) else None
            result = ConvertResult(hdr, spread, meta["panorama"], meta["seconds"], meta["clip_point"], meta["info"])
            options = ConvertOptions(**settings["options"])
            write_result(Path(row["dst"]), Path(row["src"]).name, result, bundle, options,
                         half=settings["half"], compression=settings["compression"])
            status["line"] = result.summary(row["dst"])
        except InputError as e:
            status.update(kind="input", message=" ".join(str(e).split()))
        except Exception as e:
            status.update(kind="internal", message=f"{row['src']}: internal error: {type(e).__name__}: {e}")
        return status

    return write_stage


_BUNDLES: dict = {}


def _bundle_cached(path):
    from .bundle import load_bundle

    key = str(path)
    if key not in _BUNDLES:
        _BUNDLES[key] = load_bundle(path)
    return _BUNDLES[key]


def _init_ray(address: str | None):
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise InputError(f"--ray needs Ray Data: pip install 'hdrcnf[ray]' ({e})") from None
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        try:
            if address in (None, "", "local"):
                ray.init(**kwargs)
            else:
                ray.init(address=address, **kwargs)
        except Exception as e:
            raise InputError(f"--ray {address or ''}: cannot connect to Ray: {' '.join(str(e).split())[:300]}") from None
    return ray


def convert_with_ray(jobs, args, options: ConvertOptions, say=print, err=None) -> dict:
    """Run (src, dst) jobs through the Ray pipeline. Returns counts: converted, skipped,
    failed (bad input), internal. `say(line)` prints a per-file line to stdout, `err(line)`
    an error line to stderr."""
    err = err or (lambda line: (sys.stderr.write(line + "\n"), sys.stderr.flush()))
    counts = {"converted": 0, "skipped": 0, "failed": 0, "internal": 0}
    todo = []
    for src, dst in jobs:
        try:
            kind = path_kind(dst)
            if kind == "dir":
                raise InputError(f"{dst}: output is a folder, not a file")
        except InputError as e:
            counts["failed"] += 1
            err(f"{PROG}: error: {e}")
            continue
        if kind == "file" and not args.overwrite:
            counts["skipped"] += 1
        else:
            todo.append({"src": str(src), "dst": str(dst), "kind": "", "message": ""})
    if not todo:
        return counts
    ray = _init_ray(getattr(args, "ray", None))
    import ray.data
    from ray.data import ActorPoolStrategy

    import logging

    for name in ("ray.data", "ray"):  # the per-file lines and the summary are the user's output
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    for attr, value in (("enable_progress_bars", False), ("print_on_execution_start", False),
                        ("verbose_progress", False)):
        if hasattr(ctx, attr):
            setattr(ctx, attr, value)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if gpus == 0 and (args.backend == "tensorrt" or args.precision == "fp16"):
        what = "tensorrt backend" if args.backend == "tensorrt" else "--precision fp16"
        raise InputError(f"{what} unavailable: the Ray cluster has no GPU; use --backend onnxruntime "
                         f"--precision fp32")
    use_gpu = gpus > 0 and args.backend != "onnxruntime"
    if use_gpu:
        workers = args.workers or gpus
        threads = args.threads or 1
        actor_res = {"num_gpus": 1, "num_cpus": 1}
    else:
        threads = args.threads or min(8, cpus)
        workers = args.workers or max(1, cpus // threads)
        actor_res = {"num_cpus": 1}  # logical: the actor's onnxruntime uses `threads` threads
    settings = {
        "model": str(args.model) if args.model else None,
        "backend": args.backend, "precision": args.precision, "threads": threads,
        "cache_dir": str(args.cache_dir) if getattr(args, "cache_dir", None) else None,
        "options": asdict(options), "half": bool(args.half), "compression": args.compression,
    }
    ds = ray.data.from_items(todo, override_num_blocks=len(todo))
    ds = ds.map(read_stage, num_cpus=1)
    ds = ds.map_batches(_stage_class(settings), batch_size=1,
                        compute=ActorPoolStrategy(min_size=workers, max_size=workers), **actor_res)
    ds = ds.map(write_stage_factory(settings), num_cpus=1)
    for row in ds.select_columns(["src", "dst", "kind", "message", "line"]).iter_rows():
        if not row["kind"]:
            counts["converted"] += 1
            say(row["line"])
        elif row["kind"] == "input":
            counts["failed"] += 1
            err(f"{PROG}: error: {row['message']}")
        else:
            counts["internal"] += 1
            err(f"{PROG}: error: {row['message']}")
    return counts
