"""Quality metrics for single-image HDR reconstruction (pure numpy).

Every function takes *relative* linear RGB images (H x W x 3, float) in the project's convention:
scene-referred radiance scaled so that the LDR clip point is 1.0 (see docs/contracts.md). Each
metric answers one question a user of the output cares about:

* ``pu21_psnr``       -- does the image *look* right, with highlights weighted as the eye weighs
                         them? (PSNR on PU21-encoded absolute luminance, Mantiuk & Azimi 2021)
* ``highlight_stops`` -- inside the pixels the camera clipped, how many stops is the recovered
                         brightness off? (the information the LDR photo does not carry)
* ``all_stops``       -- the same over the whole image (also catches damage to well-exposed
                         pixels and crushed shadows)
* ``irradiance_rel_error`` / ``total_power_stops`` -- for panoramas: does the environment light a
                         diffuse scene the way the real one does? That is what a 3D artist sees
                         when the HDRI is used as a world light; it is dominated by the sun/lamps
                         that are clipped in the LDR, so it is the most direct test of "enough
                         energy in the highlights".

Panoramas are equirectangular in the convention of ``training.camera``: x right, y up, z forward;
the centre column looks along +z (longitude 0), column 0 is longitude -180 deg, row 0 straight up.
The lighting metrics are rotation invariant, so any consistent convention would give the same
numbers; it is stated so the helpers can be reused.
"""
from __future__ import annotations

import numpy as np

from engine.color import luminance as engine_luminance
from engine.sphere import equirect_directions, equirect_solid_angles

# --------------------------------------------------------------------------------------------
# Luminance
# --------------------------------------------------------------------------------------------

