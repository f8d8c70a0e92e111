"""LDR synthesis: the camera model that turns a linear HDR image into the 8-bit photo a user has.

Training and evaluation use the same model, so the network is judged on the kind of input it was
trained for. Everything here is plain numpy: a random camera is drawn (exposure, response curve,
white balance, noise, JPEG) and applied to a linear image.

Conventions: the returned ground truth ``target`` is the linear image *as the sensor saw it*
(exposure and white balance applied, before noise) so that the LDR clip point is exactly 1.0.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.color import linear_to_srgb
from engine.convert import is_panorama  # noqa: F401  (re-exported: one rule for '2:1 means panorama')

CURVE_FAMILIES = ("srgb", "gamma", "filmic", "perturbed")


@dataclass(frozen=True)
class ResponseCurve:
    """A monotone camera response f: [0, 1] linear -> [0, 1] display, f(0)=0, f(1)=1.

    Stored as a dense lookup table so that every family (analytic or perturbed) is applied the
    same way and is trivially invertible for tests.
    """

    family: str
    xs: np.ndarray
    ys: np.ndarray

    def __call__(self, linear: np.ndarray) -> np.ndarray:
        return np.interp(np.clip(linear, 0.0, 1.0), self.xs, self.ys).astype(np.float32)


def _lut_grid(n: int = 4097) -> np.ndarray:
    # Denser near black, where curves are steep and 8-bit codes are spread thin.
    return np.linspace(0.0, 1.0, n) ** 2


def make_curve(family: str, rng: np.random.Generator) -> ResponseCurve:
    """Draw a response curve from one family with random parameters."""
    xs = _lut_grid()
    if family == "srgb":
        ys = linear_to_srgb(xs)
    elif family == "gamma":
        ys = xs ** (1.0 / rng.uniform(1.8, 2.6))
    elif family == "filmic":
        # S-shaped: a gamma for the mid-tones, a Reinhard-like shoulder and a power toe, all
        # normalised so that f(1) = 1.
        u = xs ** (1.0 / rng.uniform(1.6, 2.4))
        k = rng.uniform(0.15, 1.5)  # shoulder strength: smaller = stronger roll-off
        v = u * (1.0 + k) / (u + k)
        ys = v ** rng.uniform(1.0, 1.6)  # toe
    elif family == "perturbed":
        # sRGB with a smooth random monotone perturbation (a few cosine bumps), re-normalised.
        base = linear_to_srgb(xs)
        t = base
        bump = sum(rng.uniform(-0.04, 0.04) * np.sin(np.pi * (i + 1) * t) for i in range(4))
        ys = np.maximum.accumulate(np.clip(t + bump, 0.0, None))
        ys = ys / ys[-1]
    else:
        raise ValueError(f"unknown curve family {family!r}; choose from {CURVE_FAMILIES}")
    ys = np.maximum.accumulate(np.asarray(ys, dtype=np.float64))
    return ResponseCurve(family, xs.astype(np.float64), ys)


def exposure_for_clip_fraction(hdr: np.ndarray, fraction: float) -> float:
    """Multiplier that makes ``fraction`` of the pixels clip (max channel >= 1).

    With fraction 0 the brightest pixel lands exactly at the clip point.
    """
    peak = hdr.max(axis=-1).reshape(-1)
    q = float(np.quantile(peak, 1.0 - float(np.clip(fraction, 0.0, 1.0))))
    if q <= 0.0:
        q = float(peak.max()) if peak.max() > 0 else 1.0
    return 1.0 / q


@dataclass(frozen=True)
class Camera:
    """One drawn camera: everything needed to render an LDR photo from a linear image."""

    clip_fraction: float
    curve: ResponseCurve
    white_balance: np.ndarray  # per-channel gains, mean 1
    shot_noise: float          # variance per unit signal
    read_noise: float          # variance floor
    jpeg_quality: int | None


@dataclass
class Sample:
    ldr: np.ndarray      # uint8 HxWx3, display-encoded
    target: np.ndarray   # float32 HxWx3, linear, LDR clip point = 1.0
    clipped: np.ndarray  # bool HxW, any channel at the clip point before quantisation
    camera: Camera


def draw_camera(
    rng: np.random.Generator,
    clip_fraction: float | None = None,
    curve: str | None = None,
    jpeg_quality: int | None | str = "random",
    max_clip_fraction: float = 0.20,
) -> Camera:
    """Draw random camera settings; any argument given fixes that part (evaluation uses this)."""
    if clip_fraction is None:
        clip_fraction = float(rng.uniform(0.0, max_clip_fraction))
    family = curve if curve is not None else str(rng.choice(CURVE_FAMILIES, p=[0.4, 0.2, 0.25, 0.15]))
    wb = np.exp(rng.normal(0.0, 0.04, size=3)).astype(np.float32)
    wb /= wb.mean()
    if jpeg_quality == "random":
        jpeg_quality = int(rng.integers(60, 101)) if rng.random() < 0.4 else None
    return Camera(
        clip_fraction=clip_fraction,
        curve=make_curve(family, rng),
        white_balance=wb,
        shot_noise=float(10 ** rng.uniform(-5.0, -2.5)),
        read_noise=float(10 ** rng.uniform(-7.0, -4.5)),
        jpeg_quality=jpeg_quality,
    )


def jpeg_roundtrip(ldr: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode through libjpeg (4:2:0, as most cameras and phones do)."""
    buf = io.BytesIO()
    Image.fromarray(ldr).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def render(hdr: np.ndarray, camera: Camera, rng: np.random.Generator, exposure: float | None = None) -> Sample:
    """Photograph a linear HDR image with ``camera``.

    ``exposure`` overrides the camera's clip-fraction metering: training crops pass the exposure
    metered on the *whole* scene, as a photographer's camera does, so that what clips in a crop
    is what clips in a real photo (the scene's lights and sky, often far above the clip point),
    not whatever happens to be brightest inside the crop."""
    hdr = np.maximum(np.asarray(hdr, dtype=np.float32), 0.0)
    balanced = hdr * camera.white_balance
    if exposure is None:
        exposure = exposure_for_clip_fraction(balanced, camera.clip_fraction)
    target = balanced * np.float32(exposure)
    sigma = np.sqrt(camera.shot_noise * np.minimum(target, 1.0) + camera.read_noise)
    noisy = target + sigma.astype(np.float32) * rng.standard_normal(target.shape, dtype=np.float32)
    clipped = (target >= 1.0).any(axis=-1)
    display = camera.curve(noisy)
    ldr = np.clip(np.round(display * 255.0), 0, 255).astype(np.uint8)
    if camera.jpeg_quality is not None:
        ldr = jpeg_roundtrip(ldr, camera.jpeg_quality)
    return Sample(ldr=ldr, target=target.astype(np.float32), clipped=clipped, camera=camera)


