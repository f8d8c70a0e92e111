"""How much of a panorama's lighting error is the *amount* of missing light, and how much is *where*?

    python -m training.light_budget --model engine/models/default --data ../shared/data/hdr \
        --split training/splits/val.txt

For every panorama of the split, photographed under the evaluation's standard camera conditions,
the model's output is scored (diffuse-irradiance error, as in ``training.evaluate``) and then
scored again after the light it misses in the clipped pixels (true minus predicted, the one number
an oracle gives it) is added back, as the engine's light stage adds light (``engine.light.deposit``:
a small disc of the clipped pixels around a place):

* ``at_truth``: at the true brightest pixel (right amount, right place);
* ``at_deepest``: at the clipped pixel farthest from any unclipped one, a place a global estimator
  could find from the LDR alone (right amount, guessed place);
* ``at_stage``: where the engine's light stage puts it, the brightest 7.5-degree cell of the
  model's own clipped light (right amount, the stage's place);
* ``spread``: evenly over the clipped pixels (right amount, no place).

If ``at_stage`` is close to ``at_truth``, what a model has to learn is one number per image
(the light hidden in the clip), not where it is. ``missing_stops`` is that number: log2 of the
true over the predicted clipped light.

``--fit-data DIR`` predicts that number without the truth, as the engine's light stage does
(``engine.light``): a ridge regression on global statistics of the LDR and of the model's output
(``engine.light.FEATURES``) is fitted on the panoramas of DIR that are not in the split, and
column ``predicted`` is the output of ``engine.light.restore_light`` with it: the predicted amount
added at the stage's place. Clipped pixels are read off the LDR (any channel >= 250),
as at inference. ``--write`` stores the fitted head in the ``--model`` bundle's model.json, after
which ``hdrcnf convert`` applies it to every panorama (``--no-light`` turns it off). The model is
always run without a head it may already have, so refitting measures the flow alone.

The fit also scores the head on the fit set by leaving one panorama out at a time (the head
fitted on the others), and there chooses its gate (``LightHead.min_stops``: a smaller predicted
amount adds nothing): the gate with the lowest cross-validated irradiance error among those whose
power error is no worse than adding every prediction. The report prints that table. It keeps the
fit set's model outputs in memory for the scoring (about 3.5 MB per photographed panorama at the
default ``--max-width``, 1 GB for the shipped head's 280).

Ship a head:

    python -m training.light_budget --model BUNDLE --data ../shared/data/hdr \
        --split training/splits/val.txt --fit-data ../shared/data/hdr --fit-data STUDIO_LIGHTS --write
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine import light
from engine.bundle import load_bundle, write_bundle
from engine.errors import InputError

from . import metrics
from .data import read_split
from .evaluate import STANDARD_CONDITIONS, ModelRunner, _write_text, load_eval_images, make_sources, photograph

PLACEMENTS = ("at_truth", "at_deepest", "at_stage", "spread")
RIDGE = 5.0              # regularisation of the amount regression (standardised features)
FIT_SEEDS = 2            # camera draws per condition for the fit
STOPS_MARGIN = 1.0       # the head never predicts more than the most the fit saw, plus this
GATES = tuple(0.25 * i for i in range(13))   # candidate gates (min_stops), 0 to 3 stops


def add_missing_light(pred: np.ndarray, target: np.ndarray, ldr: np.ndarray, placement: str) -> np.ndarray:
    """``pred`` plus the clipped light it misses (RGB, weighted by solid angle), placed as named.
    Points are deposited as the engine's light stage deposits them (``engine.light.deposit``)."""
    clipped = light.clipped_mask(ldr)
    sa = light.solid_angles(*pred.shape[:2])
    missing = np.maximum(((target - pred) * (clipped * sa)[..., None]).sum(axis=(0, 1)), 0.0)
    out = pred.astype(np.float32).copy()
    if placement == "spread":
        out[clipped] += (missing / sa[clipped].sum()).astype(np.float32)
        return out
    if placement == "at_truth":
        y, x = np.unravel_index(np.argmax(metrics.luminance(target)), clipped.shape)
    elif placement == "at_deepest":
        y, x, _ = light.deepest_point(clipped)
    elif placement == "at_stage":
        y, x = light.light_centre(light.make_proxy(ldr, pred))
    else:
        raise ValueError(f"unknown placement {placement!r}")
    if missing.max() > 0:
        light.deposit(out, ldr, int(y), int(x), missing, light.PEAK)
    return out


