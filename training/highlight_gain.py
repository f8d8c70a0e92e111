"""Would a global gain on the model's highlight correction lower its highlight error?

    python -m training.highlight_gain --model engine/models/default --data ../shared/data/hdr \
        --split training/splits/val.txt
    python -m training.highlight_gain --model engine/models/default --data ../shared/data/hdr \
        --exclude training/splits/val.txt --every 3          # on (a third of) the training images

In clipped pixels the model's output is the naive inverse times a correction; in log2,
``model = naive + c``. This scores ``naive + g * c`` for a few gains ``g`` with the highlight
metric of ``training.evaluate`` (same inputs, cameras and seeds), and the mean signed error
(``bias``, stops; negative = too dark). If the model were merely too timid on images it never saw
(a generalisation gap), held-out images would prefer ``g > 1`` while training images stay at
``g = 1``; a gain that helps every set at once would be a cheap fix; one that helps none says the
remaining error is not a matter of scale. The light stage is off: it is a panorama-irradiance
fix scored elsewhere (``training.light_budget``).

Two oracle columns bound what any per-image calibration could buy: the error after shifting each
input's clipped pixels by the offset that suits that input best (the median of its errors), and
after the gain that suits it best (searched from 0 to 3 in steps of 0.05). They use the truth,
so no method reaches them; if even they stay near the model's own score, the error lives inside
each image's clipped regions, not in how bright the image is overall.

A second table splits the error by how many channels the clip took in each pixel (one, two or
all three, counted in the truth as the clipped mask is): each row's share of the clipped pixels
and its contribution to the model's and the naive inverse's error (the three rows add up to the
first table's g = 1 and naive columns). Half of all clipped pixels lose one channel only, and
that is where the flow once did worse than the naive inverse (``training.target``, keep_measured).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from engine.color import srgb_to_linear
from engine.errors import InputError

from . import metrics
from .data import read_split
from .evaluate import STANDARD_CONDITIONS, ModelRunner, load_eval_images, make_sources, photograph

GAINS = (0.6, 0.8, 1.0, 1.2, 1.4, 1.7, 2.0)
ORACLE_GAINS = np.linspace(0.0, 3.0, 61)


def _clipped_logs(pred, ldr, target, clipped) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log2 luminance of the model, the naive inverse and the truth, in the clipped pixels."""
    eps = metrics.STOPS_EPS
    return tuple(np.log2(metrics.luminance(x) + eps)[clipped]
                 for x in (pred, srgb_to_linear(ldr.astype(np.float32) / 255.0), target))


def gain_errors(pred: np.ndarray, ldr: np.ndarray, target: np.ndarray, clipped: np.ndarray,
                gains=GAINS) -> tuple[list[float], float]:
    """Highlight error of ``naive + g * (model - naive)`` (log2 luminance) for each gain, and the
    model's mean signed log2 error in the clipped pixels."""
    log_pred, log_naive, log_true = _clipped_logs(pred, ldr, target, clipped)
    correction = log_pred - log_naive
    errors = [float(np.abs(log_naive + g * correction - log_true).mean()) for g in gains]
    return errors, float((log_pred - log_true).mean())


def oracle_errors(pred: np.ndarray, ldr: np.ndarray, target: np.ndarray, clipped: np.ndarray) -> tuple[float, float]:
    """Highlight error after the best per-input offset (the median error: it minimises the mean
    absolute error) and after the best per-input gain on ``ORACLE_GAINS``. Both read the truth."""
    log_pred, log_naive, log_true = _clipped_logs(pred, ldr, target, clipped)
    err = log_pred - log_true
    offset = float(np.abs(err - np.median(err)).mean())
    correction = log_pred - log_naive
    gain = min(float(np.abs(log_naive + g * correction - log_true).mean()) for g in ORACLE_GAINS)
    return offset, gain