def synthesize(
    hdr: np.ndarray,
    rng: np.random.Generator,
    clip_fraction: float | None = None,
    curve: str | None = None,
    jpeg_quality: int | None | str = "random",
    exposure: float | None = None,
) -> Sample:
    """Draw a camera (fixing whatever is given) and render ``hdr`` with it."""
    return render(hdr, draw_camera(rng, clip_fraction, curve, jpeg_quality), rng, exposure)


# --- panoramas -> perspective photos -------------------------------------------------------------

def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    return ry @ rx


def direction_to_equirect(d: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (x right, y up, z forward) -> continuous pixel coordinates (row, col).

    Column 0 is longitude -180 deg, the centre column looks along +z (yaw 0); row 0 is straight up.
    """
    lon = np.arctan2(d[..., 0], d[..., 2])
    lat = np.arcsin(np.clip(d[..., 1], -1.0, 1.0))
    col = (lon / (2 * np.pi) + 0.5) * width - 0.5
    row = (0.5 - lat / np.pi) * height - 0.5
    return row, col


def perspective_crop(pano: np.ndarray, yaw_deg: float, pitch_deg: float, fov_deg: float,
                     out_h: int, out_w: int) -> np.ndarray:
    """Rectilinear view of an equirectangular panorama (horizontal FOV ``fov_deg``), bilinear."""
    h, w = pano.shape[:2]
    f = 0.5 * out_w / np.tan(np.radians(fov_deg) / 2)
    jj, ii = np.meshgrid(np.arange(out_w) + 0.5 - out_w / 2, np.arange(out_h) + 0.5 - out_h / 2)
    rays = np.stack([jj / f, -ii / f, np.ones_like(jj)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    d = rays @ _rotation(yaw_deg, pitch_deg).T
    row, col = direction_to_equirect(d, h, w)
    row = np.clip(row, 0, h - 1)
    r0 = np.floor(row).astype(int)
    r1 = np.minimum(r0 + 1, h - 1)
    c0 = np.floor(col).astype(int)
    fr = (row - r0)[..., None]
    fc = (col - c0)[..., None]
    c0w, c1w = c0 % w, (c0 + 1) % w
    top = pano[r0, c0w] * (1 - fc) + pano[r0, c1w] * fc
    bot = pano[r1, c0w] * (1 - fc) + pano[r1, c1w] * fc
    return (top * (1 - fr) + bot * fr).astype(np.float32)
