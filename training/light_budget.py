"""How much of a panorama's lighting error is the *amount* of missing light, and how much is *where*?

    python -m training.light_budget --model engine/models/default --data ../shared/data/hdr \
        --split training/splits/val.txt

For every panorama of the split, photographed under the evaluation's standard camera conditions,
the model's output is scored (diffuse-irradiance error, as in ``training.evaluate``) and then
scored again after the light it misses in the clipped pixels (true minus predicted, the one number
an oracle gives it) is added back:

* ``at_truth``: as one point source at the true brightest pixel (right amount, right place);
* ``at_deepest``: at the clipped pixel farthest from any unclipped one, a place a global estimator
  could find from the LDR alone (right amount, guessed place);
* ``spread``: evenly over the clipped pixels (right amount, no place).

If ``at_deepest`` is close to ``at_truth``, what a model has to learn is one number per image
(the light hidden in the clip), not where it is. ``missing_stops`` is that number: log2 of the
true over the predicted clipped light.

``--fit-data DIR`` tests whether that number can be predicted without the truth: a ridge
regression on a few global statistics of the LDR and of the model's output (``light_features``)
is fitted on the panoramas of DIR that are not in the split, and column ``predicted`` adds the
amount it predicts at the deepest clipped pixel. Clipped pixels are read off the LDR (any
channel >= 250), as they would be at inference.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from engine.errors import InputError

from . import metrics
from .camera import synthesize
from .data import read_split
from .evaluate import STANDARD_CONDITIONS, ModelRunner, _write_text, input_seed, load_eval_images, make_sources

PLACEMENTS = ("at_truth", "at_deepest", "spread")
CLIP_CODE = 250          # an 8-bit value at or above this counts as clipped
FEATURES = ("clipped fraction", "log2 share of the predicted light in the clip", "depth of the deepest clipped pixel / height",
            "share of the clip above the horizon", "log2 mean unclipped LDR value", "elevation of the deepest clipped pixel")
RIDGE = 5.0              # regularisation of the amount regression (standardised features)
FIT_SEEDS = 2            # camera draws per condition for the fit


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour erosion; columns wrap around as in a panorama, rows do not."""
    up = np.vstack([np.zeros((1, mask.shape[1]), bool), mask[:-1]])
    down = np.vstack([mask[1:], np.zeros((1, mask.shape[1]), bool)])
    return mask & up & down & np.roll(mask, 1, axis=1) & np.roll(mask, -1, axis=1)


def deepest_point(mask: np.ndarray) -> tuple[int, int, int]:
    """(row, col, depth): the pixel of ``mask`` farthest from any pixel outside it, in erosion
    steps. Ties go to the first pixel in reading order."""
    if not mask.any():
        raise ValueError("empty mask")
    cur, depth = mask.copy(), 1
    while True:
        nxt = _erode(cur)
        if not nxt.any():
            y, x = np.argwhere(cur)[0]
            return int(y), int(x), depth
        cur, depth = nxt, depth + 1


def _solid_angles(h: int, w: int) -> np.ndarray:
    """[H, W] solid angle of each equirectangular pixel."""
    return np.broadcast_to(metrics.equirect_solid_angles(h, w)[:, None], (h, w))


def _with_point(pred: np.ndarray, y: int, x: int, energy: np.ndarray) -> np.ndarray:
    """``pred`` plus RGB ``energy`` (radiance x solid angle) in pixel (y, x)."""
    out = pred.astype(np.float64).copy()
    out[y, x] += energy / _solid_angles(*pred.shape[:2])[y, x]
    return out.astype(np.float32)


def restore_light(pred: np.ndarray, target: np.ndarray, clipped: np.ndarray, placement: str) -> np.ndarray:
    """``pred`` plus the clipped light it misses (RGB, weighted by solid angle), placed as named."""
    sa = _solid_angles(*pred.shape[:2])
    missing = np.maximum(((target - pred) * (clipped * sa)[..., None]).sum(axis=(0, 1)), 0.0)
    if placement == "spread":
        out = pred.astype(np.float64).copy()
        out[clipped] += missing / sa[clipped].sum()
        return out.astype(np.float32)
    if placement == "at_truth":
        y, x = np.unravel_index(np.argmax(metrics.luminance(target)), clipped.shape)
    elif placement == "at_deepest":
        y, x, _ = deepest_point(clipped)
    else:
        raise ValueError(f"unknown placement {placement!r}")
    return _with_point(pred, y, x, missing)


def missing_stops(pred: np.ndarray, target: np.ndarray, clipped: np.ndarray) -> float:
    """log2(true / predicted light in the clipped pixels), solid-angle weighted."""
    sa = _solid_angles(*pred.shape[:2])
    t = float((metrics.luminance(target) * sa)[clipped].sum())
    p = float((metrics.luminance(pred) * sa)[clipped].sum())
    return float(np.log2(max(t, 1e-12) / max(p, 1e-12)))


