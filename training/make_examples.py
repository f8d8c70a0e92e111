"""Regenerate the bundled example photos and the small HDR test fixtures from CC0 HDR images.

    python -m training.make_examples --data ../shared/data/hdr

examples/  JPEG photos made by the camera model (sRGB curve) from held-out CC0 panoramas: a 2:1
           panorama with the sun clipped, and two perspective views (outdoor, indoor).
tests/fixtures/hdr/  four 256x128 half-float EXR panoramas (CC0 Poly Haven) for tests that need
           real HDR content without ../shared.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from engine.io import read_hdr, write_exr

from .camera import perspective_crop, synthesize
from .data import box_downscale

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [  # (output name, source, view) - view None = the whole panorama
    ("sunny_overpass_pano.jpg", "hdrify_pedestrian_overpass.exr", None, 0.02),
    ("meadow_plate.jpg", "3ddemodata_noon_grass.exr", (20.0, 5.0, 75.0, 512, 768), 0.05),
    ("vestibule_plate.jpg", "3ddemodata_vestibule.exr", (0.0, 0.0, 80.0, 512, 768), 0.05),
]
FIXTURES = ["3ddemodata_kloppenheim_05.exr", "3ddemodata_circus_arena.exr", "hdrify_blouberg_sunrise_2.exr",
            "3ddemodata_chinese_garden.exr"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.make_examples")
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args(argv)
    (ROOT / "examples").mkdir(exist_ok=True)
    for i, (name, src, view, clip) in enumerate(EXAMPLES):
        hdr = read_hdr(args.data / src)
        if view is not None:
            yaw, pitch, fov, h, w = view
            hdr = perspective_crop(hdr, yaw, pitch, fov, h, w)
        s = synthesize(hdr, np.random.default_rng([2024, i]), clip_fraction=clip, curve="srgb", jpeg_quality=None)
        Image.fromarray(s.ldr).save(ROOT / "examples" / name, quality=92)
        print(f"examples/{name}: {s.ldr.shape[1]}x{s.ldr.shape[0]}, {s.clipped.mean():.1%} clipped")
    fx = ROOT / "tests" / "fixtures" / "hdr"
    fx.mkdir(parents=True, exist_ok=True)
    for src in FIXTURES:
        small = box_downscale(read_hdr(args.data / src), 4)
        write_exr(fx / src, small, half=True)
        print(f"tests/fixtures/hdr/{src}: {small.shape[1]}x{small.shape[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
