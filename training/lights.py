"""Synthetic light sources for training crops: a bright disc with a glare/aureole falloff.

Why: the data holds about ten sunny or lamp-lit scenes, so the model rarely sees what decides a
light's brightness in a clipped photo. Light from a small source reaches the camera spread out by
forward scattering in the air and by the lens, roughly ``L(d) = I * glare * (R / d) ** falloff``
outside a disc of radius ``R`` (``d``: angular distance from the source). The camera clips
everything above its clip point, so the clipped blob around a source grows with the source's
intensity, ``d_clip = R * (glare * I / clip) ** (1 / falloff)``, and the unclipped halo just outside
it shows the falloff. Adding sources of random intensity, size and glare teaches that relation
with as many examples as training asks for, instead of the handful the data holds.

Geometry is in pixels of the view the light is added to. ``row_scale`` is the horizontal size of
a pixel relative to its vertical size, per row: cos(latitude) for equirectangular crops, where a
source near the zenith smears into a wide band as the real noon sun does, and 1 for photos and
rectilinear views.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.color import REC709


@dataclass
class SourceKind:
    """Ranges one kind of source is drawn from (sizes in pixels of the view, log-uniform)."""
    stops: tuple[float, float]      # disc radiance above the scene's clip point (uniform)
    radius_px: tuple[float, float]  # disc radius; >= 0.75 so some pixel centre is always inside
    glare: tuple[float, float]      # halo radiance at the disc's edge / disc radiance
    max_halo_px: float              # the clipped blob reaches at most this far beyond the disc


@dataclass
class LightConfig:
    # the sun: a disc of about a pixel at panorama resolutions, 12-17 stops above a sky-metered
    # clip point, in an aureole that clips over tens of pixels
    sun: SourceKind = field(default_factory=lambda: SourceKind((12.0, 17.0), (0.75, 1.5), (1e-3, 3e-2), 48.0))
    # lamps and bulbs: larger discs, 4-13 stops above the clip point, little glare
    lamp: SourceKind = field(default_factory=lambda: SourceKind((4.0, 13.0), (2.0, 16.0), (1e-4, 3e-3), 24.0))
    p_sun: float = 0.5
    falloff: tuple[float, float] = (2.0, 3.0)  # halo exponent (uniform)
    tint: float = 0.08                         # std of the per-channel log colour around white

    @classmethod
    def from_json(cls, d: dict) -> "LightConfig":
        d = dict(d)
        kinds = {k: SourceKind(**{f: tuple(v) if isinstance(v, list) else v for f, v in d.pop(k).items()})
                 for k in ("sun", "lamp") if k in d}
        return cls(**kinds, **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def light_radiance(shape: tuple[int, int], centre: tuple[float, float], radius: float, glare: float,
                   falloff: float, row_scale: np.ndarray | None = None) -> np.ndarray:
    """[H, W] radiance of a unit-intensity source: 1 inside the disc, ``glare * (radius / d) ** falloff``
    outside; ``d`` is the distance in pixels with each row's horizontal pixel size ``row_scale``."""
    h, w = shape
    rows = np.arange(h, dtype=np.float32)[:, None] + 0.5
    cols = np.arange(w, dtype=np.float32)[None, :] + 0.5
    sx = np.ones((h, 1), np.float32) if row_scale is None else np.asarray(row_scale, np.float32).reshape(h, 1)
    d = np.sqrt((rows - centre[0]) ** 2 + ((cols - centre[1]) * sx) ** 2)
    halo = glare * (radius / np.maximum(d, radius)) ** falloff
    return np.where(d <= radius, np.float32(1.0), halo).astype(np.float32)


def add_random_light(hdr: np.ndarray, clip: float, rng: np.random.Generator, cfg: LightConfig | None = None,
                     row_scale: np.ndarray | None = None) -> np.ndarray:
    """``hdr`` [H, W, 3] plus one sun- or lamp-like source centred on a random pixel; ``clip`` is the
    radiance the camera will clip at. Returns a new array; ``hdr`` is not modified."""
    cfg = cfg or LightConfig()
    kind = cfg.sun if rng.random() < cfg.p_sun else cfg.lamp
    h, w = hdr.shape[:2]
    centre = (rng.uniform(0, h), rng.uniform(0, w))
    radius = _log_uniform(rng, *kind.radius_px)
    glare = _log_uniform(rng, *kind.glare)
    falloff = float(rng.uniform(*cfg.falloff))
    ratio = 2.0 ** rng.uniform(*kind.stops)  # disc radiance / clip
    # the halo falls to the clip point at radius * (glare * ratio) ** (1 / falloff): a brighter
    # source clips over a wider blob. Past max_halo_px the glare is lowered so the blob stops there.
    reach = radius * max(glare * ratio, 1.0) ** (1.0 / falloff)
    if reach > radius + kind.max_halo_px:
        glare = ((radius + kind.max_halo_px) / radius) ** falloff / ratio
    intensity = clip * ratio
    colour = np.exp(cfg.tint * rng.standard_normal(3)).astype(np.float32)
    unit = light_radiance((h, w), centre, radius, glare, falloff, row_scale)
    return (hdr + np.float32(intensity) * unit[..., None] * colour).astype(np.float32)
