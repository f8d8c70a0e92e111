"""Classic single-image HDR reconstruction methods, the yardsticks for the model (pure numpy).

A learned model is only worth shipping if it beats what a few lines of image processing do, so
``training.evaluate`` runs these next to every model bundle on exactly the same inputs:

* ``naive_inverse``     -- undo the sRGB curve and stop: the clip point stays at 1.0 and every
                           clipped sun or lamp stays at 1.0. The floor every method must clear.
* ``rempel_expand``     -- Rempel et al. 2007, "Ldr2Hdr: On-the-fly reverse tone mapping of legacy
                           video and photographs" (SIGGRAPH): a smooth *brightness enhancement
                           function* grown from the saturated pixels boosts highlights by up to a
                           factor alpha (4), stopping at strong edges.
* ``inverse_reinhard``  -- Banterle et al. 2006, "Inverse tone mapping" (GRAPHITE): invert
                           Reinhard et al.'s global photographic operator with a white point, a
                           global expansion that lifts bright pixels most. Its output scale is
                           arbitrary (it depends on the key/white point), so the evaluation aligns
                           it to the reference with ``metrics.align_scale`` (``ARBITRARY_SCALE``).

All take the 8-bit LDR photo (uint8 H x W x 3, display-encoded) and return linear RGB float32
H x W x 3. They assume an sRGB camera curve, as the engine does: the real curve is unknown.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine.color import srgb_to_linear

# Rec.709 luminance weights (linear RGB).
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def _linear(ldr_uint8: np.ndarray) -> np.ndarray:
    x = np.asarray(ldr_uint8)
    if x.dtype != np.uint8:
        raise TypeError(f"expected an 8-bit image (uint8), got {x.dtype}")
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected H x W x 3, got shape {x.shape}")
    return np.asarray(srgb_to_linear(x.astype(np.float32) / 255.0), dtype=np.float32)


def naive_inverse(ldr_uint8: np.ndarray, panorama: bool = False) -> np.ndarray:
    """Inverse sRGB EOTF: linear values with the clip point at exactly 1.0 (255 -> 1.0).

    ``panorama`` is accepted for a uniform signature and ignored.
    """
    return _linear(ldr_uint8)


# --------------------------------------------------------------------------------------------
# Filtering helpers (separable, numpy only)
# --------------------------------------------------------------------------------------------

def _gauss_matrix(n: int, sigma: float, wrap: bool) -> np.ndarray:
    """n x n matrix applying a normalised 1-D Gaussian along an axis of length n.

    Borders reflect (half-sample symmetric), or wrap around for a panorama's longitude. A dense
    matrix is simple and exact, and cheap at evaluation sizes (n <= 2048: one BLAS call).
    """
    radius = max(1, int(np.ceil(3.0 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (offsets / max(sigma, 1e-6)) ** 2)
    g /= g.sum()
    rows = np.repeat(np.arange(n), offsets.size)
    cols = (np.arange(n)[:, None] + offsets[None, :]).reshape(-1)
    if wrap:
        cols = cols % n
    else:
        period = 2 * n
        cols = cols % period
        cols = np.where(cols >= n, period - 1 - cols, cols)
    m = np.zeros((n, n), dtype=np.float64)
    np.add.at(m, (rows, cols), np.tile(g, n))
    return m


def gaussian_blur(img: np.ndarray, sigma: float, wrap_x: bool = False) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array (reflecting borders; ``wrap_x`` for panoramas)."""
    a = np.asarray(img, dtype=np.float64)
    if sigma <= 0:
        return a.copy()
    gy = _gauss_matrix(a.shape[0], sigma, wrap=False)
    gx = _gauss_matrix(a.shape[1], sigma, wrap=wrap_x)
    return gy @ a @ gx.T