def missing_stops(pred: np.ndarray, target: np.ndarray, clipped: np.ndarray) -> float:
    """log2(true / predicted light in the clipped pixels), solid-angle weighted."""
    t = float(light.luminance_energy(target)[clipped].sum())
    p = float(light.luminance_energy(pred)[clipped].sum())
    return float(np.log2(max(t, 1e-12) / max(p, 1e-12)))


def fit_head(features: np.ndarray, stops: np.ndarray, ridge: float = RIDGE, min_stops: float = 0.0) -> light.LightHead:
    """Ridge regression of missing stops on standardised features, as the engine's light head."""
    mu, sd = features.mean(axis=0), features.std(axis=0) + 1e-9
    z = np.c_[np.ones(len(features)), (features - mu) / sd]
    w = np.linalg.solve(z.T @ z + ridge * np.diag([0.0] + [1.0] * features.shape[1]), z.T @ stops)
    max_stops = round(float(max(stops.max(), 0.0)) + STOPS_MARGIN, 3)
    return light.LightHead(mean=tuple(map(float, mu)), std=tuple(map(float, sd)), weights=tuple(map(float, w)),
                           max_stops=max_stops, fitted_on=len(stops), min_stops=min(float(min_stops), max_stops))


def cross_validated_stops(features: np.ndarray, stops: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each input's predicted stops from a head fitted without its panorama (no gate)."""
    out = np.zeros(len(stops))
    for g in np.unique(groups):
        held = groups == g
        head = fit_head(features[~held], stops[~held])
        out[held] = [head.predict(f) for f in features[held]]
    return out


def choose_gate(cv_stops: np.ndarray, plain: np.ndarray, added: np.ndarray, gates=GATES) -> tuple[float, list]:
    """The gate for a head: ``plain`` and ``added`` are each input's (irradiance error, power
    error) without and with its cross-validated amount. A gate t keeps the amount where it is at
    least t. Returns the gate with the lowest irradiance error among those whose power error is
    no worse than gate 0's, and the table (gate, irradiance, power) it chose from."""
    table = []
    for t in gates:
        keep = (cv_stops >= t)[:, None]
        irr, power = np.where(keep, added, plain).mean(axis=0)
        table.append((float(t), float(irr), float(power)))
    ungated_power = table[0][2]
    allowed = [row for row in table if row[2] <= ungated_power + 1e-9]
    return min(allowed, key=lambda row: (row[1], row[0]))[0], table


def _photographed(images, seeds: int, max_width: int, base_seed: int):
    """(image name, condition, camera sample) for every panorama, condition and seed; seed
    ``base_seed`` draws the same cameras as ``training.evaluate --seed base_seed``."""
    for im in images:
        if not im.panorama:
            continue
        src = make_sources(im.name, im.pixels, True, max_width)[0]  # the whole panorama
        for seed in range(base_seed, base_seed + seeds):
            for cond in STANDARD_CONDITIONS:
                yield im.name, cond, photograph(src, cond, seed)


def _light_errors(out: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    return metrics.irradiance_rel_error(out, target), metrics.total_power_stops(out, target)


def _fit(runner, args) -> tuple[light.LightHead, dict]:
    """The head fitted on every fit panorama, gated by cross-validation, and that table."""
    images, _ = load_eval_images(args.fit_data, None)
    held_out = read_split(args.split) if args.split else set()
    images = [im for im in images if im.name not in held_out]
    feats, stops, groups, preds, plain = [], [], [], [], []
    for name, _, s in _photographed(images, FIT_SEEDS, args.max_width, args.seed):
        clipped = light.clipped_mask(s.ldr)
        if clipped.any():
            pred = runner(s.ldr, True)
            feats.append(light.light_features(light.make_proxy(s.ldr, pred)))
            stops.append(missing_stops(pred, s.target, clipped))
            groups.append(name)
            preds.append(pred)
            plain.append(_light_errors(pred, s.target))
    if len(stops) < 2 * len(light.FEATURES) or len(set(groups)) < 2:
        raise InputError(f"{', '.join(args.fit_data)}: too few clipped panoramas outside the split to fit on ({len(stops)})")
    feats, stops, groups = np.array(feats), np.array(stops), np.array(groups)
    cv = cross_validated_stops(feats, stops, groups)
    # Score each input once with its cross-validated amount added; the photographs are redrawn
    # (the same seeded cameras, cheap) rather than kept, only the model outputs are.
    added, i = [], 0
    for _, _, s in _photographed(images, FIT_SEEDS, args.max_width, args.seed):
        if not light.clipped_mask(s.ldr).any():
            continue
        out = preds[i].copy()
        light.add_light(out, s.ldr, light.make_proxy(s.ldr, out), cv[i], light.PEAK)
        added.append(_light_errors(out, s.target))
        i += 1
    gate, table = choose_gate(cv, np.array(plain), np.array(added))
    flow = np.array(plain).mean(axis=0)
    summary = {"panoramas": len(set(groups)), "inputs": len(stops), "gate": gate,
               "flow_alone": {"irradiance": float(flow[0]), "power": float(flow[1])},
               "gates": [{"min_stops": t, "irradiance": irr, "power": pw} for t, irr, pw in table]}
    return fit_head(feats, stops, min_stops=gate), summary


def run(args: argparse.Namespace) -> dict:
    images, _ = load_eval_images(args.data, args.split)
    if not any(im.panorama for im in images):
        raise InputError("no panoramas among the images: the light budget is about panoramas")
    # The flow alone: a head already in the bundle must not colour what is measured or fitted.
    runner = ModelRunner(args.model, args.temperature, 1, args.seed, light=False)
    rows, head, cv = [], None, None
    try:
        if args.fit_data:
            head, cv = _fit(runner, args)
        for name, cond, s in _photographed(images, 1, args.max_width, args.seed):
            clipped = light.clipped_mask(s.ldr)
            if not clipped.any():
                continue
            pred = runner(s.ldr, True)
            row = {"image": name, "condition": cond.key,
                   "model": metrics.irradiance_rel_error(pred, s.target),
                   "missing_stops": missing_stops(pred, s.target, clipped)}
            for p in PLACEMENTS:
                row[p] = metrics.irradiance_rel_error(add_missing_light(pred, s.target, s.ldr, p), s.target)
            if head is not None:
                out = pred.copy()  # exactly what engine.convert does for a panorama
                row["predicted_stops"] = light.restore_light(out, s.ldr, head, light.PEAK)
                row["predicted"] = metrics.irradiance_rel_error(out, s.target)
            rows.append(row)
    finally:
        runner.close()
    if not rows:
        raise InputError("no panorama has clipped pixels under these camera conditions: nothing to measure")
    keys = [k for k in ("model", *PLACEMENTS, "predicted", "missing_stops", "predicted_stops") if k in rows[0]]
    return {"model": runner.name, "fitted_on": head.fitted_on if head else None, "inputs": rows,
            "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
            "head": head.to_meta() if head else None, "cross_validation": cv}


def report(result: dict) -> str:
    cols = tuple(result["mean"])
    lines = [f"Irradiance relative error of {result['model']}, and with the missing clipped light added back",
             "", "| panorama | condition | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    if result["fitted_on"]:
        lines[1:1] = ["", f"Amount regression fitted on {result['fitted_on']} photographed panoramas outside the split."]
    for r in result["inputs"]:
        lines.append(f"| {r['image']} | {r['condition']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    lines.append("| **mean** | | " + " | ".join(f"**{result['mean'][c]:.3f}**" for c in cols) + " |")
    cv = result.get("cross_validation")
    if cv:
        lines += ["", f"The head on the fit set, each panorama scored by a head fitted on the other "
                      f"{cv['panoramas'] - 1} ({cv['inputs']} photographed inputs); a gate adds nothing "
                      f"under that many stops. Chosen: **{cv['gate']:g}** (the lowest irradiance error whose "
                      "power error is no worse than gate 0's).",
                  "", "| light added | irradiance rel. err | power err (stops) |", "|---|---:|---:|",
                  f"| none (the flow alone) | {cv['flow_alone']['irradiance']:.3f} | {cv['flow_alone']['power']:.3f} |"]
        lines += [f"| gate {g['min_stops']:g} | {g['irradiance']:.3f} | {g['power']:.3f} |" for g in cv["gates"]]
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
    ap.add_argument("--write", action="store_true",
                    help="store the fitted head in the --model bundle (needs --fit-data; the bundle's model.onnx "
                         "is not touched)")
    ap.add_argument("--json", metavar="FILE", help="also write every number as JSON")
    args = ap.parse_args(argv)
    try:
        if args.write and not args.fit_data:
            raise InputError("--write stores a fitted head: add --fit-data DIR")
        if args.write and not (Path(args.model) / "model.json").is_file():
            raise InputError(f"{args.model}: --write needs a model bundle (export the checkpoint with training.export first)")
        result = run(args)
        if args.json:
            _write_text(args.json, json.dumps(result, indent=1))
        if args.write:
            bundle = load_bundle(args.model)
            write_bundle(bundle.path, bundle.onnx_path, {**bundle.meta, "light": result["head"]})
            print(f"light head written to {bundle.path / 'model.json'}", file=sys.stderr)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
