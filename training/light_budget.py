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
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from engine.errors import InputError

from . import metrics
from .camera import synthesize
from .evaluate import STANDARD_CONDITIONS, ModelRunner, _write_text, input_seed, load_eval_images, make_sources

PLACEMENTS = ("at_truth", "at_deepest", "spread")


def deepest_point(mask: np.ndarray) -> tuple[int, int]:
    """Pixel of ``mask`` farthest (4-neighbour erosion steps) from any pixel outside it; columns
    wrap around as in a panorama, rows do not. Ties go to the first pixel in reading order."""
    if not mask.any():
        raise ValueError("empty mask")
    cur = mask.copy()
    while True:
        up = np.vstack([np.zeros((1, cur.shape[1]), bool), cur[:-1]])
        down = np.vstack([cur[1:], np.zeros((1, cur.shape[1]), bool)])
        nxt = cur & up & down & np.roll(cur, 1, axis=1) & np.roll(cur, -1, axis=1)
        if not nxt.any():
            y, x = np.argwhere(cur)[0]
            return int(y), int(x)
        cur = nxt


def restore_light(pred: np.ndarray, target: np.ndarray, clipped: np.ndarray, placement: str) -> np.ndarray:
    """``pred`` plus the clipped light it misses (RGB, weighted by solid angle), placed as named."""
    h, w = pred.shape[:2]
    sa = np.broadcast_to(metrics.equirect_solid_angles(h, w)[:, None], (h, w))
    missing = np.maximum(((target - pred) * (clipped * sa)[..., None]).sum(axis=(0, 1)), 0.0)
    out = pred.astype(np.float64).copy()
    if placement == "spread":
        out[clipped] += missing / sa[clipped].sum()
        return out.astype(np.float32)
    if placement == "at_truth":
        y, x = np.unravel_index(np.argmax(metrics.luminance(target)), (h, w))
    elif placement == "at_deepest":
        y, x = deepest_point(clipped)
    else:
        raise ValueError(f"unknown placement {placement!r}")
    out[y, x] += missing / sa[y, x]
    return out.astype(np.float32)


def missing_stops(pred: np.ndarray, target: np.ndarray, clipped: np.ndarray) -> float:
    """log2(true / predicted light in the clipped pixels), solid-angle weighted."""
    sa = metrics.equirect_solid_angles(*pred.shape[:2])[:, None]
    t = float((metrics.luminance(target) * sa)[clipped].sum())
    p = float((metrics.luminance(pred) * sa)[clipped].sum())
    return float(np.log2(max(t, 1e-12) / max(p, 1e-12)))


def run(args: argparse.Namespace) -> dict:
    images, _ = load_eval_images(args.data, args.split)
    panos = [im for im in images if im.panorama]
    if not panos:
        raise InputError("no panoramas among the images: the light budget is about panoramas")
    runner = ModelRunner(args.model, args.temperature, 1, args.seed)
    rows = []
    try:
        for im in panos:
            src = make_sources(im.name, im.pixels, True, args.max_width)[0]  # the whole panorama
            for cond in STANDARD_CONDITIONS:
                s = synthesize(src.hdr, np.random.default_rng(input_seed(args.seed, src, cond)),
                               clip_fraction=cond.clip_fraction, curve=cond.curve, jpeg_quality=cond.jpeg_quality)
                pred = runner(s.ldr, True)
                row = {"image": im.name, "condition": cond.key,
                       "model": metrics.irradiance_rel_error(pred, s.target),
                       "missing_stops": missing_stops(pred, s.target, s.clipped)}
                for p in PLACEMENTS:
                    row[p] = metrics.irradiance_rel_error(restore_light(pred, s.target, s.clipped, p), s.target)
                rows.append(row)
    finally:
        runner.close()
    keys = ("model", *PLACEMENTS, "missing_stops")
    return {"model": runner.name, "inputs": rows, "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}}


def report(result: dict) -> str:
    cols = ("model", *PLACEMENTS, "missing_stops")
    lines = [f"Irradiance relative error of {result['model']}, and with the missing clipped light added back",
             "", "| panorama | condition | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
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
