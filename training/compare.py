"""How sure is a difference between two evaluations? A paired bootstrap over held-out *images*.

    python -m training.compare runs/A-eval.json runs/B-eval.json        # model B vs model A
    python -m training.compare docs/eval-default.json --baseline naive_inverse   # model / baseline
    python -m training.compare runs/A-eval.json,runs/A-extra.json runs/B-eval.json,runs/B-extra.json

Both read the JSON that ``training.evaluate --json`` writes. Why images and not inputs: the 52
inputs of the held-out split come from 5 images (each seen as a panorama, two crops and four
cameras), so inputs of one image rise and fall together, and treating them as independent would
make any difference look certain. Each resample draws as many images as there are, with
replacement, and averages every input of the drawn images, exactly as ``training.evaluate``
averages them; the 5 %/95 % quantiles of the resampled statistic are the interval.

* Two files: the difference of the ``model`` averages, B minus A, paired input by input (the
  same images, views and cameras: both files must come from the same evaluation settings), and
  how often B is the better of the two across resamples.
* ``--baseline NAME``: the model's average over a baseline's, in one file: the ratio the quality
  targets are stated in (for PU21, the difference in dB).
* Comma-separated files are pooled into one set of images (the split and a second held-out set,
  say), evaluated with the same settings: more images, a narrower interval.

With few images the interval is itself rough (a percentile bootstrap over k clusters is too
narrow by about sqrt((k - 1) / k)), but it shows the size of the effect a split can resolve.

Exit status: 0 done, 2 bad input or usage (one line on stderr naming the file).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputError

from .evaluate import METRIC_HEADERS, METRICS

HIGHER_IS_BETTER = {"pu21_psnr"}
SETTINGS = ("seed", "conditions", "max_width", "upscale", "pu21_clip_cd", "crop_fov_deg")  # what makes the inputs; must match


@dataclass
class Stat:
    """A point estimate and its bootstrap interval."""
    value: float
    low: float
    high: float
    p_better: float | None = None  # share of resamples in which B beats A (two-file mode)


def load_eval(spec: str | Path) -> dict:
    """One evaluation, or several pooled (``a.json,b.json``): their inputs together, as if one
    run of ``training.evaluate`` had scored all their images."""
    paths = str(spec).split(",")
    first = _load_one(paths[0])
    inputs, seen = list(first["inputs"]), {r["image"] for r in first["inputs"]}
    for path in paths[1:]:
        part = _load_one(path)
        _same_settings(first, part, f"{path} was evaluated with other settings than {paths[0]}")
        images = {r["image"] for r in part["inputs"]}
        if images & seen:
            raise InputError(f"{path}: scores images that another pooled file scores too")
        inputs += part["inputs"]
        seen |= images
    return {**first, "inputs": inputs}


def _same_settings(a: dict, b: dict, what: str) -> None:
    for k in SETTINGS:
        if a.get("config", {}).get(k) != b.get("config", {}).get(k):
            raise InputError(f"{what}: '{k}' is {a.get('config', {}).get(k)!r} vs "
                             f"{b.get('config', {}).get(k)!r}; rerun one with the other's settings")


def _load_one(path: str | Path) -> dict:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable training.evaluate JSON ({exc})") from None
    if not isinstance(result, dict) or not isinstance(result.get("inputs"), list) or not result["inputs"]:
        raise InputError(f"{path}: no 'inputs' list; write it with python -m training.evaluate --json")
    if not all(isinstance(r, dict) and {"image", "view", "condition", "methods"} <= r.keys() for r in result["inputs"]):
        raise InputError(f"{path}: an input lacks image, view, condition or methods; "
                         "write it with python -m training.evaluate --json")
    return result


def _key(row: dict) -> tuple:
    return row["image"], row["view"], row["condition"]


def per_image(rows, method: str, metric: str, images: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of ``metric`` per image (inputs without the metric, e.g. panorama-only
    metrics on photos, do not count), so any resample's mean is sum(w*s) / sum(w*n)."""
    index = {name: i for i, name in enumerate(images)}
    sums, counts = np.zeros(len(images)), np.zeros(len(images))
    for r in rows:
        v = r["methods"].get(method, {}).get(metric)
        if v is not None and np.isfinite(v):
            sums[index[r["image"]]] += v
            counts[index[r["image"]]] += 1
    return sums, counts


def image_weights(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples + 1, n_images) draw counts; row 0 is the data itself (every image once)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    w = np.zeros((resamples, n_images))
    np.add.at(w, (np.arange(resamples)[:, None], draws), 1.0)
    return np.vstack([np.ones((1, n_images)), w])


def _mean(w: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n = w @ counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (w @ sums) / np.where(n > 0, n, 1), np.nan)


