"""Training data: a folder (or several) of real HDR images -> random (LDR, HDR) patch pairs.

Images are loaded once into memory (the shipped set is ~45 MB), the validation split is removed
by file name, and every sample draws a fresh crop and a fresh camera. Panoramas also yield
perspective crops, because users feed both backplates and 360 panoramas.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.geometry import geometry_planes, photo_planes
from engine.io import read_hdr
from engine.sphere import latitude

from .camera import exposure_for_clip_fraction, is_panorama, perspective_crop, synthesize
from .lights import LightConfig, add_random_light

HDR_SUFFIXES = (".exr", ".hdr")
DEFAULT_SPLIT = Path(__file__).parent / "splits" / "val.txt"


def read_split(path: str | Path = DEFAULT_SPLIT) -> set[str]:
    """File names (one per line, '#' comments) of a held-out split."""
    lines = Path(path).read_text().splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}


def find_hdr_files(dirs: list[str | Path]) -> list[Path]:
    files = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise InputError(f"{d}: data folder does not exist")
        files += sorted(p for p in d.iterdir() if p.suffix.lower() in HDR_SUFFIXES)
    return files


def read_hdr_bytes(data: bytes, name: str, scratch: Path) -> np.ndarray:
    """Decode an HDR file held in memory (an archive member): OpenEXR reads only from paths, so it
    goes through a hidden ``scratch/.name`` that is always removed. ``name`` carries the suffix
    (.exr/.hdr) that picks the decoder."""
    tmp = Path(scratch) / f".{name}"
    tmp.write_bytes(data)
    try:
        return read_hdr(tmp)
    finally:
        tmp.unlink()


def box_downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Area-average downscale by an integer factor (crops the remainder)."""
    if factor <= 1:
        return img
    h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
    return img[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3)).astype(np.float32)


def brightest_pixels(brightness: np.ndarray) -> np.ndarray:
    """(row, col) of the brightest 0.5 % of pixels: the centres highlight-centred windows draw from."""
    return np.argwhere(brightness >= np.quantile(brightness, 0.995))