def channel_breakdown(pred: np.ndarray, ldr: np.ndarray, target: np.ndarray, clipped: np.ndarray) -> np.ndarray:
    """Rows k = 1, 2, 3 channels at the clip in the truth; columns: share of the clipped pixels,
    the model's and the naive inverse's contribution to this input's highlight error (stops)."""
    log_pred, log_naive, log_true = _clipped_logs(pred, ldr, target, clipped)
    channels = (target >= 1.0).sum(axis=-1)[clipped]
    n = len(channels)
    return np.array([[np.mean(channels == k),
                      np.abs(log_pred - log_true)[channels == k].sum() / n,
                      np.abs(log_naive - log_true)[channels == k].sum() / n] for k in (1, 2, 3)])


def run(args: argparse.Namespace) -> dict:
    images, _ = load_eval_images(args.data, args.split)
    if args.exclude:
        held = read_split(args.exclude)
        images = [im for im in images if im.name not in held]
    images = images[::args.every]
    if not images:
        raise InputError("no images left to score (check --split, --exclude and --every)")
    runner = ModelRunner(args.model, args.temperature, 1, args.seed, light=False)
    errors, biases, naive, oracles, by_channels = [], [], [], [], []
    for im in images:
        for src in make_sources(im.name, im.pixels, im.panorama, args.max_width):
            for cond in STANDARD_CONDITIONS:
                sample = photograph(src, cond, args.seed)
                if not sample.clipped.any():
                    continue
                pred = runner(sample.ldr, src.kind == "panorama")
                # g = 0 is the naive inverse itself: its highlight error comes with the others.
                errs, bias = gain_errors(pred, sample.ldr, sample.target, sample.clipped, (0.0, *args.gains))
                naive.append(errs[0])
                errors.append(errs[1:])
                biases.append(bias)
                oracles.append(oracle_errors(pred, sample.ldr, sample.target, sample.clipped))
                by_channels.append(channel_breakdown(pred, sample.ldr, sample.target, sample.clipped))
    return {"model": runner.name, "images": len(images), "inputs": len(errors), "gains": list(args.gains),
            "highlight_stops": list(np.mean(errors, axis=0)), "bias_stops": float(np.mean(biases)),
            "naive_highlight_stops": float(np.mean(naive)),
            "oracle_offset_stops": float(np.mean([o[0] for o in oracles])),
            "oracle_gain_stops": float(np.mean([o[1] for o in oracles])),
            "by_channels": np.mean(by_channels, axis=0).tolist()}


def report(result: dict) -> str:
    head = " | ".join(f"g={g:g}" for g in result["gains"])
    cells = " | ".join(f"{e:.3f}" for e in result["highlight_stops"])
    return (f"Highlight error (stops) of naive + g x the correction of {result['model']}: "
            f"{result['images']} images, {result['inputs']} inputs\n\n"
            f"| {head} | naive | model bias | oracle offset | oracle gain |\n"
            f"|{'---:|' * (len(result['gains']) + 4)}\n"
            f"| {cells} | {result['naive_highlight_stops']:.3f} | {result['bias_stops']:+.3f} "
            f"| {result['oracle_offset_stops']:.3f} | {result['oracle_gain_stops']:.3f} |\n\n"
            f"By how many channels the clip took (the contributions add up to g=1 and naive):\n\n"
            f"| channels clipped | share of clipped pixels | model | naive |\n|---:|---:|---:|---:|\n"
            + "\n".join(f"| {k} | {share:.3f} | {model:.3f} | {naive:.3f} |"
                        for k, (share, model, naive) in enumerate(result["by_channels"], start=1)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.highlight_gain", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model bundle or training checkpoint folder")
    ap.add_argument("--data", action="append", required=True, metavar="DIR", help="folder of HDR images; repeatable")
    ap.add_argument("--split", help="score only the images this file names")
    ap.add_argument("--exclude", help="leave out the images this file names (e.g. score the training images)")
    ap.add_argument("--every", type=int, default=1, help="score every Nth image only")
    ap.add_argument("--gains", type=lambda s: tuple(float(g) for g in s.split(",")), default=GAINS,
                    help="comma-separated gains (default %(default)s)")
    ap.add_argument("--max-width", type=int, default=768, help="downscale to at most this width")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the model's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        if args.every < 1 or not args.gains:
            raise InputError("--every must be at least 1 and --gains must name a gain")
        result = run(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
