"""Evaluate a model bundle (or a training checkpoint) against classic baselines on held-out HDR images.

    python -m training.evaluate --model engine/models/default --data /path/to/hdr \
        --split training/splits/val.txt --json eval.json --markdown eval.md

What it does, and why:

* Reads the HDR images (.exr/.hdr) of the data folders (only the names in ``--split`` if given).
* Turns each into *sources*: a photo stays a photo; a 2:1 panorama is evaluated as the full
  panorama (what a user lights a scene with) and as two rectilinear photos cut from it, one aimed
  at the brightest direction (sun/lamp in frame) and one looking the other way, because users
  feed both backplates and 360 panoramas. Sources are area-downscaled to ``--max-width``.
* Photographs every source with ``training.camera`` under fixed, seeded camera conditions: 3 %
  and 12 % clipped pixels; sRGB, gamma and filmic response curves; lossless (PNG) and JPEG
  quality 85. ``--conditions standard`` (default) uses a balanced fraction of the grid (4
  conditions: every clip level, codec and the sRGB curve twice); ``full`` uses all 12. The same
  condition always gets the same random camera, so runs are comparable across models.
* Runs the model through the engine -- the exact code path users get (bundle -> backend ->
  ``convert_array``) -- and the baselines of ``training.baselines`` on every input, and scores
  them with ``training.metrics`` against the camera's ground truth (linear, clip point = 1.0):
  PU21-PSNR, highlight error in stops (clipped pixels), all-pixel error in stops, and for
  panoramas the diffuse-irradiance error and total-power error. Methods with an arbitrary output
  scale are aligned first (``metrics.align_scale``); the others are scored as they are, and
  log2 of their alignment factor is reported as an exposure-bias diagnostic.
* Prints a Markdown report (averages per method, overall and per input kind, plus a breakdown
  by camera condition) and optionally writes it and a JSON file with every per-input number.

Exit status: 0 done, 2 bad input or usage (one line on stderr naming the file), 1 internal error.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io import atomic_write, read_hdr
from engine.scale import upsample
from engine.sphere import area_resize

from . import metrics
from .baselines import BASELINES
from .camera import is_panorama, perspective_crop, synthesize
from .data import HDRImage, find_hdr_files, read_split

# --------------------------------------------------------------------------------------------
# Camera conditions
# --------------------------------------------------------------------------------------------

CLIP_LEVELS = (0.03, 0.12)
CURVES = ("srgb", "gamma", "filmic")
CODECS = {"png": None, "jpeg85": 85}


@dataclass(frozen=True)
class Condition:
    clip_fraction: float
    curve: str
    codec: str  # key of CODECS

    @property
    def key(self) -> str:
        return f"clip{round(self.clip_fraction * 100)}%/{self.curve}/{self.codec}"

    @property
    def jpeg_quality(self) -> int | None:
        return CODECS[self.codec]


STANDARD_CONDITIONS = (
    Condition(0.03, "srgb", "png"),
    Condition(0.12, "srgb", "jpeg85"),
    Condition(0.12, "gamma", "png"),
    Condition(0.03, "filmic", "jpeg85"),
)
FULL_CONDITIONS = tuple(Condition(c, k, q) for c, k, q in itertools.product(CLIP_LEVELS, CURVES, CODECS))

# --------------------------------------------------------------------------------------------
# Sources: photos and panoramas (+ perspective photos cut from panoramas)
# --------------------------------------------------------------------------------------------

CROP_FOV_DEG = 90.0
CROP_ASPECT = 2.0 / 3.0  # height / width, a 3:2 landscape photo


@dataclass
class Source:
    image: str
    view: str   # "full" (a photo file), "pano", "crop_bright", "crop_opposite"
    kind: str   # "photo" or "panorama"
    hdr: np.ndarray  # float32 HxWx3 linear


def downscale_to_width(img: np.ndarray, max_width: int) -> np.ndarray:
    h, w = img.shape[:2]
    if w <= max_width:
        return np.asarray(img, dtype=np.float32)
    out_h = max(1, int(round(h * max_width / w)))
    return area_resize(img, out_h, max_width)


def brightest_direction(pano: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees of the brightest region of an equirectangular panorama.

    Found on a 64 x 32 area-averaged copy, so one hot pixel does not win over a sun disc.
    Same convention as ``camera.perspective_crop`` (yaw 0 = centre column, pitch + = up).
    """
    small = metrics.luminance(area_resize(pano, 32, 64))
    i, j = np.unravel_index(int(np.argmax(small)), small.shape)
    yaw = (j + 0.5) / 64 * 360.0 - 180.0
    pitch = 90.0 - (i + 0.5) / 32 * 180.0
    return float(yaw), float(pitch)


