"""README figure: what the model recovers in a clipped highlight, next to the truth.

    python -m training.figure --data ../shared/data/hdr -o docs/highlights.png

Takes a held-out panorama, photographs it with the camera model (sRGB, 3 % clipped), converts it
with a model bundle through the engine (mean of N samples, plus the per-pixel spread), and lays
out a crop around the brightest region at 0, -3 and -6 EV: input (naive inverse), model output,
ground truth, and the uncertainty map. Pulling the exposure down is what shows recovered detail
and energy: a clipped input stays a flat grey blob.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.backends import create_backend
from engine.bundle import load_bundle
from engine.color import linear_to_srgb, luminance, srgb_to_linear
from engine.convert import ConvertOptions, convert_array
from engine.io import read_hdr

from .camera import synthesize
from .data import box_downscale

EVS = (0.0, -3.0, -6.0)


def _display(lin: np.ndarray, ev: float) -> np.ndarray:
    return (np.clip(linear_to_srgb(np.clip(lin * 2.0 ** ev, 0, 1)), 0, 1) * 255 + 0.5).astype(np.uint8)


def _crop_box(lum: np.ndarray, size: int) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(lum)), lum.shape)
    h, w = lum.shape
    return int(np.clip(y - size // 2, 0, h - size)), int(np.clip(x - size // 2, 0, w - size))


def make_figure(hdr: np.ndarray, bundle_dir: Path | None, out: Path, samples: int = 8, crop: int = 160,
                scale: int = 2) -> dict:
    bundle = load_bundle(bundle_dir)
    backend = create_backend(bundle, "auto")
    s = synthesize(hdr, np.random.default_rng(7), clip_fraction=0.03, curve="srgb", jpeg_quality=None)
    res = convert_array(s.ldr, backend, bundle, ConvertOptions(samples=samples, uncertainty=True, seed=0))
    naive = srgb_to_linear(s.ldr.astype(np.float32) / 255.0)
    y0, x0 = _crop_box(luminance(s.target), crop)
    sl = np.s_[y0:y0 + crop, x0:x0 + crop]
    rows = [("input (naive inverse)", naive[sl]), (f"{bundle.name} {bundle.version}", res.hdr[sl]),
            ("ground truth", s.target[sl])]
    tile = crop * scale
    label_h = 18
    fig = Image.new("RGB", (tile * (len(EVS) + 1), (tile + label_h) * len(rows)), (24, 24, 24))
    draw = ImageDraw.Draw(fig)
    for r, (name, img) in enumerate(rows):
        for c, ev in enumerate(EVS):
            im = Image.fromarray(_display(img, ev)).resize((tile, tile), Image.NEAREST)
            fig.paste(im, (c * tile, r * (tile + label_h) + label_h))
            draw.text((c * tile + 4, r * (tile + label_h) + 3), f"{name}, {ev:+.0f} EV", fill=(230, 230, 230))
    spread = res.spread[sl] / max(float(res.spread[sl].max()), 1e-6)
    heat = (np.stack([spread, spread ** 2, 0.2 + 0 * spread], -1) * 255).astype(np.uint8)
    fig.paste(Image.fromarray(heat).resize((tile, tile), Image.NEAREST), (len(EVS) * tile, tile + 2 * label_h))
    draw.text((len(EVS) * tile + 4, tile + label_h + 3), f"spread over {samples} samples", fill=(230, 230, 230))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.save(out)
    stats = {"peak_stops_model": float(np.log2(max(luminance(res.hdr).max(), 1e-6))),
             "peak_stops_truth": float(np.log2(luminance(s.target).max())),
             "max_spread_stops": float(res.spread.max())}
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.figure", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding the held-out HDR image")
    ap.add_argument("--image", default="hdrify_pedestrian_overpass.exr", help="held-out HDR image name")
    ap.add_argument("--model", type=Path, help="bundle folder (default: the bundled model)")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/highlights.png"))
    args = ap.parse_args(argv)
    hdr = read_hdr(args.data / args.image)
    hdr = box_downscale(hdr, -(-hdr.shape[1] // 1024))
    stats = make_figure(hdr, args.model, args.out, args.samples)
    print(f"wrote {args.out}: peak {stats['peak_stops_model']:+.1f} stops (truth {stats['peak_stops_truth']:+.1f}), "
          f"max spread {stats['max_spread_stops']:.2f} stops")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
