"""More training panoramas, from a package registry: the Poly Haven HDRIs inside ``@pmndrs/assets``.

    python -m training.extra_data --out .cache/extra-hdri
    python -m training.train ... --data ../shared/data/hdr --data STUDIO_LIGHTS --data .cache/extra-hdri

The npm package ``@pmndrs/assets`` (CC0-1.0) ships 18 Poly Haven HDRIs (CC0-1.0), each an
equirectangular 512x256 OpenEXR encoded as a base64 ``data:`` URI inside a JavaScript module. This
downloads one pinned version of the package from the registry, checks its SHA-512 against the
registry's published integrity, and writes the images as ordinary OpenEXR files, with a MANIFEST.

Two things are done to them, both measured:

* ``studio`` is left out: it is the same room as the held-out ``studio_small_05`` (the same lamps
  and backdrop, arranged differently), and training on it would flatter the evaluation.
* The package made them with a ringing (Lanczos) downscale before its lossy DWAB compression, so
  the pixels beside a sun or lamp can be negative or ~0 (a dark hole next to 10^4), and DWAB's
  colour transform turned some suns into one-channel (pure blue) pixels. Holes are filled with the
  mean of their valid 3x3 neighbours (``fill_ringing_holes``); an image is left out where the fill
  changes its light by more than 10 % or one-channel pixels hold its highlights (``damage``).
  ``--measure-repair DATA`` checks both on panoramas whose truth is known: it puts them through
  the package's pipeline (Lanczos to 512x256, then DWAB) and scores against an area downscale. On
  the project's 31 Poly Haven panoramas the fill takes the mean |log2| error of the brightest 1 %
  of pixels from 0.02-1.59 stops (holes clamped at 0) to 0.02-0.99 (it rises by more than 0.002
  in two), and the rule keeps 19 whose repaired brightest pixels are within 0.02-0.30 stops
  (mean 0.09) and leaves out 12 at 0.08-0.99 (suns and bare bulbs, whose ringing is the worst).
  So kept images are close to what an area downscale of the originals would be; the rest stay out.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.errors import InputError
from engine.io import read_exr, read_hdr, write_exr
from engine.sphere import area_resize

from .data import find_hdr_files, read_hdr_bytes
from .metrics import peak_stops

PACKAGE = "@pmndrs/assets"
VERSION = "1.7.0"
TARBALL = f"https://registry.npmjs.org/{PACKAGE}/-/assets-{VERSION}.tgz"
INTEGRITY = "sha512-zHmKNS+3Jvu9K3zJBQfYQKT9Pn9IQt8s0q/eJC3CXKpWpyg6IBa+ivN9NgDn+fDT2AVjUh2YRZ//GXUueuAdCg=="
EXCLUDED = {"studio": "the same studio as the held-out studio_small_05"}
PREFIX = "pmndrs_"
HOLE_RATIO = 1e-4        # a pixel this much darker than the brightest within 2 px is a ringing hole
MAX_FILL_GAIN = 0.10     # an image whose light the fill changes by more than this is left out
MAX_ODD_LIGHT = 0.05     # ... and one whose highlights carry more than this in one-channel pixels


def _pad_wrap(a: np.ndarray, r: int) -> np.ndarray:
    """Pad rows by edge and columns by wrap-around (an equirect panorama's seam is continuous)."""
    rest = [(0, 0)] * (a.ndim - 2)
    a = np.pad(a, [(0, 0), (r, r)] + rest, mode="wrap")
    return np.pad(a, [(r, r), (0, 0)] + rest, mode="edge")


def _window_sum(a: np.ndarray, r: int) -> np.ndarray:
    return sliding_window_view(_pad_wrap(a, r), (2 * r + 1, 2 * r + 1), axis=(0, 1)).sum(axis=(-2, -1))


def _window_max(a: np.ndarray, r: int) -> np.ndarray:
    return sliding_window_view(_pad_wrap(a, r), (2 * r + 1, 2 * r + 1), axis=(0, 1)).max(axis=(-2, -1))


def ringing_holes(img: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels a ringing resampler left negative, or ~0 right beside a bright one."""
    peak = img.max(axis=-1)
    return (img.min(axis=-1) < 0) | (peak < HOLE_RATIO * _window_max(peak, 2))


def fill_ringing_holes(img: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace ringing holes by the mean of their valid 3x3 neighbours (0 where there is none), and
    clamp at 0. Returns the repaired image and how many pixels were filled."""
    img = np.asarray(img, dtype=np.float32)
    holes = ringing_holes(img)
    valid = (~holes).astype(np.float32)[..., None]
    total = _window_sum(np.maximum(img, 0.0) * valid, 1)
    count = _window_sum(valid, 1)
    fill = np.where(count > 0, total / np.maximum(count, 1.0), 0.0)
    out = np.maximum(img, 0.0)
    out[holes] = fill[holes]
    return out.astype(np.float32), int(holes.sum())


def damage(raw: np.ndarray, fixed: np.ndarray) -> str | None:
    """Why an image is beyond repair, or None. The fill adds light where the holes were; where it
    adds more than MAX_FILL_GAIN of the image's light, the truth there is unknown to that extent.
    DWAB's colour transform also turns some suns into one-channel pixels (a pure blue sun 2^14
    above the sky): where such pixels hold more than MAX_ODD_LIGHT of the highlights' light, the
    highlights are not real."""
    gain = float(fixed.sum() / max(float(np.maximum(raw, 0.0).sum()), 1e-9)) - 1.0
    if abs(gain) > MAX_FILL_GAIN:
        return f"the fill changes its light by {gain:+.0%}"
    peak, low = fixed.max(axis=-1), fixed.min(axis=-1)
    bright = peak > 64.0 * max(float(np.median(peak)), 1e-9)
    odd = bright & (low < 0.05 * peak)
    share = float(peak[odd].sum() / max(float(peak[bright].sum()), 1e-9))
    if share > MAX_ODD_LIGHT:
        return f"{share:.0%} of its highlights' light is in one-channel pixels"
    return None


def package_pipeline(img: np.ndarray, tmp: Path) -> np.ndarray:
    """What the package did to its images, done to one of ours: a Lanczos downscale to 512x256
    (per channel, in float) and a half-float DWAB round trip."""
    from PIL import Image

    small = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c])).resize((512, 256), Image.LANCZOS))
                      for c in range(3)], axis=-1)
    write_exr(tmp, small, half=True, compression="dwab")
    try:
        return read_exr(tmp)
    finally:
        tmp.unlink()


