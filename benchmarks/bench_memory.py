"""Peak resident memory of converting big synthetic panoramas, each in a fresh child process.

    python benchmarks/bench_memory.py            # 4096x2048 and 8192x4096
    python benchmarks/bench_memory.py --16k      # also 16384x8192 (several minutes on 2 cores)

The child runs the real CLI (`hdrcnf convert pano.jpg -o pano.exr`, default backend and tile)
and reports its own peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, which includes
the Python interpreter, onnxruntime and the model). The floor is what must be held at once:
the decoded input (uint8), the float32 output and the float32 blend-weight sum, then the half
copy the EXR writer encodes.

Prints a table and `peak_rss_8k_mb: N` (and `peak_rss_16k_mb: N`).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, photo, table

CHILD = r"""
import resource, sys, time
t = time.perf_counter()
from engine.cli import main
rc = main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(f"CHILD peak_kib={peak} seconds={time.perf_counter() - t:.1f} rc={rc}", flush=True)
sys.exit(rc)
"""


def run(width: int, height: int, folder: Path, extra: list[str]) -> dict:
    from PIL import Image

    src = folder / f"pano_{width}x{height}.jpg"
    img = photo(height, width, seed=width)
    Image.fromarray(img).save(src, quality=92)
    del img
    dst = folder / f"pano_{width}x{height}.exr"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, "convert", str(src), "-o", str(dst), "--overwrite", *extra],
                       capture_output=True, text=True, env=env, cwd=folder)
    wall = time.perf_counter() - t
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("CHILD ")]
    if r.returncode != 0 or not line:
        raise SystemExit(f"conversion of {src.name} failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")
    fields = dict(kv.split("=") for kv in line[0].split()[1:])
    mpx = width * height / 1e6
    floor = width * height * (3 + 12 + 4) / 2**20  # uint8 input + float32 RGB output + float32 weights
    out = {"size": f"{width}x{height}", "mpx": mpx, "peak_mb": int(fields["peak_kib"]) / 1024,
           "seconds": float(fields["seconds"]), "wall": wall, "floor_mb": floor,
           "exr_mb": dst.stat().st_size / 2**20}
    dst.unlink()
    src.unlink()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--16k", dest="k16", action="store_true", help="also 16384x8192")
    ap.add_argument("--only", default=None, help="comma-separated sizes WxH instead of the defaults")
    ap.add_argument("extra", nargs="*", help="extra hdrcnf convert arguments (e.g. --tile 2048)")
    args = ap.parse_args(argv)
    sizes = [(4096, 2048), (8192, 4096)] + ([(16384, 8192)] if args.k16 else [])
    if args.only:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.only.split(",")]
    print(f"machine: {machine()}")
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="hdrcnf-mem-") as tmp:
        for w, h in sizes:
            r = run(w, h, Path(tmp), args.extra)
            results[(w, h)] = r
            rows.append([r["size"], f"{r['mpx']:.1f}", f"{r['peak_mb']:.0f}", f"{r['floor_mb']:.0f}",
                         f"{r['peak_mb'] / r['mpx']:.1f}", f"{r['seconds']:.1f}", f"{r['exr_mb']:.0f}"])
            print(f"  {r['size']}: peak {r['peak_mb']:.0f} MB in {r['seconds']:.1f}s", flush=True)
    print("\n`hdrcnf convert pano.jpg -o pano.exr` (default backend, tile 1024, half EXR), child process:")
    print(table(rows, ["panorama", "Mpx", "peak RSS MB", "floor MB", "MB/Mpx", "seconds", "EXR MB"]))
    print()
    for (w, h), r in results.items():
        name = {8192: "8k", 16384: "16k", 4096: "4k"}.get(w, f"{w}x{h}")
        print(f"peak_rss_{name}_mb: {r['peak_mb']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