def window_start(centre: int, size: int, rng: np.random.Generator) -> int:
    """First row or column of a ``size``-pixel window around ``centre``, jittered by up to a
    quarter of the window so a highlight does not always sit in its middle (not yet clipped to the
    image: panoramas wrap horizontally)."""
    return int(centre - size // 2 + rng.integers(-size // 4, size // 4 + 1))


@dataclass
class HDRImage:
    name: str
    pixels: np.ndarray  # float32 HxWx3 linear
    panorama: bool


def load_images(dirs: list[str | Path], include: set[str] | None = None, exclude: set[str] = frozenset(),
                max_width: int = 2048, min_size: int = 64) -> list[HDRImage]:
    """Read every readable HDR image; corrupt or too-small files are skipped with a warning, and a
    folder with nothing usable is an InputError naming it."""
    images = []
    for path in find_hdr_files(dirs):
        if path.name in exclude or (include is not None and path.name not in include):
            continue
        try:
            px = read_hdr(path)
        except InputError as exc:
            print(f"warning: skipping {exc}", file=sys.stderr)
            continue
        factor = int(np.ceil(px.shape[1] / max_width))
        px = box_downscale(px, factor)
        if min(px.shape[:2]) < min_size:
            print(f"warning: skipping {path}: {px.shape[1]}x{px.shape[0]} is smaller than {min_size} px",
                  file=sys.stderr)
            continue
        px = np.nan_to_num(np.maximum(px, 0.0), posinf=65504.0)
        images.append(HDRImage(path.name, px, is_panorama(*px.shape[:2])))
    if not images:
        raise InputError(f"{', '.join(str(d) for d in dirs)}: no readable HDR images (.exr/.hdr) of at least {min_size} px")
    return images


@dataclass
class PatchConfig:
    patch: int = 64
    p_perspective: float = 0.4    # panoramas: fraction of samples that are rectilinear views
    p_highlight: float = 0.5      # fraction of crops centred on one of the brightest pixels
    max_clip_fraction: float = 0.20
    max_downscale: int = 2        # random integer box-downscale (scale augmentation)
    scene_metering: bool = True   # crops are exposed for the whole image, not for the crop
    p_light: float = 0.0          # fraction of samples given a synthetic light source (training.lights)
    # Panoramas' rectilinear views as whole photos: rendered at the panorama's own angular
    # resolution (over a random 1..max_downscale factor, at most ``max_view`` px wide), metered on
    # themselves as a camera would, and a patch cut from them (centred on the view's brightest
    # pixels with p_highlight). Off, a view is rendered straight at the patch size: a 64 px
    # thumbnail of 50-100 degrees, coarser than any real photo.
    view_photos: bool = False
    max_view: int = 768
    light: LightConfig = field(default_factory=LightConfig)


class PatchSampler:
    """Draws (LDR uint8, target float32) pairs; all randomness comes from ``rng`` (resumable).

    With ``geometry`` (a model with ``encoder.geometry``) each LDR patch also carries the
    ``engine.geometry`` planes the engine will feed: panorama crops know their rows' latitudes,
    photos and views rendered as photos get zeros. Computing them draws no random numbers, so the
    batches are otherwise the same."""

    def __init__(self, images: list[HDRImage], cfg: PatchConfig, geometry: bool = False):
        self.images, self.cfg, self.geometry = images, cfg, geometry
        self._bright, self._peaks = [], []
        for im in images:  # top-0.5 % pixels of each image: candidate centres for highlight crops
            self._bright.append(brightest_pixels(im.pixels.mean(axis=-1)))
            self._peaks.append(np.sort(im.pixels.max(axis=-1).ravel()))  # for whole-scene metering

    def _centre(self, idx: int, rng: np.random.Generator) -> tuple[int, int] | None:
        if rng.random() >= self.cfg.p_highlight:
            return None
        cand = self._bright[idx]
        return tuple(cand[rng.integers(len(cand))])

    def _scene_exposure(self, idx: int, fraction: float) -> float:
        """Exposure that clips ``fraction`` of the whole image (same rule as camera metering)."""
        peaks = self._peaks[idx]
        q = float(peaks[int(round((1.0 - fraction) * (len(peaks) - 1)))])
        return 1.0 / q if q > 0 else 1.0

    def _view(self, idx: int, rng: np.random.Generator) -> tuple[np.ndarray, bool, np.ndarray | None]:
        """A crop (metered on the whole image) or a perspective view (a whole photo, metered on itself),
        and the latitude of each of the crop's rows (None unless it is a crop of a panorama)."""
        im, p = self.images[idx], self.cfg.patch
        centre = self._centre(idx, rng)
        h, w = im.pixels.shape[:2]
        if im.panorama and rng.random() < self.cfg.p_perspective:
            if centre is not None:
                yaw = (centre[1] + 0.5) / w * 360.0 - 180.0 + rng.uniform(-15, 15)
                pitch = 90.0 - (centre[0] + 0.5) / h * 180.0 + rng.uniform(-10, 10)
            else:
                yaw, pitch = rng.uniform(-180, 180), rng.uniform(-35, 35)
            pitch, fov = float(np.clip(pitch, -80, 80)), rng.uniform(50, 100)
            if not self.cfg.view_photos:
                return perspective_crop(im.pixels, yaw, pitch, fov, p, p), False, None
            factor = int(rng.integers(1, self.cfg.max_downscale + 1))
            out_w = int(np.clip(round(w * fov / 360.0 / factor), p, self.cfg.max_view))
            out_h = max(p, int(round(out_w * rng.uniform(0.5, 1.0))))
            return perspective_crop(im.pixels, yaw, pitch, fov, out_h, out_w), False, None
        factor = int(rng.integers(1, self.cfg.max_downscale + 1))
        size = p * factor
        if centre is not None:
            y0 = int(np.clip(window_start(centre[0], size, rng), 0, h - size))
            x0 = window_start(centre[1], size, rng)
        else:
            y0, x0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w))
        if im.panorama:  # horizontal roll: panoramas wrap around
            cols = np.arange(x0, x0 + size) % w
            crop = im.pixels[y0:y0 + size][:, cols]
        else:
            x0 = int(np.clip(x0, 0, w - size))
            crop = im.pixels[y0:y0 + size, x0:x0 + size]
        crop = box_downscale(crop, factor)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        lat = None
        if im.panorama:
            lat = latitude(y0 + factor * np.arange(crop.shape[0]) + 0.5 * factor, h)
        return np.ascontiguousarray(crop), True, lat

    def _patch_of_photo(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A patch of a whole rendered photo: around one of its brightest pixels (p_highlight) or anywhere."""
        p, (h, w) = self.cfg.patch, photo.shape[:2]
        if rng.random() < self.cfg.p_highlight:
            cand = brightest_pixels(photo.max(axis=-1))
            cy, cx = cand[rng.integers(len(cand))]
            y0 = int(np.clip(window_start(cy, p, rng), 0, h - p))
            x0 = int(np.clip(window_start(cx, p, rng), 0, w - p))
        else:
            y0, x0 = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        return np.ascontiguousarray(photo[y0:y0 + p, x0:x0 + p])

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(LDR uint8 (P, P, 3), target (P, P, 3), geometry planes (P, P, 2) or None without ``geometry``)."""
        idx = int(rng.integers(len(self.images)))
        view, is_crop, lat = self._view(idx, rng)
        row_scale = None if lat is None else np.maximum(np.cos(lat), 0.02)  # a row's pixel width
        fraction = float(rng.uniform(0.0, self.cfg.max_clip_fraction))
        exposure = self._scene_exposure(idx, fraction) if is_crop and self.cfg.scene_metering else None
        # a whole photo (view_photos) larger than the patch; one of the patch's size is its own patch
        if not is_crop and view.shape[:2] != (self.cfg.patch, self.cfg.patch):
            exposure = exposure_for_clip_fraction(view, fraction)
            view = self._patch_of_photo(view, rng)
        if self.cfg.p_light > 0 and rng.random() < self.cfg.p_light:
            if exposure is None:  # meter before the light goes in: it should clip, not darken the photo
                exposure = exposure_for_clip_fraction(view, fraction)
            view = add_random_light(view, 1.0 / exposure, rng, self.cfg.light, row_scale)
        s = synthesize(view, rng, clip_fraction=fraction, exposure=exposure)
        planes = None
        if self.geometry:
            planes = photo_planes(*view.shape[:2]) if lat is None else geometry_planes(lat, view.shape[1])
        return s.ldr, s.target, planes

    def batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """[n,3,P,P] LDR in 0..1 (with ``geometry``: [n,5,P,P], the planes after the LDR, as the
        engine feeds them) and [n,3,P,P] linear target, float32."""
        pairs = [self.sample(rng) for _ in range(n)]
        ldr = np.stack([p[0] for p in pairs]).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        if self.geometry:
            ldr = np.concatenate([ldr, np.stack([p[2] for p in pairs]).transpose(0, 3, 1, 2)], axis=1)
        tgt = np.stack([p[1] for p in pairs]).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(ldr), np.ascontiguousarray(tgt)