def measure_repair(data: Path, out: Path) -> list[tuple]:
    """(name, holes, brightest-1 % error clamped / filled, all-pixel error clamped / filled, why left
    out) per 2:1 panorama of ``data`` at least 1024 wide: mean over pixels of the largest
    per-channel |log2| error against an area downscale of the original."""
    def err(img, ref, mask):
        diff = np.log2(np.maximum(img, 0.0) + 1e-3) - np.log2(ref + 1e-3)
        return float(np.abs(diff).max(axis=-1)[mask].mean())

    rows = []
    for path in find_hdr_files([data]):
        img = read_hdr(path)
        if img.shape[1] != 2 * img.shape[0] or img.shape[1] < 1024:
            continue
        ref = area_resize(img, 256, 512)
        packed = package_pipeline(img, out / f".{path.stem}.dwab.exr")
        fixed, filled = fill_ringing_holes(packed)
        peak = ref.max(axis=-1)
        top, every = peak > np.quantile(peak, 0.99), np.ones_like(peak, bool)
        rows.append((path.name, filled, err(packed, ref, top), err(fixed, ref, top), err(packed, ref, every),
                     err(fixed, ref, every), damage(packed, fixed)))
    return rows


def check_integrity(data: bytes) -> None:
    """The tarball must be the one the registry published for VERSION (its ``dist.integrity``)."""
    algo, _, want = INTEGRITY.partition("-")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        raise InputError(f"{TARBALL}: {algo} does not match the pinned integrity (got {got[:16]}...)")