def _shift(a: np.ndarray, dy: int, dx: int, wrap_x: bool) -> np.ndarray:
    """a[y + dy, x + dx] with edge replication (or horizontal wrap)."""
    h, w = a.shape
    ys = np.clip(np.arange(h) + dy, 0, h - 1)
    xs = (np.arange(w) + dx) % w if wrap_x else np.clip(np.arange(w) + dx, 0, w - 1)
    return a[ys][:, xs]


def _morph3(mask: np.ndarray, wrap_x: bool, dilate: bool) -> np.ndarray:
    """3x3 binary dilation (or erosion), separable, with slices only (it runs in a loop).

    Beyond the borders the edge pixel is replicated (which changes nothing for a max/min), or
    the columns wrap around for a panorama."""
    op = np.logical_or if dilate else np.logical_and
    out = mask.copy()
    op(out[:, 1:], mask[:, :-1], out=out[:, 1:])
    op(out[:, :-1], mask[:, 1:], out=out[:, :-1])
    if wrap_x:
        op(out[:, 0], mask[:, -1], out=out[:, 0])
        op(out[:, -1], mask[:, 0], out=out[:, -1])
    tmp = out.copy()
    op(out[1:], tmp[:-1], out=out[1:])
    op(out[:-1], tmp[1:], out=out[:-1])
    return out


def _dilate3(mask: np.ndarray, wrap_x: bool) -> np.ndarray:
    return _morph3(mask, wrap_x, dilate=True)


def _erode3(mask: np.ndarray, wrap_x: bool) -> np.ndarray:
    return _morph3(mask, wrap_x, dilate=False)


def _gradient_magnitude(lum: np.ndarray, wrap_x: bool) -> np.ndarray:
    """5x5 Sobel-like gradient (binomial smoothing [1 4 6 4 1] x derivative [-1 -2 0 2 1]),
    normalised by the sum of |weights| (96), so edges come out thick as Rempel's edge stop wants."""
    smooth = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
    deriv = np.array([-1.0, -2.0, 0.0, 2.0, 1.0])
    offs = range(-2, 3)

    def along(a, kernel, axis):
        acc = np.zeros_like(a)
        for k, o in zip(kernel, offs):
            if k:
                acc += k * (_shift(a, o, 0, wrap_x) if axis == 0 else _shift(a, 0, o, wrap_x))
        return acc

    norm = 96.0
    dy = along(along(lum, deriv, 0), smooth, 1) / norm
    dx = along(along(lum, smooth, 0), deriv, 1) / norm
    return np.sqrt(dx * dx + dy * dy)


# --------------------------------------------------------------------------------------------
# Rempel et al. 2007
# --------------------------------------------------------------------------------------------