# Rec.709 / sRGB primaries, D65: the project's working colour space (engine.color uses the same).


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec.709 relative luminance of a linear RGB image (... x 3) -> (...).

    Negative values (which a model may produce) are clamped to 0 first: they are not light.
    """
    return engine_luminance(np.maximum(np.asarray(rgb, dtype=np.float32), 0.0))


def peak_stops(rgb: np.ndarray) -> float:
    """How far an HDR image's brightest pixel is above its median, in stops (luminance): the
    one-number dynamic range that data MANIFESTs report and that tells a clipped capture (a few
    stops) from a real HDR one (10-20)."""
    lum = luminance(rgb).ravel()
    return float(np.log2(lum.max() / max(float(np.median(lum)), 1e-9)))


# --------------------------------------------------------------------------------------------
# PU21
# --------------------------------------------------------------------------------------------

# PU21 encoding, 'banding_glare' variant -- the one the authors recommend ("Please use only the
# banding_glare variant"). Parameters p1..p7 as published in the reference implementation
# github.com/gfxdisp/pu21 (matlab/pu21_encoder.m, parameters dated 06/02/2020):
#     V = p7 * (((p1 + p2 * Y^p4) / (1 + p3 * Y^p4))^p5 - p6),   Y in [0.005, 10000] cd/m^2
PU21_BANDING_GLARE = (
    0.353487901,      # p1
    0.3734658629,     # p2
    8.277049286e-05,  # p3
    0.9062562627,     # p4
    0.09150303166,    # p5
    0.9099517204,     # p6
    596.3148142,      # p7
)
PU21_L_MIN = 0.005    # cd/m^2, lower end of the encoding's valid range
PU21_L_MAX = 10000.0  # cd/m^2, upper end
# Peak value for PSNR on PU21 values. The reference pu21_metric.m calls MATLAB's
# psnr(P_test, P_ref, 256): PU21 maps ~100 cd/m^2 (a typical SDR display white) to ~256, so a PSNR
# on PU values is comparable to an 8-bit PSNR on an SDR display. It is a fixed constant, NOT the
# maximum of the encoded image and NOT encode(10000) (~595.4); other ports that use those peaks
# report numbers that are not comparable with published PU21-PSNR values.
PU21_PSNR_PEAK = 256.0


def pu21_encode(luminance_cd: np.ndarray) -> np.ndarray:
    """Absolute linear luminance (cd/m^2) -> PU21 'banding_glare' values (~0 .. 595).

    PU21 makes differences in the encoded values roughly proportional to *visible* differences
    across 0.005..10000 cd/m^2, so simple metrics (PSNR) can be used on HDR images. Values are
    clamped to the valid range as the reference does; the input MUST be absolute (cd/m^2), which
    is why ``pu21_psnr`` maps the relative images to a display first.
    """
    p1, p2, p3, p4, p5, p6, p7 = PU21_BANDING_GLARE
    y = np.clip(np.asarray(luminance_cd, dtype=np.float64), PU21_L_MIN, PU21_L_MAX)
    yp = y ** p4
    return p7 * (((p1 + p2 * yp) / (1.0 + p3 * yp)) ** p5 - p6)


def pu21_decode(v: np.ndarray) -> np.ndarray:
    """Inverse of ``pu21_encode`` (PU21 values -> cd/m^2), for tests and plots."""
    p1, p2, p3, p4, p5, p6, p7 = PU21_BANDING_GLARE
    v = np.asarray(v, dtype=np.float64)
    vp = np.maximum(v / p7 + p6, 0.0) ** (1.0 / p5)
    return (np.maximum(vp - p1, 0.0) / (p2 - p3 * vp)) ** (1.0 / p4)


def pu21_psnr(pred_lin: np.ndarray, ref_lin: np.ndarray, clip_cd: float = 200.0) -> float:
    """PSNR in dB between PU21-encoded RGB images, as the reference ``pu21_metric(.., 'PSNR')``.

    Both images are relative (LDR clip point = 1.0); they are shown on a virtual HDR display
    where the clip point is ``clip_cd`` cd/m^2 (200: a bright SDR white), so a highlight 5 stops
    above the clip is 6400 cd/m^2 and still inside PU21's range, while 0.005 cd/m^2 is 15 stops
    below the clip. Each RGB channel is PU21-encoded (the reference applies the luminance
    encoding to colour channels for its colour PSNR), the MSE is taken over all pixels and
    channels, and PSNR = 10 log10(256^2 / MSE) with the reference's fixed peak of 256.
    Identical images give +inf.
    """
    pred = np.asarray(pred_lin, dtype=np.float64)
    ref = np.asarray(ref_lin, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs reference {ref.shape}")
    # A NaN is a wrong pixel, not a missing one: send it to the bottom of the range.
    pred = np.nan_to_num(pred, nan=0.0, posinf=PU21_L_MAX, neginf=0.0)
    mse = float(np.mean((pu21_encode(pred * clip_cd) - pu21_encode(ref * clip_cd)) ** 2))
    if mse <= 0.0:
        return float("inf")
    return float(10.0 * np.log10(PU21_PSNR_PEAK ** 2 / mse))


# --------------------------------------------------------------------------------------------
# Errors in stops
# --------------------------------------------------------------------------------------------

STOPS_EPS = 1e-3
"""Floor added to both luminances before the log ratio (relative units, clip point = 1.0).

It is ~1/1000 of the clip level, about three 8-bit sRGB codes above black: below it differences
are invisible noise, and without it a single black pixel would dominate a mean of log ratios.
Same value as the target transform's eps."""


def _abs_log2_ratio(pred: np.ndarray, ref: np.ndarray, eps: float) -> np.ndarray:
    lp = luminance(np.nan_to_num(np.asarray(pred, dtype=np.float64), nan=0.0, posinf=1e30))
    lr = luminance(ref)
    return np.abs(np.log2((lp + eps) / (lr + eps)))