def light_features(ldr: np.ndarray, pred: np.ndarray, clipped: np.ndarray) -> np.ndarray:
    """The global statistics named in FEATURES, for an 8-bit panorama, the model's output and
    the clipped mask (not empty)."""
    h, w = clipped.shape
    sa = _solid_angles(h, w)
    light = metrics.luminance(pred) * sa
    y, _, depth = deepest_point(clipped)
    unclipped = ldr[~clipped]
    return np.array([
        clipped.mean(),
        np.log2(light[clipped].sum() / max(light.sum(), 1e-12) + 1e-6),
        depth / h,
        (clipped * sa)[: h // 2].sum() / (clipped * sa).sum(),
        np.log2((unclipped.mean() / 255.0 if unclipped.size else 1.0) + 1e-3),
        1.0 - y / h,
    ])


def fit_amount(features: np.ndarray, stops: np.ndarray, ridge: float = RIDGE):
    """Ridge regression of missing stops on standardised features; returns a predictor."""
    mu, sd = features.mean(axis=0), features.std(axis=0) + 1e-9
    z = np.c_[np.ones(len(features)), (features - mu) / sd]
    w = np.linalg.solve(z.T @ z + ridge * np.diag([0.0] + [1.0] * features.shape[1]), z.T @ stops)
    return lambda f: float(np.r_[1.0, (np.asarray(f) - mu) / sd] @ w)


def add_predicted_light(pred: np.ndarray, clipped: np.ndarray, stops: float) -> np.ndarray:
    """``pred`` with its clipped light raised by ``stops`` (never lowered), the extra light put
    at the deepest clipped pixel."""
    sa = _solid_angles(*clipped.shape)
    extra = (pred * (clipped * sa)[..., None]).sum(axis=(0, 1)) * max(2.0 ** stops - 1.0, 0.0)
    y, x, _ = deepest_point(clipped)
    return _with_point(pred, y, x, extra)


def _photographed(images, seeds: int, max_width: int, base_seed: int):
    """(image name, condition, camera sample) for every panorama, condition and seed; seed
    ``base_seed`` draws the same cameras as ``training.evaluate --seed base_seed``."""
    for im in images:
        if not im.panorama:
            continue
        src = make_sources(im.name, im.pixels, True, max_width)[0]  # the whole panorama
        for seed in range(base_seed, base_seed + seeds):
            for cond in STANDARD_CONDITIONS:
                yield im.name, cond, synthesize(src.hdr, np.random.default_rng(input_seed(seed, src, cond)),
                                                clip_fraction=cond.clip_fraction, curve=cond.curve,
                                                jpeg_quality=cond.jpeg_quality)


def _fit(runner, args) -> tuple:
    images, _ = load_eval_images(args.fit_data, None)
    held_out = read_split(args.split) if args.split else set()
    images = [im for im in images if im.name not in held_out]
    feats, stops = [], []
    for _, _, s in _photographed(images, FIT_SEEDS, args.max_width, args.seed):
        clipped = s.ldr.max(axis=-1) >= CLIP_CODE
        if clipped.any():
            pred = runner(s.ldr, True)
            feats.append(light_features(s.ldr, pred, clipped))
            stops.append(missing_stops(pred, s.target, clipped))
    if len(stops) < 2 * len(FEATURES):
        raise InputError(f"{', '.join(args.fit_data)}: too few clipped panoramas outside the split to fit on ({len(stops)})")
    return fit_amount(np.array(feats), np.array(stops)), len(stops)


def run(args: argparse.Namespace) -> dict:
    images, _ = load_eval_images(args.data, args.split)
    if not any(im.panorama for im in images):
        raise InputError("no panoramas among the images: the light budget is about panoramas")
    runner = ModelRunner(args.model, args.temperature, 1, args.seed)
    rows, fitted = [], None
    try:
        predict, fitted = _fit(runner, args) if args.fit_data else (None, None)
        for name, cond, s in _photographed(images, 1, args.max_width, args.seed):
            clipped = s.ldr.max(axis=-1) >= CLIP_CODE
            if not clipped.any():
                continue
            pred = runner(s.ldr, True)
            row = {"image": name, "condition": cond.key,
                   "model": metrics.irradiance_rel_error(pred, s.target),
                   "missing_stops": missing_stops(pred, s.target, clipped)}
            for p in PLACEMENTS:
                row[p] = metrics.irradiance_rel_error(restore_light(pred, s.target, clipped, p), s.target)
            if predict is not None:
                row["predicted_stops"] = predict(light_features(s.ldr, pred, clipped))
                row["predicted"] = metrics.irradiance_rel_error(
                    add_predicted_light(pred, clipped, row["predicted_stops"]), s.target)
            rows.append(row)
    finally:
        runner.close()
    if not rows:
        raise InputError("no panorama has clipped pixels under these camera conditions: nothing to measure")
    keys = [k for k in ("model", *PLACEMENTS, "predicted", "missing_stops", "predicted_stops") if k in rows[0]]
    return {"model": runner.name, "fitted_on": fitted, "inputs": rows,
            "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}}


def report(result: dict) -> str:
    cols = tuple(result["mean"])
    lines = [f"Irradiance relative error of {result['model']}, and with the missing clipped light added back",
             "", "| panorama | condition | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    if result["fitted_on"]:
        lines[1:1] = ["", f"Amount regression fitted on {result['fitted_on']} photographed panoramas outside the split."]
    for r in result["inputs"]:
        lines.append(f"| {r['image']} | {r['condition']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    lines.append("| **mean** | | " + " | ".join(f"**{result['mean'][c]:.3f}**" for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.light_budget", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model bundle or training checkpoint folder")
    ap.add_argument("--data", action="append", required=True, metavar="DIR", help="folder of HDR images; repeatable")
    ap.add_argument("--split", help="file naming the images to use (e.g. training/splits/val.txt)")
    ap.add_argument("--max-width", type=int, default=768, help="downscale panoramas to at most this width")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the model's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit-data", action="append", metavar="DIR",
                    help="fit the amount regression on the panoramas here that are not in --split; repeatable")
    ap.add_argument("--json", metavar="FILE", help="also write every number as JSON")
    args = ap.parse_args(argv)
    try:
        result = run(args)
        if args.json:
            _write_text(args.json, json.dumps(result, indent=1))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
