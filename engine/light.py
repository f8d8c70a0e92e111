"""The light stage: put back the light that a panorama's clipped areas hide.

Why it exists: inside a large clipped area (a sun inside a blown-out sky of 10,000-60,000 px)
no local view can tell which pixel is the sun, so a per-pixel flow returns its median guess and
gives back only 8-20 % of a sunny panorama's clipped light (MODEL_CARD, "What the later runs
showed"). What is missing is one number per panorama: how many stops of light the clip hides
beyond what the model returned. Global statistics of the photo and of the model's output
predict it. A ridge regression on FEATURES, fitted per model on photographed panoramas by
``python -m training.light_budget --write-to BUNDLE`` and stored as the bundle's ``light``
block, predicts the number. This stage then adds that much light (never removes any) as a small
disc of uniform radiance inside the clip, where the model's own clipped light is brightest: the
flow cannot make a sun, but the glow it paints peaks around it.

The global statistics are measured on a proxy at most PROXY_WIDTH wide, so the stage costs
about the same for an 8K panorama as for a 1K one. Pure numpy; used by engine.convert for
panoramas and by training.light_budget, which fits and scores it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .color import luminance
from .io import to_unit_float
from .jsonvalues import is_number
from .sphere import area_resize, area_resize_rows, equirect_latitudes, equirect_longitudes, equirect_solid_angles

#: The statistics the amount is predicted from, in the order of a head's weights. A head that
#: names other features was fitted for another version of this stage and is refused.
FEATURES = (
    "clipped fraction",
    "log2 share of the output's light in the clip",
    "depth of the deepest clipped pixel / height",
    "share of the clip above the horizon",
    "log2 mean unclipped LDR value",
    "elevation of the deepest clipped pixel",
    "log2 peak over mean of the output's clipped light",
)
HEAD_TYPE = "ridge-stops"
#: An 8-bit value at or above this (any channel) counts as clipped.
CLIP_CODE = 250
#: The statistics are measured on a copy at most this wide.
PROXY_WIDTH = 1024
#: The extra light goes to the cell of this (rows, columns) grid of 7.5-degree cells where the
#: model's clipped light is brightest on average, at the clipped pixel nearest the cell's centre.
#: Cells, not pixels: the brightest single pixel is often a small highlight away from the sun.
PLACEMENT_GRID = (24, 48)
#: Highest radiance (x the clip point) the added disc may reach. 16-bit float EXRs hold 65504
#: (2**16); this leaves two stops of headroom for the output exposure.
PEAK = 2.0 ** 14
#: The disc starts at the sun's angular radius and grows (x 1.5 a step) only as far as it must to
#: stay under PEAK, up to MAX_RADIUS. Diffuse lighting cannot tell such discs from a point.
SUN_RADIUS = math.radians(0.27)
MAX_RADIUS = math.radians(20.0)
_GROWTH = 1.5


@dataclass(frozen=True)
class LightHead:
    """A fitted amount regression: stops = weights[0] + sum_i weights[i+1] (f_i - mean_i) / std_i,
    clamped to [0, max_stops] (never removes light; never extrapolates far past its data).

    A prediction under ``min_stops`` adds nothing. Why a gate: the relative irradiance error
    punishes a sun added where there is none far more than a missing one, and a small predicted
    amount is more often an overcast sky or a window the flow already got right than a sun it
    missed; ``training.light_budget`` chooses the gate by cross-validation (MODEL_CARD)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...]
    max_stops: float
    clip_code: float = CLIP_CODE
    fitted_on: int = 0  # how many photographed panoramas the fit saw (documentation)
    min_stops: float = 0.0

    def predict(self, features) -> float:
        z = (np.asarray(features, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        raw = self.weights[0] + float(z @ np.asarray(self.weights[1:]))
        stops = float(np.clip(raw, 0.0, self.max_stops))
        return stops if stops >= self.min_stops else 0.0

    def to_meta(self) -> dict:
        return {"type": HEAD_TYPE, "features": list(FEATURES), "mean": list(self.mean), "std": list(self.std),
                "weights": list(self.weights), "max_stops": self.max_stops, "min_stops": self.min_stops,
                "clip_code": self.clip_code, "fitted_on": self.fitted_on}

    @classmethod
    def from_meta(cls, d: dict) -> "LightHead":
        """Build from a model.json ``light`` block that ``head_problem`` accepted (a block
        without ``min_stops``, from before the gate, has none)."""
        return cls(mean=tuple(map(float, d["mean"])), std=tuple(map(float, d["std"])),
                   weights=tuple(map(float, d["weights"])), max_stops=float(d["max_stops"]),
                   clip_code=float(d.get("clip_code", CLIP_CODE)), fitted_on=int(d.get("fitted_on", 0)),
                   min_stops=float(d.get("min_stops", 0.0)))


def head_problem(d) -> str | None:
    """What is wrong with a model.json ``light`` block, in a few words; None when it is valid."""

    def numbers(v, n) -> bool:
        return isinstance(v, list) and len(v) == n and all(map(is_number, v))

    n = len(FEATURES)
    if not isinstance(d, dict):
        return "must be a JSON object"
    if d.get("type") != HEAD_TYPE:
        return f"has type {d.get('type')!r}, this engine knows {HEAD_TYPE!r}"
    if d.get("features") != list(FEATURES):
        return "was fitted on other features than this engine computes (refit it with training.light_budget)"
    if not numbers(d.get("mean"), n) or not numbers(d.get("std"), n) or not numbers(d.get("weights"), n + 1):
        return f"needs 'mean' and 'std' of {n} finite numbers and 'weights' of {n + 1}"
    if min(d["std"]) <= 0:
        return "'std' must be positive"
    if not numbers([d.get("max_stops")], 1) or not 0 <= d["max_stops"] <= 30:
        return "'max_stops' must be a number from 0 to 30"
    if not numbers([d.get("min_stops", 0.0)], 1) or not 0 <= d.get("min_stops", 0.0) <= d["max_stops"]:
        return "'min_stops' must be a number from 0 to 'max_stops'"
    if not numbers([d.get("clip_code", CLIP_CODE)], 1) or not 1 <= d.get("clip_code", CLIP_CODE) <= 255:
        return "'clip_code' must be an 8-bit value from 1 to 255"
    return None


def clipped_mask(ldr: np.ndarray, clip_code: float = CLIP_CODE) -> np.ndarray:
    """(H, W) bool: pixels with any channel at or above `clip_code` on the 8-bit scale, for
    uint8, uint16 or float [0, 1] photos (half a code of tolerance for float rounding)."""
    a = to_unit_float(np.asarray(ldr)) >= np.float32((clip_code - 0.5) / 255.0)
    return a.any(axis=-1) if a.ndim == 3 else a


@dataclass
class Proxy:
    """A panorama and its model output at most PROXY_WIDTH wide, for the global statistics."""

    hdr: np.ndarray            # (h, w, 3) float32 linear
    clipped: np.ndarray        # (h, w) bool
    unclipped_mean: float      # mean LDR value (0..1) of the unclipped pixels
    full_shape: tuple[int, int]


def make_proxy(ldr: np.ndarray, hdr: np.ndarray, clip_code: float = CLIP_CODE, width: int = PROXY_WIDTH) -> Proxy:
    """Area-average `ldr` (H, W, 3) and `hdr` down to at most `width` columns; a proxy pixel is
    clipped when most of its footprint is. Read in row bands: no full-size temporary."""
    H, W = hdr.shape[:2]
    if W <= width:
        mask = clipped_mask(ldr, clip_code)
        small, low = np.asarray(hdr, dtype=np.float32), to_unit_float(ldr)
    else:
        def rows(r0, r1):  # hdr RGB, ldr RGB (0..1), clipped (0/1): one band, 7 channels
            return np.concatenate([hdr[r0:r1], to_unit_float(ldr[r0:r1]),
                                   clipped_mask(ldr[r0:r1], clip_code)[..., None]], axis=-1)

        both = area_resize_rows(rows, H, W, 7, max(1, round(H * width / W)), width)
        small, low, mask = both[..., :3], both[..., 3:6], both[..., 6] >= 0.5
    unclipped = low[~mask]
    return Proxy(np.ascontiguousarray(small), mask, float(unclipped.mean()) if unclipped.size else 1.0, (H, W))


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour erosion; columns wrap around as in a panorama, rows do not."""
    up = np.vstack([np.zeros((1, mask.shape[1]), bool), mask[:-1]])
    down = np.vstack([mask[1:], np.zeros((1, mask.shape[1]), bool)])
    return mask & up & down & np.roll(mask, 1, axis=1) & np.roll(mask, -1, axis=1)


def deepest_point(mask: np.ndarray) -> tuple[int, int, int]:
    """(row, col, depth): the pixel of `mask` farthest from any pixel outside it, in erosion
    steps. Ties go to the first pixel in reading order. A global estimator can find this place
    from the LDR alone; its depth and elevation are two of the FEATURES."""
    if not mask.any():
        raise ValueError("empty mask")
    cur, depth = mask.copy(), 1
    while True:
        nxt = _erode(cur)
        if not nxt.any():
            y, x = np.argwhere(cur)[0]
            return int(y), int(x), depth
        cur, depth = nxt, depth + 1


def solid_angles(h: int, w: int) -> np.ndarray:
    """[H, W] solid angle (sr) of each equirectangular pixel."""
    return np.broadcast_to(equirect_solid_angles(h, w)[:, None], (h, w))


def luminance_energy(hdr: np.ndarray) -> np.ndarray:
    """[H, W] luminance x solid angle: each pixel's share of a panorama's light."""
    lum = luminance(np.maximum(hdr, 0.0)).astype(np.float64)
    return lum * solid_angles(*lum.shape)


def light_features(proxy: Proxy) -> np.ndarray:
    """The statistics named in FEATURES (the proxy must have clipped pixels)."""
    clipped = proxy.clipped
    h, _ = clipped.shape
    sa = solid_angles(*clipped.shape)
    light = luminance_energy(proxy.hdr)
    y, _, depth = deepest_point(clipped)
    # How peaked the flow's own clipped light is: around a sun it paints a glow that peaks
    # (the flow cannot make the sun itself), over an overcast sky or a window it paints a flat
    # lift. Without it the head could not tell the two apart and added suns to overcast skies;
    # with it, leave-one-panorama-out error on the fit set fell from 0.85 to 0.72 stops
    # (MODEL_CARD). Halving the proxy's width moves it by 0.06 stops (its spread: 1.1).
    lum = light[clipped] / sa[clipped]  # luminance of the clipped pixels, already computed
    return np.array([
        clipped.mean(),
        np.log2(light[clipped].sum() / max(light.sum(), 1e-12) + 1e-6),
        depth / h,
        (clipped * sa)[: h // 2].sum() / (clipped * sa).sum(),
        np.log2(proxy.unclipped_mean + 1e-3),
        1.0 - y / h,
        np.log2((lum.max() + 1e-6) / (lum.mean() + 1e-6)),
    ])


def light_centre(proxy: Proxy) -> tuple[int, int]:
    """(row, col) in the proxy where the stage puts the extra light (see PLACEMENT_GRID). On the
    held-out panoramas, the right amount put here leaves the irradiance error the true sun's place
    leaves (0.157 vs 0.158); at the deepest clipped pixel it leaves 0.259 (MODEL_CARD)."""
    clipped = proxy.clipped
    h, w = clipped.shape
    rows, cols = PLACEMENT_GRID
    cells = area_resize(luminance(np.maximum(proxy.hdr, 0.0)) * clipped, rows, cols)
    r, c = np.unravel_index(int(np.argmax(cells)), cells.shape)
    cy, cx = min(h - 1, int((r + 0.5) * h / rows)), min(w - 1, int((c + 0.5) * w / cols))
    lat, lon = equirect_latitudes(h), equirect_longitudes(w)
    cosang = _cos_angle(lat, lon, lat[cy], lon[cx])
    y, x = np.unravel_index(int(np.argmax(np.where(clipped, cosang, -2.0))), clipped.shape)
    return int(y), int(x)


def _cos_angle(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    """[len(lat), len(lon)] cosine of the angle between each (lat, lon) and (lat0, lon0)."""
    return (np.sin(lat)[:, None] * math.sin(lat0)
            + np.cos(lat)[:, None] * math.cos(lat0) * np.cos(lon[None, :] - lon0))


def _disc(H: int, W: int, cy: int, cx: int, radius: float):
    """Rows, columns (wrapping) and the in-disc mask of the box around the spherical cap of
    angular `radius` centred on pixel (cy, cx) of an H x W panorama."""
    lat, lon = equirect_latitudes(H), equirect_longitudes(W)
    rows = np.nonzero(np.abs(lat - lat[cy]) <= radius + math.pi / H)[0]
    reach = float(np.abs(lat[rows]).max())
    if reach + 1e-9 >= math.pi / 2 or radius >= math.pi / 2:
        cols = np.arange(W)
    else:
        half = min(math.pi, 1.1 * radius / math.cos(reach)) + 2.0 * math.pi / W
        n = min(W // 2, int(math.ceil(half / (2.0 * math.pi / W))))
        cols = np.unique((cx + np.arange(-n, n + 1)) % W)
    return rows, cols, _cos_angle(lat[rows], lon[cols], lat[cy], lon[cx]) >= math.cos(radius)


def deposit(hdr: np.ndarray, ldr: np.ndarray, cy: int, cx: int, energy: np.ndarray,
            peak: float, clip_code: float = CLIP_CODE) -> float:
    """Add RGB `energy` (radiance x sr) to `hdr` in place, as uniform radiance over the clipped
    pixels of the smallest cap around (cy, cx), from the sun's size up, that keeps every channel
    at or below `peak`. When not even MAX_RADIUS's cap can, its clipped pixels are filled to
    `peak` and the rest of the energy is dropped. Unclipped pixels are measured light and are
    never touched. Returns the cap's radius in degrees."""
    H, W = hdr.shape[:2]
    radius = SUN_RADIUS
    while True:
        rows, cols, cap = _disc(H, W, cy, cx, radius)
        box = np.ix_(rows, cols)
        inside = cap & clipped_mask(ldr[box], clip_code)
        last = radius >= MAX_RADIUS
        if last and not inside.any():
            inside = cap  # no clipped pixel near: the cap itself
        if inside.any():
            sa = np.broadcast_to(equirect_solid_angles(H, W)[rows][:, None], inside.shape)
            add = np.asarray(energy, dtype=np.float64) / float(sa[inside].sum())
            region = hdr[box]
            lifted = region[inside] + add.astype(np.float32)
            if last or float(lifted.max()) <= peak:
                # Past the largest cap the clip is filled to the peak and the rest dropped: a
                # finite output beats an inf in every renderer (never lowering the flow's light).
                region[inside] = np.maximum(region[inside], np.minimum(lifted, np.float32(peak)))
                hdr[box] = region
                return math.degrees(radius)
        radius = min(MAX_RADIUS, radius * _GROWTH)


def add_light(hdr: np.ndarray, ldr: np.ndarray, proxy: Proxy, stops: float, peak: float,
              clip_code: float = CLIP_CODE) -> float:
    """Raise the light in the clip by `stops` (nothing when <= 0), in place: the extra light has
    the colour of the model's clipped light and sits at `light_centre`.
    Returns the radius in degrees of the disc that took it (0 when nothing was added)."""
    if stops <= 0 or not proxy.clipped.any():
        return 0.0
    sa = solid_angles(*proxy.clipped.shape)
    energy = (np.asarray(proxy.hdr, np.float64) * (proxy.clipped * sa)[..., None]).sum(axis=(0, 1))
    energy *= 2.0 ** stops - 1.0
    if not np.isfinite(energy).all() or energy.max() <= 0:
        return 0.0
    y, x = light_centre(proxy)
    H, W = proxy.full_shape
    h, w = proxy.clipped.shape
    cy, cx = min(H - 1, int((y + 0.5) * H / h)), min(W - 1, int((x + 0.5) * W / w))
    return deposit(hdr, ldr, cy, cx, energy, peak, clip_code)


def restore_light(hdr: np.ndarray, ldr: np.ndarray, head: LightHead, peak: float) -> float | None:
    """The stage: predict the stops of light the clip hides from `head` and add them to the
    panorama `hdr` in place. Returns the stops added (0.0 when the head predicts none), or
    None when nothing is clipped."""
    proxy = make_proxy(ldr, hdr, head.clip_code)
    if not proxy.clipped.any():
        return None
    stops = head.predict(light_features(proxy))
    add_light(hdr, ldr, proxy, stops, peak, head.clip_code)
    return stops