def rempel_expand_map(lin: np.ndarray, sigma: float | None = None, threshold: float = 250.0 / 255.0,
                      edge_threshold: float = 0.05, wrap_x: bool = False) -> np.ndarray:
    """Rempel's brightness-enhancement map in [0, 1] (H x W), from a linear image.

    1. Saturated pixels: luminance above ``threshold`` (250/255 display value, linearised, as in
       Rempel et al. for still images).
    2. Blur that binary mask with a large Gaussian (sigma ~ 3 % of the image size; 30 px at
       1024 px, the size Banterle's HDR Toolbox uses) -> smooth map, large where big saturated
       areas are (a small specular highlight gets a small boost, a sky gets a big one).
    3. Edge stop: flood-fill outward from the saturated pixels through pixels whose gradient is
       below ``edge_threshold`` (on linear luminance, 5x5 Sobel) and where the blurred map is not
       negligible, so the boost does not bleed across strong edges onto dark objects; open the
       region with a 3x3 box and feather it slightly.
    4. Map = blurred mask x feathered region.
    """
    h, w = lin.shape[:2]
    lum = lin.astype(np.float64) @ _LUMA.astype(np.float64)
    lin_threshold = float(srgb_to_linear(np.float32(threshold)))
    seed = lum > lin_threshold
    if not seed.any():
        return np.zeros((h, w))
    if sigma is None:
        sigma = 0.03 * max(h, w)
    blurred = gaussian_blur(seed.astype(np.float64), sigma, wrap_x=wrap_x)
    passable = (_gradient_magnitude(lum, wrap_x) < edge_threshold) & (blurred > 1e-3)

    region = seed.copy()
    for _ in range(max(h, w) // 4 + 1):  # geodesic dilation until nothing changes
        before = region
        for _ in range(4):
            region = region | (_dilate3(region, wrap_x) & passable)
        if np.array_equal(region, before):
            break
    region = _dilate3(_erode3(region, wrap_x), wrap_x)  # morphological opening (3x3)
    feather = gaussian_blur(region.astype(np.float64), 1.0, wrap_x=wrap_x)
    return np.clip(blurred * feather, 0.0, 1.0)


def rempel_expand(ldr_uint8: np.ndarray, panorama: bool = False, alpha: float = 4.0,
                  sigma: float | None = None) -> np.ndarray:
    """Rempel et al. 2007 expansion: linearise, then multiply by 1 + (alpha - 1) * expand map.

    The map is mapped linearly to [1, alpha] with alpha = 4 as in the paper. Rempel also stretches
    the result to a display's 0.3..1200 cd/m^2; that is (almost exactly) a global scale, which we
    leave out so the output keeps the contract's units (clip point = 1.0 before the boost), hence
    no scale alignment is needed. Far from saturated regions pixels are exactly the naive inverse.
    ``panorama`` makes the filters wrap around horizontally.
    """
    lin = _linear(ldr_uint8)
    emap = rempel_expand_map(lin, sigma=sigma, wrap_x=panorama)
    return (lin * (1.0 + (alpha - 1.0) * emap)[..., None]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Banterle et al. 2006: inverse Reinhard
# --------------------------------------------------------------------------------------------

def inverse_reinhard(ldr_uint8: np.ndarray, panorama: bool = False, l_white: float = 16.0) -> np.ndarray:
    """Invert Reinhard's global operator L_d = L (1 + L / L_white^2) / (1 + L) per pixel luminance.

    Solving the quadratic for L gives
        L = (L_white^2 / 2) * (L_d - 1 + sqrt((1 - L_d)^2 + 4 L_d / L_white^2)),
    which is ~L_d for dark pixels and reaches L_white at the clip point (L_d = 1): a smooth
    global expansion that lifts bright pixels most. L_d is the luminance of the linearised LDR;
    colour ratios are kept. Reinhard's key and log-average luminance only scale the result, so
    they are omitted: the output scale is arbitrary and the evaluation aligns it
    (``ARBITRARY_SCALE``). ``l_white`` = 16 gives the clip point 4 stops of headroom.
    """
    lin = _linear(ldr_uint8)
    ld = np.clip(lin @ _LUMA, 0.0, 1.0).astype(np.float64)
    lw2 = float(l_white) ** 2
    lexp = 0.5 * lw2 * (ld - 1.0 + np.sqrt((1.0 - ld) ** 2 + 4.0 * ld / lw2))
    ratio = np.where(ld > 1e-6, lexp / np.maximum(ld, 1e-6), 1.0)
    return (lin * ratio[..., None]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Registry used by training.evaluate
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Baseline:
    name: str
    label: str
    run: Callable[..., np.ndarray]   # (ldr_uint8, panorama=bool) -> linear HxWx3
    arbitrary_scale: bool            # True: align to the reference before scoring
    reference: str


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("naive_inverse", "naive inverse sRGB", naive_inverse, False, "inverse sRGB EOTF"),
        Baseline("rempel2007", "Rempel 2007 (BEF, alpha=4)", rempel_expand, False,
                 "Rempel et al., Ldr2Hdr, SIGGRAPH 2007"),
        Baseline("inverse_reinhard", "inverse Reinhard (Banterle 2006, aligned)", inverse_reinhard, True,
                 "Banterle et al., Inverse tone mapping, GRAPHITE 2006"),
    )
}

ARBITRARY_SCALE = {name for name, b in BASELINES.items() if b.arbitrary_scale}