def make_sources(name: str, pixels: np.ndarray, panorama: bool, max_width: int, upscale: int = 1) -> list[Source]:
    """The evaluation views of one HDR image (see module docstring). With ``upscale`` > 1 every
    view is made that many times larger (crops rendered finer, the rest upsampled bilinearly):
    the photos users shoot are far larger than the data's views, and the flow's window is not."""
    def larger(img: np.ndarray) -> np.ndarray:
        if upscale == 1:
            return img
        h, w = img.shape[:2]
        return upsample(img, h * upscale, w * upscale)

    if not panorama:
        return [Source(name, "full", "photo", larger(downscale_to_width(pixels, max_width)))]
    sources = [Source(name, "pano", "panorama", larger(downscale_to_width(pixels, max_width)))]
    w = pixels.shape[1]
    # Crop at about the panorama's own angular resolution (no upsampling blur), <= max_width.
    out_w = int(min(max_width, max(64, 8 * round(w * CROP_FOV_DEG / 360.0 / 8)))) * upscale
    out_h = max(8, 8 * round(out_w * CROP_ASPECT / 8))
    yaw, pitch = brightest_direction(pixels)
    pitch = float(np.clip(pitch, -45.0, 60.0))  # keep some horizon in frame, like a real photo
    for view, y, p in (("crop_bright", yaw, pitch), ("crop_opposite", yaw + 180.0, 0.0)):
        y = (y + 180.0) % 360.0 - 180.0
        crop = perspective_crop(pixels, y, p, CROP_FOV_DEG, out_h, out_w)
        sources.append(Source(name, view, "photo", np.ascontiguousarray(crop, dtype=np.float32)))
    return sources


def input_seed(base_seed: int, source: Source, condition: Condition) -> list[int]:
    """Deterministic per-input seed: stable across runs, machines, and condition sets."""
    return [int(base_seed), zlib.crc32(source.image.encode()), zlib.crc32(source.view.encode()),
            zlib.crc32(condition.key.encode())]


def photograph(source: Source, condition: Condition, base_seed: int):
    """The evaluation's photo of one source under one camera condition (``camera.synthesize``
    seeded by ``input_seed``): every analysis that draws it this way sees the same inputs."""
    return synthesize(source.hdr, np.random.default_rng(input_seed(base_seed, source, condition)),
                      clip_fraction=condition.clip_fraction, curve=condition.curve,
                      jpeg_quality=condition.jpeg_quality)


# --------------------------------------------------------------------------------------------
# The model, through the engine
# --------------------------------------------------------------------------------------------

