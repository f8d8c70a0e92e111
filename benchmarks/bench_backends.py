"""The same model on the same input: PyTorch eager reverse pass vs onnxruntime vs TensorRT.

    python benchmarks/bench_backends.py                       # default model, 1024x512, CPU (+GPU when present)
    python benchmarks/bench_backends.py --config paper --size 4096x2048 --tile 2048   # on a GPU
    python benchmarks/bench_backends.py --no-torch --against runs/X-bundle   # price a candidate model

Every backend runs the exact graph the engine runs (the bundle's ONNX reverse pass; PyTorch runs
the module it was exported from) on one batch of windows covering the input; they are timed
round-robin in one process (so a change of machine load hits all of them alike) and the
medians are compared. Also measured: the whole conversion of a 1024x512 photo through
`engine.convert.convert_array` (tiles, latents, blending) with the default backend, against the
1.7 s the published ExpandNet needs for that size on this class of CPU. With `--against BUNDLE`
the same conversion with another model bundle is timed in the same round-robin, which prices a
candidate default model (`convert_vs_against: 1.30x` = the default takes 1.30x the candidate's time).

Prints a table and ratio lines such as `ort_vs_torch_eager: 5.12x`.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import (EXPANDNET_1024x512_S, feeds, gpu_name, interleaved, machine, med, photo, table,
                     torch_model)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="compact", choices=("compact", "paper"))
    ap.add_argument("--size", default=None, help="WxH (default 1024x512; paper on CPU: 256x128)")
    ap.add_argument("--tile", type=int, default=None, help="tile for the TensorRT profile and the conversion")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch eager (e.g. no torch installed)")
    ap.add_argument("--precisions", default="fp32,fp16", help="TensorRT precisions to build and time")
    ap.add_argument("--no-sweep", action="store_true", help="CPU: skip the 1-thread runs")
    ap.add_argument("--cache-dir", default=None, help="TensorRT engine cache (default: a temporary folder)")
    ap.add_argument("--against", default=None, metavar="BUNDLE",
                    help="also time the whole conversion with this model bundle, side by side")
    args = ap.parse_args(argv)

    from engine.backends import create_backend, tensorrt_status
    from engine.backends.onnxruntime import OnnxRuntimeBackend
    from engine.bundle import load_bundle

    gpu = gpu_name()
    trt_ok, _, trt_why = tensorrt_status()
    if args.size is None:
        args.size = "1024x512" if (args.config == "compact" or gpu) else "256x128"
    w, h = (int(v) for v in args.size.lower().split("x"))
    print(f"machine: {machine()}" + (f"; GPU: {gpu}" if gpu else "; no GPU"))
    tmp = tempfile.TemporaryDirectory(prefix="hdrcnf-bench-")
    torch_mod, weights = (None, "") if args.no_torch else torch_model(args.config)
    if args.config == "compact":
        bundle = load_bundle()
    else:
        bundle = _export_paper(torch_mod, Path(tmp.name) / "bundle")
    print(f"model: {bundle.name} ({args.config} config); PyTorch: {weights or 'skipped'}")

    # one batch of windows = what the converter feeds for this image (same tile plan)
    from engine.convert import ConvertOptions, convert_array

    tile = args.tile or 1024
    x, lat = feeds(bundle, 1, h, w)
    fns, rows, device = {}, {}, {}
    ort = OnnxRuntimeBackend(bundle)
    # a paper-size model on a CPU takes minutes per megapixel: only small inputs there
    cpu_ok = args.config == "compact" or h * w <= (1 << 20)
    if cpu_ok or ort.device == "cuda":
        fns["onnxruntime"] = lambda: ort.run(x, lat)
        device["onnxruntime"] = f"{ort.device} ({ort.threads} threads)"
    else:
        print(f"onnxruntime: skipped ({args.config} config at {w}x{h} on a CPU)")
    if torch_mod is not None:
        import torch

        torch.set_num_threads(max(1, ort.threads))
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if torch_mod is not None and (cpu_ok or dev == "cuda"):
        tm = torch_mod.to(dev)
        tx = torch.from_numpy(x).to(dev)
        tl = [torch.from_numpy(lat[s.name]).to(dev) for s in bundle.latents]

        def torch_eager():
            with torch.inference_mode():
                y = tm(tx, *tl)
            if dev == "cuda":
                torch.cuda.synchronize()
            return y

        nthreads = torch.get_num_threads()

        def torch_eager_1t():
            torch.set_num_threads(1)
            try:
                return torch_eager()
            finally:
                torch.set_num_threads(nthreads)

        fns["torch_eager"] = torch_eager
        device["torch_eager"] = f"{dev} fp32" + (f" ({nthreads} threads)" if dev == "cpu" else
                                                 f" (cudnn TF32 {torch.backends.cudnn.allow_tf32}, defaults)")
        if dev == "cuda":
            # what plain PyTorch gets from half precision: the yardstick for TensorRT fp16
            def torch_autocast_fp16():
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                    y = tm(tx, *tl)
                torch.cuda.synchronize()
                return y

            fns["torch_autocast_fp16"] = torch_autocast_fp16
            device["torch_autocast_fp16"] = "cuda fp16 autocast"
        if dev == "cpu" and nthreads > 1 and not args.no_sweep:
            # On a loaded machine OpenMP (torch) collapses when one of its threads loses its core,
            # so also compare both libraries at one thread: the ratio at each one's best setting.
            fns["torch_eager_1t"] = torch_eager_1t
            device["torch_eager_1t"] = "cpu fp32 (1 thread)"
    if "onnxruntime" in fns and ort.device == "cpu" and ort.threads > 1 and not args.no_sweep:
        ort1 = OnnxRuntimeBackend(bundle, threads=1)
        fns["onnxruntime_1t"] = lambda: ort1.run(x, lat)
        device["onnxruntime_1t"] = "cpu (1 thread)"
    trt_backends = {}
    if trt_ok:
        cache = args.cache_dir or str(Path(tmp.name) / "trt")
        for prec in [p for p in args.precisions.split(",") if p]:
            b = create_backend(bundle, "tensorrt", precision=prec, cache_dir=cache, tile=max(tile, h, w),
                               max_batch=1, log=lambda line: print(line, flush=True))
            trt_backends[prec] = b
            fns[f"trt_{prec}"] = (lambda b=b: b.run(x, lat))
            device[f"trt_{prec}"] = f"{b.device} {prec}"
    else:
        print(f"TensorRT: skipped ({trt_why})")

    repeats = args.repeat
    times = interleaved(fns, repeats)
    ref = times.get("torch_eager")
    for k, ts in times.items():
        ratio = f"{med(ref) / med(ts):.2f}x" if ref else "-"
        rows[k] = [k, device[k], f"{1000 * med(ts):.1f}", f"{1000 * min(ts):.1f}", ratio]
    print(f"\nreverse pass, 1 x 3 x {h} x {w}, median of {repeats} (round-robin):")
    print(table(list(rows.values()), ["backend", "device", "median ms", "min ms", "vs torch eager"]))

    # parity while we have everything loaded
    base = np.asarray(ort.run(x, lat)) if "onnxruntime" in fns else None
    for prec, b in trt_backends.items():
        if base is None:
            break
        got = b.run(x, lat)
        rel = float(np.max(np.abs(got - base) / (np.abs(base) + 1e-3)))
        stops = float(np.mean(np.abs(np.log2(np.maximum(got, 0) + 1e-3) - np.log2(np.maximum(base, 0) + 1e-3))))
        print(f"trt_{prec} vs onnxruntime: max rel error {rel:.2e}, mean |diff| {stops:.4f} stops")

    print()
    if ref and "onnxruntime" in times:
        print(f"ort_vs_torch_eager: {med(ref) / med(times['onnxruntime']):.2f}x")
        if "torch_eager_1t" in times and "onnxruntime_1t" in times:
            best_t = min(med(times["torch_eager"]), med(times["torch_eager_1t"]))
            best_o = min(med(times["onnxruntime"]), med(times["onnxruntime_1t"]))
            print(f"ort_vs_torch_eager_1_thread: {med(times['torch_eager_1t']) / med(times['onnxruntime_1t']):.2f}x")
            print(f"ort_vs_torch_eager_each_at_best_threads: {best_t / best_o:.2f}x")
    if ref and "torch_autocast_fp16" in times:
        print(f"torch_autocast_fp16_vs_torch_eager: {med(ref) / med(times['torch_autocast_fp16']):.2f}x")
    for prec in trt_backends:
        if ref:
            print(f"trt_{prec}_vs_torch_eager: {med(ref) / med(times[f'trt_{prec}']):.2f}x")
        if "onnxruntime" in times:
            print(f"trt_{prec}_vs_ort: {med(times['onnxruntime']) / med(times[f'trt_{prec}']):.2f}x")

    # the whole conversion of a photo, with the default backend
    img = photo(h, w, 7)
    conv = {"convert_ort": (ort, tile)} if "onnxruntime" in fns else {}
    for prec, b in trt_backends.items():
        conv[f"convert_trt_{prec}"] = (b, tile)
    cfns = {k: (lambda b=b, t=t: convert_array(img, b, bundle, ConvertOptions(tile=t)))
            for k, (b, t) in conv.items()}
    if "convert_ort" in cfns and bundle.light is not None and w == 2 * h:  # a panorama: the light stage runs
        cfns["convert_ort_no_light"] = lambda: convert_array(img, ort, bundle, ConvertOptions(tile=tile, light=False))
    if args.against and "convert_ort" in cfns:
        other = load_bundle(args.against)
        other_ort = OnnxRuntimeBackend(other)
        print(f"against: {other.name} ({args.against})")
        cfns["convert_ort_against"] = lambda: convert_array(img, other_ort, other, ConvertOptions(tile=tile))
    ctimes = interleaved(cfns, max(3, repeats // 2))
    crow = [[k, f"{med(ts):.3f}", f"{min(ts):.3f}"] for k, ts in ctimes.items()]
    print(f"\nwhole conversion of a {w}x{h} photo (engine.convert.convert_array: tiles, latents, blend):")
    print(table(crow, ["pipeline", "median s", "min s"]))
    print()
    if "convert_ort" in ctimes:
        t = med(ctimes["convert_ort"])
        print(f"convert_{w}x{h}_ort_s: {t:.3f}")
        if (w, h) == (1024, 512) and args.config == "compact":
            print(f"convert_1024x512_vs_expandnet_1.7s: {EXPANDNET_1024x512_S / t:.2f}x")
    if "convert_ort_against" in ctimes:
        print(f"convert_{w}x{h}_against_s: {med(ctimes['convert_ort_against']):.3f}")
        print(f"convert_vs_against: {med(ctimes['convert_ort']) / med(ctimes['convert_ort_against']):.2f}x "
              f"(time with the default model / with {args.against})")
    if "convert_ort_no_light" in ctimes:
        print(f"light_stage_cost: {med(ctimes['convert_ort']) / med(ctimes['convert_ort_no_light']):.3f}x "
              f"(whole conversion with / without the panorama light stage)")
    for prec in trt_backends:
        print(f"convert_{w}x{h}_trt_{prec}_ms: {1000 * med(ctimes[f'convert_trt_{prec}']):.1f}")
        print(f"engine_{w}x{h}_trt_{prec}_ms: {1000 * med(times[f'trt_{prec}']):.1f}")
    tmp.cleanup()
    return 0


def _export_paper(model, folder: Path):
    """Random-weight paper-config bundle (speed only), exported like a real one."""
    from engine.bundle import write_bundle
    from training.configs import paper
    from training.export import export_onnx
    from training.flow.hdrcnf import latent_channels

    if model is None:
        from _common import torch_model as tm

        model, _ = tm("paper")
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "export.onnx"
    export_onnx(model.cpu(), onnx_path)
    cfg = paper()
    meta = {"name": "hdrcnf-paper-random", "version": "bench", "levels": cfg.model.flow.levels,
            "stride": cfg.model.stride,
            "latents": [{"name": f"z{i + 1}", "channels": c, "scale": 2 ** (i + 1)}
                        for i, c in enumerate(latent_channels(cfg.model.flow))],
            "receptive_field": 64, "default_temperature": 0.6}
    return write_bundle(folder, onnx_path, meta)


if __name__ == "__main__":
    sys.exit(main())
