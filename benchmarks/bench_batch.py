"""Batch throughput: images/s converting a folder of 32 plates, 1 worker vs N workers, tile batching.

    python benchmarks/bench_batch.py                 # 32 plates of 768x512, N = CPU count
    python benchmarks/bench_batch.py --plates 64 --size 1024x768 --workers 4

Configurations, each the real `hdrcnf convert plates/ -o out/` on the same folder, run in one
process one after the other (Ray started once, before any timing):
- local, 1 worker, one tile per run (`--batch 1`)
- local, 1 worker, tile batching (the default: windows of equal shape share a run)
- Ray Data, N CPU workers (`--ray --workers N --threads <cores/N>`), when ray is installed
Plates use `--tile 512` so each has several windows (as big photos do at the default tile).

Prints a table and `batch_tiles_vs_single: X.XXx`, `ray_N_workers_vs_1: X.XXx`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, photo, table


def convert(argv: list[str]) -> tuple[float, int]:
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    dt = time.perf_counter() - t
    if rc != 0:
        raise SystemExit(f"hdrcnf {' '.join(argv)} failed ({rc}): {err.getvalue()[-400:]}")
    return dt, rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plates", type=int, default=32)
    ap.add_argument("--size", default="768x512")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--workers", type=int, default=None, help="Ray workers (default: CPU count)")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    cpus = os.cpu_count() or 1
    workers = args.workers or cpus
    print(f"machine: {machine()}")
    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix="hdrcnf-batch-"))
    try:
        plates = tmp / "plates"
        plates.mkdir()
        for i in range(args.plates):
            Image.fromarray(photo(h, w, seed=i)).save(plates / f"plate_{i:03d}.jpg", quality=92)
        common = ["convert", str(plates), "--tile", str(args.tile)]
        configs = {
            "1 worker, 1 tile per run": common + ["-o", str(tmp / "a"), "--batch", "1"],
            "1 worker, tile batching": common + ["-o", str(tmp / "b")],
        }
        have_ray = True
        try:
            import ray

            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            configs[f"Ray, {workers} workers x {max(1, cpus // workers)} threads"] = common + [
                "-o", str(tmp / "c"), "--ray", "--workers", str(workers), "--threads", str(max(1, cpus // workers))]
        except ImportError:
            have_ray = False
            print("Ray: skipped (pip install 'hdrcnf[ray]')")
        results = {}
        for name, a in configs.items():
            dt, _ = convert(a)
            results[name] = args.plates / dt
            print(f"  {name}: {dt:.1f}s", flush=True)
        if have_ray:
            ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [[k, f"{v:.2f}", f"{v / results['1 worker, 1 tile per run']:.2f}x"] for k, v in results.items()]
    print(f"\n{args.plates} plates of {w}x{h}, --tile {args.tile}, default model, onnxruntime on the CPU:")
    print(table(rows, ["configuration", "images/s", "vs 1 worker, 1 tile per run"]))
    names = list(results)
    print()
    print(f"batch_tiles_vs_single: {results[names[1]] / results[names[0]]:.2f}x")
    if have_ray:
        print(f"ray_{workers}_workers_vs_1: {results[names[2]] / results[names[1]]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