class ModelRunner:
    """Runs a model bundle exactly as users do: ``load_bundle`` -> backend -> ``convert_array``.

    A training checkpoint (a folder with model.safetensors) is first exported to a temporary
    bundle with ``training.export.export_bundle``, so checkpoints and shipped bundles are judged
    by the same code path.
    """

    def __init__(self, path: str | Path, temperature: float | None, samples: int, seed: int,
                 backend: str = "onnxruntime", light: bool = True, full_resolution: bool = False):
        path = Path(path)
        self._tmp: tempfile.TemporaryDirectory | None = None
        if not path.exists():
            raise InputError(f"{path}: model not found")
        if (path / "model.json").is_file():
            bundle_dir = path
            self.source = "bundle"
        elif (path / "model.safetensors").is_file():
            from .export import export_bundle

            self._tmp = tempfile.TemporaryDirectory(prefix="hdrcnf-eval-")
            bundle_dir = Path(self._tmp.name) / "bundle"
            print(f"exporting checkpoint {path} to a temporary bundle ...", file=sys.stderr)
            try:
                export_bundle(path, bundle_dir)
            except InputError:
                raise
            except Exception as exc:  # an unreadable checkpoint is the user's input, not our bug
                self.close()
                msg = " ".join(str(exc).split())
                raise InputError(f"{path}: cannot export this checkpoint: {type(exc).__name__}: {msg}") from None
            self.source = "checkpoint"
        else:
            raise InputError(f"{path}: not a model bundle (no model.json) or training checkpoint "
                             f"(no model.safetensors)")
        # onnxruntime is imported only when a model is evaluated (baseline-only runs skip it).
        from engine.backends import create_backend
        from engine.bundle import load_bundle
        from engine.convert import ConvertOptions, convert_array

        try:
            self.bundle = load_bundle(bundle_dir)
            self.backend = create_backend(self.bundle, backend)
        except BaseException:
            self.close()
            raise
        self.path = str(path)
        self.samples, self.seed, self.temperature = int(samples), int(seed), temperature
        self.light = bool(light)
        self.full_resolution = bool(full_resolution)
        self._convert, self._options = convert_array, ConvertOptions

    @property
    def name(self) -> str:
        return f"{self.bundle.name} {self.bundle.version}"

    @property
    def light_stage(self) -> bool:
        """Whether panoramas get the bundle's light stage (engine.light): it has one and it is on."""
        return self.light and self.bundle.light is not None

    @property
    def effective_temperature(self) -> float:
        return float(self.bundle.default_temperature if self.temperature is None else self.temperature)

    def __call__(self, ldr_uint8: np.ndarray, panorama: bool) -> np.ndarray:
        """8-bit LDR -> linear HDR (clip point 1.0), the engine's full pipeline (tiles, wrap)."""
        ldr = np.ascontiguousarray(ldr_uint8, dtype=np.float32) / np.float32(255.0)
        opts = self._options(temperature=self.temperature, seed=self.seed, samples=self.samples,
                             panorama="on" if panorama else "off", light=self.light,
                             full_resolution=self.full_resolution)
        return np.asarray(self._convert(ldr, self.backend, self.bundle, opts).hdr, dtype=np.float32)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

METRICS = ("pu21_psnr", "highlight_stops", "all_stops", "irradiance_rel_error", "power_stops")
METRIC_HEADERS = {
    "pu21_psnr": "PU21-PSNR dB ↑",
    "highlight_stops": "highlight err (stops) ↓",
    "all_stops": "all-pixel err (stops) ↓",
    "irradiance_rel_error": "pano irradiance rel. err ↓",
    "power_stops": "pano power err (stops) ↓",
}
PSNR_CAP = 100.0  # identical images have infinite PSNR; cap so averages stay finite


def score(pred: np.ndarray, target: np.ndarray, clipped: np.ndarray, well_exposed: np.ndarray,
          panorama: bool, align: bool) -> dict:
    """All metrics of one prediction. ``align``: rescale by ``align_scale`` first."""
    finite = np.isfinite(pred)
    nonfinite = int((~finite.all(axis=-1)).sum())
    pred = np.nan_to_num(pred, nan=0.0, posinf=65504.0, neginf=0.0)
    scale = metrics.align_scale(pred, target, well_exposed)
    if align:
        pred = pred * np.float32(scale)
    out = {
        "pu21_psnr": min(metrics.pu21_psnr(pred, target), PSNR_CAP),
        "highlight_stops": metrics.highlight_stops(pred, target, clipped),
        "all_stops": metrics.all_stops(pred, target),
        "irradiance_rel_error": metrics.irradiance_rel_error(pred, target) if panorama else None,
        "power_stops": metrics.total_power_stops(pred, target) if panorama else None,
        "aligned": bool(align),
        "log2_scale": float(np.log2(scale)),
        "nonfinite_pixels": nonfinite,
    }
    return out