def _stat(samples: np.ndarray, better: np.ndarray | None = None) -> Stat:
    rest = samples[1:][np.isfinite(samples[1:])]
    low, high = (np.quantile(rest, [0.05, 0.95]) if rest.size else (np.nan, np.nan))
    p = float(better[1:][np.isfinite(samples[1:])].mean()) if better is not None and rest.size else None
    return Stat(float(samples[0]), float(low), float(high), p)


def compare_models(a: dict, b: dict, resamples: int = 10000, seed: int = 0) -> dict[str, tuple[float, float, Stat]]:
    """Per metric: (mean A, mean B, Stat of B - A) over the inputs both files share."""
    _same_settings(a, b, "the two evaluations differ")
    rows_a, rows_b = {_key(r): r for r in a["inputs"]}, {_key(r): r for r in b["inputs"]}
    if rows_a.keys() != rows_b.keys():
        only = sorted(rows_a.keys() ^ rows_b.keys())[0]
        raise InputError(f"the two evaluations score different inputs (e.g. {' / '.join(map(str, only))}); "
                         "evaluate both on the same --data and --split")
    images = sorted({k[0] for k in rows_a})
    w = image_weights(len(images), resamples, seed)
    out = {}
    for m in METRICS:
        sa, na = per_image(rows_a.values(), "model", m, images)
        sb, nb = per_image(rows_b.values(), "model", m, images)
        if not na.any() or not np.array_equal(na, nb):
            continue
        ma, mb = _mean(w, sa, na), _mean(w, sb, nb)
        diff = mb - ma
        better = diff > 0 if m in HIGHER_IS_BETTER else diff < 0
        out[m] = (float(ma[0]), float(mb[0]), _stat(diff, better))
    return out


def compare_baseline(result: dict, baseline: str, resamples: int = 10000, seed: int = 0) -> dict[str, tuple[float, float, Stat]]:
    """Per metric: (model mean, baseline mean, Stat of model / baseline; PU21: model - baseline)."""
    rows = result["inputs"]
    if not any(baseline in r["methods"] for r in rows):
        names = sorted({m for r in rows for m in r["methods"]} - {"model"})
        raise InputError(f"no method '{baseline}' in this evaluation; it has: {', '.join(names)}")
    images = sorted({r["image"] for r in rows})
    w = image_weights(len(images), resamples, seed)
    out = {}
    for m in METRICS:
        sm, nm = per_image(rows, "model", m, images)
        sb, nb = per_image(rows, baseline, m, images)
        if not nm.any() or not nb.any():
            continue
        mm, mb = _mean(w, sm, nm), _mean(w, sb, nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = mm - mb if m in HIGHER_IS_BETTER else mm / mb
        out[m] = (float(mm[0]), float(mb[0]), _stat(rel))
    return out


def markdown(rows: dict[str, tuple[float, float, Stat]], head: tuple[str, str, str], n_images: int,
             resamples: int) -> str:
    paired = any(s.p_better is not None for _, _, s in rows.values())
    lines = [f"{n_images} images, {resamples} resamples of the images; interval: 5 %-95 %.", "",
             f"| metric | {head[0]} | {head[1]} | {head[2]} | 90 % interval |" + (" P(B better) |" if paired else ""),
             "|---|---:|---:|---:|---|" + ("---:|" if paired else "")]
    for m, (x, y, s) in rows.items():
        digits = 2 if m == "pu21_psnr" else 3
        line = f"| {METRIC_HEADERS[m]} | {x:.{digits}f} | {y:.{digits}f} | {s.value:+.3f} | {s.low:+.3f} … {s.high:+.3f} |"
        lines.append(line + (f" {s.p_better:.2f} |" if paired else ""))
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", metavar="EVAL_JSON", help="one or two training.evaluate --json files")
    p.add_argument("--baseline", metavar="METHOD",
                   help="with one file: the model relative to this method (e.g. naive_inverse)")
    p.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.resamples < 100:
            raise InputError(f"--resamples {args.resamples}: use at least 100")
        if len(args.files) > 2 or (len(args.files) == 2) == bool(args.baseline):
            raise InputError("give two evaluation files to compare models, or one file and --baseline")
        results = [load_eval(f) for f in args.files]
        n_images = len({r["image"] for r in results[0]["inputs"]})
        if args.baseline:
            rows = compare_baseline(results[0], args.baseline, args.resamples, args.seed)
            text = markdown(rows, ("model", args.baseline, "model / baseline (PU21: dB difference)"),
                            n_images, args.resamples)
        else:
            rows = compare_models(results[0], results[1], args.resamples, args.seed)
            text = markdown(rows, ("A", "B", "B - A"), n_images, args.resamples)
        sys.stdout.write(f"A: {args.files[0]}\n" + (f"B: {args.files[1]}\n" if len(args.files) == 2 else "")
                         + "\n" + text)
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