def decode_modules(tarball: bytes) -> dict[str, bytes]:
    """{name: EXR bytes} from the package's ``hdri/<name>.exr.js`` modules."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar.getmembers():
            m = re.fullmatch(r"package/hdri/([a-z0-9_]+)\.exr\.js", member.name)
            if not m:
                continue
            text = tar.extractfile(member).read().decode("ascii")
            uri = re.search(r"data:application/exr;base64,([A-Za-z0-9+/=]+)", text)
            if uri is None:
                raise InputError(f"{member.name}: no base64 EXR data URI inside")
            out[m.group(1)] = base64.b64decode(uri.group(1))
    if not out:
        raise InputError(f"{TARBALL}: no hdri/*.exr.js modules in the package")
    return out


def write_images(modules: dict[str, bytes], out: Path) -> tuple[list[str], list[str]]:
    """Repair and write every usable image; returns MANIFEST table rows and what was left out, why."""
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], []
    for name, exr in sorted(modules.items()):
        if name in EXCLUDED:
            print(f"{name}: left out ({EXCLUDED[name]})")
            skipped.append(f"`{name}` ({EXCLUDED[name]})")
            continue
        pixels = read_hdr_bytes(exr, f"{name}.source.exr", out)
        fixed, filled = fill_ringing_holes(pixels)
        why = damage(pixels, fixed)
        if why is not None:
            print(f"{name}: left out ({why})")
            skipped.append(f"`{name}` ({why})")
            continue
        dst = out / f"{PREFIX}{name}.exr"
        write_exr(dst, fixed, half=False)
        stops = peak_stops(fixed)
        rows.append(f"| {dst.name} | hdri/{name}.exr.js | {fixed.shape[1]}x{fixed.shape[0]} | {stops:.1f} | {filled} |")
        print(f"{dst.name}: {fixed.shape[1]}x{fixed.shape[0]}, {stops:.1f} stops peak/median, {filled} ringing holes filled")
    return rows, skipped


def write_manifest(out: Path, rows: list[str], skipped: list[str]) -> None:
    excluded = "; ".join(skipped)
    (out / "MANIFEST.md").write_text(
        f"# Extra training panoramas\n\nFrom the npm package `{PACKAGE}@{VERSION}` (CC0-1.0; the images are "
        f"Poly Haven HDRIs, CC0-1.0), made by `python -m training.extra_data`. Left out: {excluded}.\n\n"
        "| file | module in the package | size | peak/median (stops) | ringing holes filled |\n"
        "|---|---|---|---:|---:|\n" + "\n".join(rows) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.extra_data", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write the EXR files and MANIFEST.md into")
    ap.add_argument("--tarball", type=Path, help="use this downloaded package tarball instead of the registry")
    ap.add_argument("--measure-repair", type=Path, metavar="DATA",
                    help="instead: put DATA's 2:1 panoramas through the package's pipeline and score the repair")
    args = ap.parse_args(argv)
    try:
        if args.measure_repair is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            rows = measure_repair(args.measure_repair, args.out)
            print("| panorama | holes | brightest 1 %: clamped | filled | all pixels: clamped | filled | left out? |")
            print("|---|---:|---:|---:|---:|---:|---|")
            for name, filled, t0, t1, a0, a1, why in rows:
                print(f"| {name} | {filled} | {t0:.3f} | {t1:.3f} | {a0:.3f} | {a1:.3f} | {why or ''} |")
            return 0
        if args.tarball is not None:
            data = args.tarball.read_bytes()
        else:
            with urllib.request.urlopen(TARBALL, timeout=120) as resp:
                data = resp.read()
        check_integrity(data)
        rows, skipped = write_images(decode_modules(data), args.out)
        write_manifest(args.out, rows, skipped)
    except (InputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(rows)} panoramas in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