def highlight_stops(pred: np.ndarray, ref: np.ndarray, clipped_mask: np.ndarray,
                    eps: float = STOPS_EPS) -> float:
    """Mean |log2(L_pred / L_ref)| over the clipped pixels (Rec.709 luminance), in stops.

    This is the number the product lives by: the clipped pixels are where the LDR carries no
    information, and a method that leaves suns at the clip level is off by many stops here even
    if its PSNR looks fine. NaN when the mask is empty (nothing clipped: no highlight to judge).
    """
    mask = np.asarray(clipped_mask, dtype=bool)
    if mask.shape != np.shape(ref)[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {np.shape(ref)[:2]}")
    if not mask.any():
        return float("nan")
    return float(_abs_log2_ratio(pred, ref, eps)[mask].mean())


def all_stops(pred: np.ndarray, ref: np.ndarray, eps: float = STOPS_EPS) -> float:
    """Mean |log2(L_pred / L_ref)| over all pixels, in stops (see ``highlight_stops``)."""
    return float(_abs_log2_ratio(pred, ref, eps).mean())


# --------------------------------------------------------------------------------------------
# Scale alignment
# --------------------------------------------------------------------------------------------

def well_exposed_mask(ldr: np.ndarray, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    """Pixels whose display-encoded LDR channels all lie in [low, high] (HxW bool).

    These pixels carry reliable relative radiance (not clipped, not crushed into the noise), so
    they are where a global scale between two reconstructions can be measured. ``ldr`` may be
    uint8 (0..255) or float (0..1).
    """
    x = np.asarray(ldr)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    return (x.min(axis=-1) >= low) & (x.max(axis=-1) <= high)


def align_scale(pred: np.ndarray, ref: np.ndarray, well_exposed_mask: np.ndarray,
                eps: float = 1e-6) -> float:
    """Scalar s such that ``s * pred`` matches ``ref`` on well-exposed pixels (median ratio).

    When it is applied: only to methods whose output scale is arbitrary by construction (e.g. the
    inverse-Reinhard expansion operator, whose output units depend on its key and white point).
    The model and the other baselines produce the contract's units (clip point = 1.0), so they
    are evaluated as they are -- re-scaling them would hide a real exposure error from the user,
    who gets no ground truth to align with. For those methods ``evaluate`` still reports
    log2(s) as a diagnostic of exposure bias. The median of per-pixel luminance ratios is robust
    to the few pixels where a method legitimately differs (near highlights).
    Returns 1.0 when no usable pixel exists.
    """
    mask = np.asarray(well_exposed_mask, dtype=bool)
    lp = luminance(np.nan_to_num(np.asarray(pred, dtype=np.float64)))
    lr = luminance(ref)
    ok = mask & (lp > eps) & (lr > eps) & np.isfinite(lp)
    if not ok.any():
        return 1.0
    s = float(np.median(lr[ok] / lp[ok]))
    return s if np.isfinite(s) and s > 0.0 else 1.0


# --------------------------------------------------------------------------------------------
# Panorama lighting: spherical harmonics, irradiance, power
# --------------------------------------------------------------------------------------------

def sh9_basis(d: np.ndarray) -> np.ndarray:
    """Real spherical harmonics up to order 2 at unit directions d (... x 3) -> (... x 9).

    Order: Y00, Y1-1, Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22 with the usual constants (Ramamoorthi &
    Hanrahan 2001), using z as the polar axis. Any orthonormal basis of the same band-limited
    space gives the same irradiance, so the choice of axis does not matter.
    """
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    out = np.empty(d.shape[:-1] + (9,))
    out[..., 0] = 0.282094791773878
    out[..., 1] = 0.488602511902920 * y
    out[..., 2] = 0.488602511902920 * z
    out[..., 3] = 0.488602511902920 * x
    out[..., 4] = 1.092548430592079 * x * y
    out[..., 5] = 1.092548430592079 * y * z
    out[..., 6] = 0.315391565252520 * (3.0 * z * z - 1.0)
    out[..., 7] = 1.092548430592079 * x * z
    out[..., 8] = 0.546274215296040 * (x * x - y * y)
    return out


# Convolution of radiance with the clamped cosine, per SH band l (Ramamoorthi & Hanrahan 2001,
# "An efficient representation for irradiance environment maps"): A0 = pi, A1 = 2pi/3, A2 = pi/4.
# Bands 0-2 hold >99 % of the energy of the clamped-cosine kernel, which is why 9 numbers
# describe diffuse lighting (average error ~1-3 % on real environments).
SH9_COSINE_LOBE = np.array([np.pi] + [2.0 * np.pi / 3.0] * 3 + [np.pi / 4.0] * 5)


def sh9_project(pano: np.ndarray, rows_per_block: int = 64) -> np.ndarray:
    """Project an equirectangular image (H x W x C, or H x W) onto 9 real SH: (9 x C) or (9,).

    Coefficients L_lm = sum over pixels of L(w) Y_lm(w) dOmega with exact per-pixel solid angles.
    Processed in row blocks so a 4k panorama does not need gigabytes of basis values.
    """
    img = np.asarray(pano, dtype=np.float64)
    squeeze = img.ndim == 2
    if squeeze:
        img = img[..., None]
    h, w, c = img.shape
    dirs = equirect_directions(h, w)
    omega = equirect_solid_angles(h, w)
    coeffs = np.zeros((9, c))
    for r0 in range(0, h, rows_per_block):
        r1 = min(h, r0 + rows_per_block)
        basis = sh9_basis(dirs[r0:r1]) * omega[r0:r1, None, None]  # (rows, W, 9)
        coeffs += np.einsum("hwk,hwc->kc", basis, img[r0:r1])
    return coeffs[:, 0] if squeeze else coeffs


def sh9_irradiance(coeffs: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Diffuse irradiance E(n) = sum_lm A_l L_lm Y_lm(n) at unit normals (N x 3).

    ``coeffs`` is (9,) or (9 x C); returns (N,) or (N x C). A constant environment L gives
    E = pi * L everywhere.
    """
    c = np.asarray(coeffs, dtype=np.float64)
    weighted = c * (SH9_COSINE_LOBE if c.ndim == 1 else SH9_COSINE_LOBE[:, None])
    return sh9_basis(np.asarray(normals, dtype=np.float64)) @ weighted


def fibonacci_sphere(n: int = 256) -> np.ndarray:
    """n nearly uniformly spread unit vectors (golden-angle spiral), deterministic."""
    i = np.arange(n) + 0.5
    y = 1.0 - 2.0 * i / n
    r = np.sqrt(np.maximum(0.0, 1.0 - y * y))
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.cos(phi), y, r * np.sin(phi)], axis=-1)


_NORMALS_256 = fibonacci_sphere(256)


def _pano_luminance(pano: np.ndarray) -> np.ndarray:
    arr = np.asarray(pano, dtype=np.float64)
    if arr.ndim == 3:
        return luminance(np.nan_to_num(arr, nan=0.0, posinf=65504.0))
    return np.maximum(np.nan_to_num(arr, nan=0.0, posinf=65504.0), 0.0)


def pano_irradiance(pano: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
    """Diffuse irradiance (luminance) the panorama casts on surfaces facing ``normals``."""
    n = _NORMALS_256 if normals is None else normals
    return sh9_irradiance(sh9_project(_pano_luminance(pano)), n)


def irradiance_rel_error(pred: np.ndarray, ref: np.ndarray, normals: np.ndarray | None = None) -> float:
    """mean_n |E_pred(n) - E_ref(n)| / mean_n E_ref(n), over 256 Fibonacci-sphere normals.

    The lighting error a 3D artist sees on diffuse objects lit by the HDRI, as a fraction of the
    average irradiance (0.25 = surfaces are on average 25 % too bright or too dark). Normalising by
    the *mean* irradiance (not per normal) keeps the dark side of a sunlit scene from dominating.
    NaN if the reference casts no light.
    """
    e_pred = pano_irradiance(pred, normals)
    e_ref = pano_irradiance(ref, normals)
    denom = float(np.mean(e_ref))
    if not denom > 0.0:
        return float("nan")
    return float(np.mean(np.abs(e_pred - e_ref)) / denom)


def total_power(pano: np.ndarray) -> float:
    """Total radiant power of an environment: sum of luminance x pixel solid angle (4*pi*L if constant)."""
    lum = _pano_luminance(pano)
    return float(np.sum(lum * equirect_solid_angles(*lum.shape)[:, None]))


def total_power_stops(pred: np.ndarray, ref: np.ndarray, eps: float = 1e-12) -> float:
    """|log2(P_pred / P_ref)|: how many stops the whole environment is too bright or too dark.

    A sun left at the clip level typically loses most of the scene's power; this is the single
    number that says so.
    """
    return float(abs(np.log2((total_power(pred) + eps) / (total_power(ref) + eps))))
