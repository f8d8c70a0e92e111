"""The `hdrcnf` command: `convert` photos to EXR, and `info` about the model and backends.

Contract with scripts and render farms: exit 0 when everything converted (or was skipped
because its output exists), 2 for bad input or usage with ONE line per problem on stderr naming
the file, 1 for an internal error (one line; the traceback only with --debug), 130 on Ctrl-C.
Per-file results and the final summary go to stdout. A batch keeps going past bad files.
Outputs are written atomically, so an interrupted batch can simply be run again (existing
outputs are skipped unless --overwrite).
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from . import __version__
from .errors import Cancelled, InputError
from .limits import MAX_EXPOSURE_EV, MAX_TEMPERATURE

PROG = "hdrcnf"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (no multi-line usage dump)."""

    def error(self, message):  # noqa: D401 - argparse API
        sys.stderr.write(f"{PROG}: error: {' '.join(str(message).split())}\n")
        raise SystemExit(2)


def _number(kind, minimum=None, strict=False, what="", maximum=None):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {what or kind.__name__}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if minimum is not None and (v <= minimum if strict else v < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
        if maximum is not None and v > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum:g}, got {text}")
        return v

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Turn ordinary LDR photos into scene-referred HDR OpenEXR images.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("convert", help="convert photos (files or folders) to OpenEXR")
    c.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders (.jpg .jpeg .png .tif .tiff)")
    c.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="an .exr file for a single input, else a folder receiving <stem>.exr")
    c.add_argument("--model", metavar="DIR", default=None, help="model bundle folder (default: the bundled model)")
    c.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    c.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    c.add_argument("--temperature", type=_number(float, 0.0, what="number", maximum=MAX_TEMPERATURE), default=None,
                   metavar="T", help=f"latent temperature, 0 to {MAX_TEMPERATURE:g} (default: the model's)")
    c.add_argument("--seed", type=_number(int, 0, what="integer"), default=0, metavar="S")
    c.add_argument("--samples", type=_number(int, 1, what="integer"), default=None, metavar="N",
                   help="average N flow samples (default 1, or 4 with --uncertainty)")
    c.add_argument("--uncertainty", action="store_true",
                   help="also write the per-pixel spread over samples (std of log2 luminance, in stops) "
                        "as an 'uncertainty' channel")
    c.add_argument("--tile", type=_number(int, 1, what="integer"), default=1024, metavar="PX",
                   help="tile size in pixels including context (default 1024)")
    c.add_argument("--exposure", type=_number(float, -MAX_EXPOSURE_EV, what="number", maximum=MAX_EXPOSURE_EV),
                   default=0.0, metavar="EV",
                   help=f"scale the output by 2^EV, -{MAX_EXPOSURE_EV:g} to {MAX_EXPOSURE_EV:g} (default 0)")
    c.add_argument("--panorama", default="auto", choices=("auto", "on", "off"),
                   help="wrap horizontally (auto: 2:1 images)")
    c.add_argument("--no-light", dest="light", action="store_false",
                   help="panoramas: do not add the light the clipped areas hide (the model's light stage, "
                        "see MODEL_CARD); the output is then the flow's alone")
    c.add_argument("--full-resolution", action="store_true",
                   help="run the flow at the image's own size; by default an image whose clipped areas "
                        "are too large for the flow's window is converted at a reduced size and the "
                        "flow's correction carried back up (engine.scale, MODEL_CARD 'Large photos')")
    c.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--half", dest="half", action="store_true", default=True, help="16-bit float EXR (default)")
    g.add_argument("--float", dest="half", action="store_false", help="32-bit float EXR")
    c.add_argument("--compression", default="zip", choices=("zip", "dwaa"))
    c.add_argument("--threads", type=_number(int, 1, what="integer"), default=None, metavar="N",
                   help="CPU threads for onnxruntime (default: physical cores)")
    c.add_argument("--batch", type=_number(int, 1, what="integer"), default=None, metavar="N",
                   help="most tiles per model run (default: the backend's choice; tensorrt: the engine's "
                        "profile is built for it)")
    c.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="TensorRT engine and timing cache folder (default ~/.cache/hdrcnf/trt or "
                        "$HDRCNF_CACHE_DIR/trt)")
    c.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the batch as a Ray Data pipeline: on the cluster at ADDRESS (e.g. 'auto' or "
                        "ray://head:10001), or on a local Ray instance when no address is given")
    c.add_argument("--workers", type=_number(int, 1, what="integer"), default=None, metavar="N",
                   help="with --ray: model instances (default: one per GPU, else CPUs / threads)")
    c.add_argument("--debug", action="store_true", help="print tracebacks of internal errors")

    i = sub.add_parser("info", help="show the model, its scores and the available backends")
    i.add_argument("--model", metavar="DIR", default=None)
    i.add_argument("--debug", action="store_true")
    return p


