"""Large plates: the conversion at the flow's own scale (engine.scale) against the flow at full size.

    python benchmarks/bench_large.py [--size 4000x3000] [--repeats 3]

A camera plate with a big clipped sun is what engine.scale reduces (MODEL_CARD, "Large photos":
the reduction is chosen for quality); this prints what it costs or saves in time, both paths
timed side by side, round-robin, in one process, with the default model on onnxruntime.
"""
from __future__ import annotations

import argparse

from _common import interleaved, machine, med, photo, table

from engine.backends import create_backend
from engine.bundle import load_bundle
from engine.convert import ConvertOptions, convert_array


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="4000x3000", help="plate size WxH (default 4000x3000, 12 Mpx)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    bundle = load_bundle()
    backend = create_backend(bundle, "onnxruntime")
    img = photo(h, w)
    info = {}

    def run(full: bool):
        def f():
            r = convert_array(img, backend, bundle, ConvertOptions(panorama="off", full_resolution=full))
            info[full] = r.info["flow_factor"]
        return f

    times = interleaved({"scale": run(False), "full": run(True)}, args.repeats, warmup=0)
    print(f"# {machine()}; {bundle.name} {bundle.version}, onnxruntime; {w}x{h} plate with a clipped sun")
    print(table([["engine.scale (default)", f"1/{info[False]}", f"{med(times['scale']):.2f}"],
                 ["--full-resolution", f"1/{info[True]}", f"{med(times['full']):.2f}"]],
                ["path", "flow at", "median s"]))
    print(f"large_plate_full_resolution_vs_scale: {med(times['full']) / med(times['scale']):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