def _mean(values) -> tuple[float | None, int]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return (float(np.mean(vals)) if vals else None), len(vals)


def aggregate(inputs: list[dict], methods: list[str]) -> dict:
    """Averages per method: over all inputs, per kind, and per camera condition factor."""
    def block(rows):
        res = {}
        for m in methods:
            entry = {"n_inputs": len(rows)}
            for k in METRICS + ("log2_scale",):
                entry[k], entry[f"n_{k}"] = _mean(r["methods"][m][k] for r in rows if m in r["methods"])
            entry["seconds_mean"], _ = _mean(r["methods"][m]["seconds"] for r in rows if m in r["methods"])
            res[m] = entry
        return res

    out = {"all": block(inputs)}
    for kind in ("photo", "panorama"):
        rows = [r for r in inputs if r["kind"] == kind]
        if rows:
            out[kind] = block(rows)
    by = {}
    for factor, values in (("clip_fraction", CLIP_LEVELS), ("curve", CURVES), ("codec", tuple(CODECS))):
        for v in values:
            rows = [r for r in inputs if r[factor] == v]
            if rows:
                by[f"{factor}={v}"] = block(rows)
    out["by_condition"] = by
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def _fmt(v, digits=2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _table(block: dict, methods: list[str], labels: dict, columns=METRICS) -> list[str]:
    lines = ["| method | " + " | ".join(METRIC_HEADERS[c] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for m in methods:
        e = block[m]
        cells = [_fmt(e[c], 2 if c == "pu21_psnr" else 3) for c in columns]
        lines.append(f"| {labels[m]} | " + " | ".join(cells) + " |")
    return lines


def _condition_label(key: str) -> str:
    factor, value = key.split("=", 1)
    if factor == "clip_fraction":
        return f"clip {round(float(value) * 100)}%"
    return f"{factor} {value}"


def markdown_report(result: dict) -> str:
    cfg, avg = result["config"], result["averages"]
    methods, labels = result["methods"], result["method_labels"]
    n_in = len(result["inputs"])
    kinds = {k: sum(1 for r in result["inputs"] if r["kind"] == k) for k in ("photo", "panorama")}
    lines = ["## HDR-CNF evaluation", ""]
    model = result.get("model")
    if model:
        lines.append(f"Model: **{model['name']}** ({model['source']} `{model['path']}`), temperature "
                     f"{_fmt(model['temperature'])}, samples {model['samples']}, seed {cfg['seed']}.")
    n_img = len(result["images"])
    lines.append(f"{n_img} image{'s' if n_img != 1 else ''} → {n_in} inputs ({kinds['photo']} photo, {kinds['panorama']} "
                 f"panorama); max width {cfg['max_width']} px"
                 + (f", then {cfg['upscale']}x larger" if cfg.get("upscale") else "") + f"; conditions `{cfg['conditions']}`: "
                 + ", ".join(f"`{c}`" for c in cfg["condition_keys"]) + ".")
    lines.append("Ground truth: the camera model's linear target (LDR clip point = 1.0); PU21 with the clip "
                 "point at 200 cd/m². Methods marked *aligned* have an arbitrary output scale and are "
                 "rescaled by the median ratio on well-exposed pixels; all others are scored as produced.")
    lines += ["", f"### All inputs (n={n_in})", ""] + _table(avg["all"], methods, labels)
    for kind, title in (("photo", "Photos"), ("panorama", "Panoramas")):
        if kind in avg:
            cols = METRICS if kind == "panorama" else METRICS[:3]
            lines += ["", f"### {title} (n={kinds[kind]})", ""] + _table(avg[kind], methods, labels, cols)
    by = avg.get("by_condition", {})
    if by:
        keys = list(by)
        for metric in ("pu21_psnr", "highlight_stops"):
            lines += ["", f"### By camera condition: {METRIC_HEADERS[metric]}", "",
                      "| method | " + " | ".join(_condition_label(k) for k in keys) + " |",
                      "|---|" + "---:|" * len(keys)]
            for m in methods:
                cells = [_fmt(by[k][m][metric], 2 if metric == "pu21_psnr" else 3) for k in keys]
                lines.append(f"| {labels[m]} | " + " | ".join(cells) + " |")
    diag = [m for m in methods if avg["all"][m]["log2_scale"] is not None]
    if diag:
        lines += ["", "Exposure bias (mean log2 of the scale that would align each method on well-exposed "
                  "pixels; 0 = unbiased): " + ", ".join(f"{labels[m]} {avg['all'][m]['log2_scale']:+.2f}"
                                                          for m in diag) + "."]
        secs = ", ".join(f"{labels[m]} {avg['all'][m]['seconds_mean']:.2f} s" for m in methods
                         if avg["all"][m]["seconds_mean"] is not None)
        lines.append(f"Mean time per input: {secs}.")
    if result.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{s['file']} ({s['reason']})" for s in result["skipped"])]
    return "\n".join(lines) + "\n"


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_text(path: str | Path, text: str) -> None:
    """Write a report atomically (engine.io.atomic_write): never a half-written file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: output folder {path.parent} does not exist")
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def load_eval_images(data_dirs: list[str], split: str | None) -> tuple[list[HDRImage], list[dict]]:
    """Read the HDR images to evaluate at full resolution (the perspective crops need it);
    corrupt files are skipped with a warning and listed in the report.

    A folder with no readable image is an InputError naming the folder -- or the file, when the
    only candidates were unreadable -- so the user sees one line and exit status 2.
    """
    include = None
    if split is not None:
        if not Path(split).is_file():
            raise InputError(f"{split}: split file not found")
        include = read_split(split)
        if not include:
            raise InputError(f"{split}: split file lists no image names")
    files = [f for f in find_hdr_files(data_dirs) if include is None or f.name in include]
    images, skipped = [], []
    for path in files:
        try:
            px = np.asarray(read_hdr(path), dtype=np.float32)
            if px.ndim != 3 or px.shape[2] != 3 or min(px.shape[:2]) < 8:
                raise InputError(f"{path}: unusable image of shape {px.shape}")
        except InputError as exc:
            reason = str(exc)
            reason = reason[len(str(path)) + 2:] if reason.startswith(f"{path}: ") else reason
            print(f"warning: skipping {path}: {reason}", file=sys.stderr)
            skipped.append({"file": str(path), "reason": reason})
            continue
        px = np.nan_to_num(np.maximum(px, 0.0), nan=0.0, posinf=65504.0)
        images.append(HDRImage(path.name, np.ascontiguousarray(px), is_panorama(*px.shape[:2])))
    if include is not None:
        found = {f.name for f in files}
        for name in sorted(include - found):
            print(f"warning: {split}: {name} is not in {', '.join(data_dirs)}", file=sys.stderr)
    if not images:
        if skipped:
            more = f" (and {len(skipped) - 1} more unreadable files)" if len(skipped) > 1 else ""
            raise InputError(f"{skipped[0]['file']}: {skipped[0]['reason']}{more}; no readable HDR images left")
        what = f" listed in {split}" if include is not None else ""
        raise InputError(f"{', '.join(data_dirs)}: no HDR images (.exr/.hdr){what}")
    return images, skipped


def run(args: argparse.Namespace) -> dict:
    conditions = STANDARD_CONDITIONS if args.conditions == "standard" else FULL_CONDITIONS
    images, skipped = load_eval_images(args.data, args.split)
    if args.max_images:
        images = images[: args.max_images]

    runner = (ModelRunner(args.model, args.temperature, args.samples, args.seed, args.backend, light=args.light,
                          full_resolution=args.full_resolution)
              if args.model else None)
    methods = (["model"] if runner else []) + list(BASELINES)
    labels = {name: b.label for name, b in BASELINES.items()}
    if runner:
        stage = ", light stage" if runner.light_stage else ""
        full = ", full resolution" if runner.full_resolution else ""
        labels["model"] = f"{runner.name} (T={_fmt(runner.effective_temperature)}{stage}{full})"

    # Sources are made per image as we go, so memory holds one image's views at a time.
    sources = (s for im in images for s in make_sources(im.name, im.pixels, im.panorama, args.max_width, args.upscale))
    total = sum(3 if im.panorama else 1 for im in images) * len(conditions)
    inputs, done = [], 0
    try:
        for src in sources:
            for cond in conditions:
                done += 1
                sample = photograph(src, cond, args.seed)
                pano = src.kind == "panorama"
                well = metrics.well_exposed_mask(sample.ldr)
                row = {"image": src.image, "view": src.view, "kind": src.kind, "condition": cond.key,
                       "clip_fraction": cond.clip_fraction, "curve": cond.curve, "codec": cond.codec,
                       "width": int(sample.ldr.shape[1]), "height": int(sample.ldr.shape[0]),
                       "clipped_fraction": float(sample.clipped.mean()),
                       "peak_stops": float(np.log2(max(float(metrics.luminance(sample.target).max()), 1e-12))),
                       "methods": {}}
                for m in methods:
                    t0 = time.perf_counter()
                    if m == "model":
                        pred = runner(sample.ldr, pano)
                    else:
                        pred = BASELINES[m].run(sample.ldr, panorama=pano)
                    dt = time.perf_counter() - t0
                    if pred.shape != sample.target.shape:
                        raise RuntimeError(f"{m} returned shape {pred.shape} for an input of {sample.target.shape}")
                    align = m != "model" and BASELINES[m].arbitrary_scale
                    row["methods"][m] = {**score(pred, sample.target, sample.clipped, well, pano, align),
                                         "seconds": dt}
                inputs.append(row)
                if not args.quiet:
                    summary = ", ".join(f"{m} {row['methods'][m]['pu21_psnr']:.1f}" for m in methods)
                    print(f"[{done}/{total}] {src.image} {src.view} {cond.key}: PU21-PSNR {summary}",
                          file=sys.stderr)
    finally:
        if runner:
            runner.close()

    result = {
        "format": "hdrcnf-eval", "format_version": 1,
        "config": {"data": [str(d) for d in args.data], "split": args.split, "max_width": args.max_width,
                   "seed": args.seed, "conditions": args.conditions,
                   "condition_keys": [c.key for c in conditions], "pu21_clip_cd": 200.0,
                   "crop_fov_deg": CROP_FOV_DEG, **({"upscale": args.upscale} if args.upscale > 1 else {})},
        "model": None if not runner else {
            "name": runner.name, "path": runner.path, "source": runner.source,
            "temperature": runner.effective_temperature, "samples": runner.samples,
            "light_stage": runner.light_stage, "full_resolution": runner.full_resolution},
        "methods": methods, "method_labels": labels,
        "baselines": {n: {"label": b.label, "reference": b.reference, "aligned": b.arbitrary_scale}
                      for n, b in BASELINES.items()},
        "images": [im.name for im in images], "skipped": skipped,
        "inputs": inputs,
    }
    result["averages"] = aggregate(inputs, methods)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model bundle folder (model.json) or training checkpoint folder "
                                   "(model.safetensors); omit to score the baselines only")
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder of HDR images (.exr/.hdr); repeatable")
    p.add_argument("--split", metavar="FILE", help="text file with one image file name per line (e.g. "
                                                   "training/splits/val.txt); only those are evaluated")
    p.add_argument("--max-width", type=int, default=768, help="downscale (area average) to at most this width")
    p.add_argument("--upscale", type=int, default=1, metavar="S",
                   help="make every input S times larger than the data's views (photos as users shoot "
                        "them: MODEL_CARD 'Large photos'); default 1")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the bundle's)")
    p.add_argument("--samples", type=int, default=1, help="flow samples averaged per input")
    p.add_argument("--seed", type=int, default=0, help="seed for the cameras and the model's latents")
    p.add_argument("--conditions", choices=("standard", "full"), default="standard",
                   help="camera conditions: a balanced set of 4 (default) or the full 2x3x2 grid of 12")
    p.add_argument("--no-light", dest="light", action="store_false",
                   help="panoramas: score the flow alone, without the bundle's light stage (engine.light)")
    p.add_argument("--full-resolution", action="store_true",
                   help="run the flow at each input's own size (hdrcnf convert --full-resolution)")
    p.add_argument("--backend", default="onnxruntime", help="engine backend for the model (default onnxruntime)")
    p.add_argument("--max-images", type=int, default=0, help="evaluate only the first N images (0 = all)")
    p.add_argument("--json", metavar="FILE", help="write all numbers (per input and averages) as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write the Markdown report to FILE")
    p.add_argument("--quiet", action="store_true", help="no per-input progress on stderr")
    p.add_argument("--record", action="store_true",
                   help="store the averages as the --model bundle's 'scores' (what hdrcnf info shows); "
                        "model.onnx is not touched")
    return p


def record_scores(bundle_dir: str | Path, result: dict, argv: list[str]) -> None:
    """Store the all-input averages in the bundle's model.json ``scores``, so ``hdrcnf info``
    shows the numbers of the evaluation that produced them, and says whether the light stage
    was in it."""
    from engine.bundle import load_bundle, write_bundle

    bundle = load_bundle(bundle_dir)
    averages = result["averages"]["all"]
    cfg = result["config"]
    scores = {
        "evaluated_with": " ".join(["python -m training.evaluate", *(str(a) for a in argv if a != "--record")]),
        "split": f"{cfg['split'] or ', '.join(cfg['data'])} ({len(result['images'])} images, "
                 f"{len(result['inputs'])} inputs)",
        **{m: {k: round(float(v[k]), 4) for k in METRICS if v.get(k) is not None} for m, v in averages.items()},
        "light_stage": "included" if result["model"]["light_stage"] else "off (--no-light)",
    }
    write_bundle(bundle.path, bundle.onnx_path, {**bundle.meta, "scores": scores})
    print(f"scores recorded in {bundle.path / 'model.json'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.upscale < 1:
            raise InputError(f"--upscale {args.upscale}: must be at least 1")
        if args.max_width < 16:
            raise InputError(f"--max-width {args.max_width}: must be at least 16")
        if args.samples < 1:
            raise InputError(f"--samples {args.samples}: must be at least 1")
        if args.temperature is not None and not (0.0 <= args.temperature <= 10.0):
            raise InputError(f"--temperature {args.temperature}: must be between 0 and 10")
        for out in (args.json, args.markdown):  # fail before the long run, not after it
            if out and not Path(out).parent.is_dir():
                raise InputError(f"{out}: output folder {Path(out).parent} does not exist")
        if args.record and not (args.model and (Path(args.model) / "model.json").is_file()):
            raise InputError(f"--record stores scores in a model bundle: {args.model} has no model.json")
        result = run(args)
        report = markdown_report(result)
        if args.json:
            _write_text(args.json, json.dumps(_json_safe(result), indent=1) + "\n")
        if args.markdown:
            _write_text(args.markdown, report)
        if args.record:
            record_scores(args.model, result, argv if argv is not None else sys.argv[1:])
        sys.stdout.write(report)
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, never a traceback (HDRCNF_DEBUG=1 shows it)
        if os.environ.get("HDRCNF_DEBUG"):
            raise
        msg = " ".join(str(exc).split())
        print(f"internal error: {type(exc).__name__}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