def main(argv=None) -> int:
    """Entry point of the `hdrcnf` console script and `python -m engine`; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version (0) and usage errors (2)
        return int(e.code or 0)
    restore = _install_sigterm()
    try:
        if args.command == "info":
            return _cmd_info(args)
        return _cmd_convert(args)
    except InputError as e:
        _err(str(e))
        return 2
    except (KeyboardInterrupt, Cancelled):
        _err("interrupted")
        return 130
    except Exception as e:  # never a traceback unless asked for
        if getattr(args, "debug", False):
            traceback.print_exc()
        _err(f"internal error: {type(e).__name__}: {e}")
        return 1
    finally:
        restore()


def _err(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {' '.join(str(message).split())}\n")
    sys.stderr.flush()


def _install_sigterm():
    """Turn SIGTERM (render-farm kill) into KeyboardInterrupt so temp files get cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, old)


# ----------------------------------------------------------------------------------- convert


def plan_jobs(inputs: list[str], output: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Resolve IN... and OUT into (source, destination) pairs and per-input problems.

    Raises InputError for problems with OUT itself (they concern every input)."""
    from .io import list_images, path_kind

    if not output.strip():
        raise InputError("the output path (-o) is empty")
    sources: list[Path] = []
    bad: list[str] = []
    input_kinds = []
    for text in inputs:
        p = Path(text)
        try:
            kind = path_kind(p)
            input_kinds.append(kind)
            if kind == "dir":
                try:
                    found = list_images(p)
                except OSError as e:
                    raise InputError(f"{p}: cannot list folder: {e.strerror or e}") from None
                if not found:
                    bad.append(f"{p}: folder contains no images (.jpg .jpeg .png .tif .tiff)")
                sources.extend(found)
            elif kind == "file":
                sources.append(p)
            else:
                bad.append(f"{p}: no such file")
        except InputError as e:
            bad.append(str(e))
    out = Path(output)
    out_kind = path_kind(out)
    single = len(inputs) == 1 and input_kinds[:1] != ["dir"]
    if single and out_kind != "dir":
        if out.suffix.lower() != ".exr":
            raise InputError(f"{out}: output must be an .exr file (or an existing folder) for a single input")
        dest = lambda src: out  # noqa: E731
    else:
        if out_kind == "file":
            raise InputError(f"{out}: output must be a folder when converting several images or a folder")
        if out_kind == "missing" and out.suffix.lower() == ".exr":
            raise InputError(f"{out}: output must be a folder (not an .exr file) when converting several images")
        dest = lambda src: out / (src.stem + ".exr")  # noqa: E731
    _check_output_parent(out if out_kind == "dir" else out.parent)
    inputs_resolved = {s.resolve() for s in sources}
    jobs: list[tuple[Path, Path]] = []
    seen_src: set[Path] = set()
    owner: dict[Path, Path] = {}
    for src in sources:
        rs = src.resolve()
        if rs in seen_src:
            continue
        seen_src.add(rs)
        dst = dest(src)
        rd = dst.resolve()
        if rd in inputs_resolved:
            bad.append(f"{src}: output {dst} would overwrite an input")
            continue
        if rd in owner:
            bad.append(f"{src}: output {dst} is already the output of {owner[rd]}; rename one of them")
            continue
        owner[rd] = src
        jobs.append((src, dst))
    return jobs, bad


def _check_output_parent(folder: Path) -> None:
    """The nearest existing folder on the way to the output must be a folder: a file there (say
    -o photo.png/out.exr) is named, rather than reported later as 'File exists'."""
    from .io import path_kind

    for parent in (folder, *folder.parents):
        kind = path_kind(parent)
        if kind == "file":
            raise InputError(f"{parent}: is a file, so the output cannot go inside it")
        if kind == "dir":
            return


def _cmd_convert(args) -> int:
    from .backends import create_backend
    from .bundle import load_bundle
    from .convert import ConvertOptions, convert_file
    from .io import path_kind

    t0 = time.perf_counter()
    if args.samples is None:
        samples = 4 if args.uncertainty else 1
    else:
        samples = args.samples
    if args.uncertainty and samples < 2:
        raise InputError(f"--uncertainty needs --samples 2 or more (got --samples {samples})")
    options = ConvertOptions(temperature=args.temperature, seed=args.seed, samples=samples,
                             uncertainty=args.uncertainty, tile=args.tile, exposure=args.exposure,
                             panorama=args.panorama, light=args.light,
                             full_resolution=args.full_resolution)
    options.validate()
    jobs, bad = plan_jobs(args.inputs, args.output)
    for line in bad:
        _err(line)
    converted = skipped = internal = 0
    failed = len(bad)
    if jobs and args.ray is not None:
        from .ray_batch import convert_with_ray

        _check_tile(args.tile, load_bundle(args.model))
        counts = convert_with_ray(jobs, args, options, say=lambda line: print(line, flush=True), err=_err_raw)
        converted, skipped = counts["converted"], counts["skipped"]
        failed += counts["failed"]
        internal = counts["internal"]
    elif jobs:
        bundle = load_bundle(args.model)
        _check_tile(args.tile, bundle)  # once for the batch, not once per file
        backend = create_backend(bundle, args.backend, threads=args.threads, precision=args.precision,
                                 cache_dir=args.cache_dir, tile=args.tile, max_batch=args.batch)
        if args.batch is not None:
            _cap_batch(backend, args.batch)
        tty = sys.stderr.isatty()
        bar = _bar(len(jobs), "images", tty)
        for src, dst in jobs:
            tiles = None
            try:
                if not args.overwrite and path_kind(dst) == "file":  # a folder there is convert_file's error
                    skipped += 1
                    continue
                tiles = _bar(1000, src.name, tty, leave=False)
                result = convert_file(src, dst, backend, bundle, options, overwrite=args.overwrite,
                                      half=args.half, compression=args.compression,
                                      progress=lambda f, t=tiles: t.update(round(f * 1000) - t.n))
            except InputError as e:
                failed += 1
                _say(bar, f"{PROG}: error: {e}", sys.stderr)
            except (KeyboardInterrupt, Cancelled, MemoryError):
                raise
            except Exception as e:
                internal += 1
                if args.debug:
                    traceback.print_exc()
                _say(bar, f"{PROG}: error: {src}: internal error: {type(e).__name__}: "
                          f"{' '.join(str(e).split())}", sys.stderr)
            else:
                if result is None:
                    skipped += 1
                else:
                    converted += 1
                    _say(bar, result.summary(dst), sys.stdout)
            finally:
                if tiles is not None:
                    tiles.close()
                bar.update(1)
        bar.close()
    print(f"converted {converted}, skipped {skipped}, failed {failed + internal} in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)
    return 1 if internal else 2 if failed else 0


def _cap_batch(backend, n: int) -> None:
    """--batch N for backends that choose their own batch size (onnxruntime), the photo flow's too."""
    for b in (backend, getattr(backend, "photo", None)):
        sizer = getattr(b, "batch_size", None)
        if sizer is not None and getattr(b, "name", "") != "tensorrt":
            b.batch_size = lambda h, w, sizer=sizer: max(1, min(n, sizer(h, w)))


def _err_raw(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _check_tile(tile: int, bundle) -> None:
    from .tiling import default_overlap, min_tile

    need = min_tile(default_overlap(bundle.receptive_field, bundle.stride), bundle.stride)
    if tile < need:
        raise InputError(f"--tile {tile} is too small for model {bundle.name}: it needs at least {need} px")


class _NoBar:
    n = 0

    def update(self, k=1):
        self.n += k

    def close(self):
        pass


def _bar(total: int, desc: str, tty: bool, leave: bool = True):
    """A tqdm bar on stderr when it is a terminal; otherwise a silent stand-in (logs stay clean)."""
    if not tty:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=leave, file=sys.stderr, unit="" if total == 1000 else " img",
                bar_format="{l_bar}{bar}| {elapsed}<{remaining}" if total == 1000 else None)


def _say(bar, line: str, stream) -> None:
    if isinstance(bar, _NoBar):
        print(line, file=stream, flush=True)
    else:
        from tqdm import tqdm

        tqdm.write(line, file=stream)


# -------------------------------------------------------------------------------------- info


def _cmd_info(args) -> int:
    from .backends import available_backends
    from .bundle import load_bundle

    b = load_bundle(args.model)
    m = b.meta
    lines = [
        f"model: {b.name} {b.version}",
        f"path: {b.path}",
        f"sha256: {b.sha256}",
        "flows: " + (f"two, one per kind of input: photos {b.photo.onnx_path.name} (sha256 {b.photo.sha256[:12]}), "
                     f"panoramas (2:1 or --panorama on) {b.onnx_path.name}" if b.photo else
                     f"one ({b.onnx_path.name}) for photos and panoramas"),
        f"levels: {b.levels}, stride: {b.stride}, receptive field: {b.receptive_field} px, "
        f"default temperature: {b.default_temperature:g}",
        f"latents: {', '.join(f'{s.name} ({s.channels} ch, 1/{s.scale})' for s in b.latents)}",
        "input: display-encoded RGB" + (f" + geometry planes ({', '.join(b.geometry)}): panoramas are told "
                                        "each row's latitude" if b.geometry else ""),
        "light stage: " + (f"fitted on {b.light.fitted_on} photographed panoramas, adds "
                           f"{b.light.min_stops:g} to {b.light.max_stops:g} stops to the clipped light of panoramas"
                           + (f", nothing under {b.light.min_stops:g}" if b.light.min_stops > 0 else "")
                           + " (--no-light turns it off)" if b.light else
                           "none (panoramas get the flow's output alone)"),
        f"large photos: the flow runs on a reduction where clipped areas are over {b.flow_scale.depth_px:g} px deep, "
        f"never below {b.flow_scale.photo_side} px (photos) or {b.flow_scale.panorama_width} px wide (panoramas) "
        f"(--full-resolution turns it off)",
        f"training data: {_training_summary(m.get('training'))}",
        f"scores: {_scores_summary(m.get('scores'))}",
        f"licence: {m.get('licence', 'not stated')}",
        "backends:",
    ]
    for name, device, ok, why in available_backends():
        lines.append(f"  {name:<12} {device:<28} {'available' if ok else 'unavailable: ' + why}")
    print("\n".join(lines))
    return 0


def _training_summary(d) -> str:
    """Steps, images and the last validation of a bundle's ``training`` record, in one line (the
    record itself lists every image file and the recent validations: see model.json)."""
    if not isinstance(d, dict) or not d:
        return _summary(d)
    parts = []
    if isinstance(d.get("steps"), int):
        parts.append(f"{d['steps']:,} steps")
    if isinstance(d.get("data"), list):
        parts.append(f"{len(d['data'])} images")
    history = d.get("history")
    last = history[-1] if isinstance(history, list) and history and isinstance(history[-1], dict) else {}
    if isinstance(last.get("val_nll_bpd"), (int, float)):
        parts.append(f"last validation NLL {last['val_nll_bpd']:.3f} bits/dim")
    if isinstance(last.get("val_pu21_psnr"), (int, float)):
        parts.append(f"PU21 {last['val_pu21_psnr']:.2f} dB")
    return ", ".join(parts) or _summary(d)


_SCORE_NAMES = (("pu21_psnr", "PU21 {:.2f} dB"), ("highlight_stops", "highlight error {:.3f} stops"),
                ("all_stops", "all-pixel {:.3f} stops"), ("irradiance_rel_error", "irradiance {:.3f} relative"),
                ("power_stops", "power {:.3f} stops"))


def _scores_summary(d) -> str:
    """The model's held-out scores beside the naive inverse's, and where they come from (model.json
    has the other baselines and the exact command)."""
    if not isinstance(d, dict) or not isinstance(d.get("model"), dict):
        return _summary(d)

    def one(scores) -> str:
        return ", ".join(fmt.format(scores[k]) for k, fmt in _SCORE_NAMES if isinstance(scores.get(k), (int, float)))

    line = f"{one(d['model'])}"
    if isinstance(d.get("naive_inverse"), dict):
        line += f" (naive inverse: {one(d['naive_inverse'])})"
    if d.get("split"):
        line += f"; held out: {d['split']}"
    return line


def _summary(d) -> str:
    if not d:
        return "not recorded"
    if isinstance(d, dict):
        return "; ".join(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in d.items())
    return str(d)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
