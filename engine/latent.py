"""Seeded Gaussian latents for the whole image, generated lazily block by block.

Why blocks: the flow is sampled from standardised latents z_l ~ T * N(0, 1), one per level. If
each tile drew its own noise, tiles would disagree in their overlap and a result would depend on
the tile size and the backend. Instead the latent of level l at latent pixel (y, x) is defined
once for the whole image: it is element (y % B, x % B) of block (y // B, x // B), and every
block is drawn from its own generator seeded with (seed, sample, level, by, bx). Any crop can
then be produced without materialising the whole field, and it is bit-identical whatever the
tiling. The horizontal coordinate is taken modulo the (padded) width so a panorama's latents
wrap around like its pixels.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from .bundle import LatentSpec

#: Block side in latent pixels. Changing it changes every generated image: it is part of what a
#: seed means, so treat it like a file format constant.
BLOCK = 64


def latent_block(seed: int, sample: int, level: int, by: int, bx: int, channels: int,
                 block: int = BLOCK) -> np.ndarray:
    """The standard-normal (channels, block, block) float32 block of one level of one sample."""
    rng = np.random.default_rng([seed, sample, level, by, bx])
    return rng.standard_normal((channels, block, block), dtype=np.float32)


class LatentField:
    """Standardised latents of all levels for a (height, width) image (padded to the stride).

    `specs` come from the bundle; level numbers used for seeding are 1..L in that order.
    `crop(y0, x0, h, w)` takes image-pixel coordinates that are multiples of every level's
    scale (the bundle stride guarantees that) and returns {name: float32 [1, C, h/s, w/s]}
    already multiplied by `temperature`. Rows must lie inside the image; columns wrap.

    Blocks are generated once per image: neighbouring tiles share blocks (their windows
    overlap), so recently drawn blocks are kept in a small LRU cache bounded by `cache_bytes`
    (a cache hit returns exactly the block a fresh draw would give, so the cache changes only
    the speed, never a value)."""

    def __init__(self, specs: Sequence[LatentSpec], height: int, width: int, seed: int,
                 sample: int = 0, temperature: float = 1.0, block: int = BLOCK,
                 cache_bytes: int = 64 << 20):
        if seed < 0 or sample < 0:
            raise ValueError("seed and sample must be non-negative integers")
        for s in specs:
            if height % s.scale or width % s.scale:
                raise ValueError(f"image {width}x{height} is not a multiple of latent {s.name}'s scale {s.scale}")
        self.specs = tuple(specs)
        self.height, self.width = int(height), int(width)
        self.seed, self.sample = int(seed), int(sample)
        self.temperature = float(temperature)
        self.block = int(block)
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._cached = 0
        self.blocks_drawn = 0  # how many blocks were generated (for tests and benchmarks)

    def crop(self, y0: int, x0: int, h: int, w: int) -> dict[str, np.ndarray]:
        out = {}
        for level, spec in enumerate(self.specs, start=1):
            s = spec.scale
            if y0 % s or x0 % s or h % s or w % s:
                raise ValueError(f"crop ({y0}, {x0}, {h}, {w}) is not aligned to latent {spec.name}'s scale {s}")
            out[spec.name] = self._crop_level(level, spec, y0 // s, x0 // s, h // s, w // s)
        return out

    def full(self) -> dict[str, np.ndarray]:
        """The whole field (for tests and small images)."""
        return self.crop(0, 0, self.height, self.width)

    def _block(self, level: int, spec: LatentSpec, by: int, bx: int) -> np.ndarray:
        key = (level, by, bx)
        blk = self._cache.get(key)
        if blk is not None:
            self._cache.move_to_end(key)
            return blk
        blk = latent_block(self.seed, self.sample, level, by, bx, spec.channels, self.block)
        self.blocks_drawn += 1
        if blk.nbytes <= self.cache_bytes:
            self._cache[key] = blk
            self._cached += blk.nbytes
            while self._cached > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes
        return blk

    def _crop_level(self, level: int, spec: LatentSpec, ly0: int, lx0: int, lh: int, lw: int) -> np.ndarray:
        hl, wl = self.height // spec.scale, self.width // spec.scale
        if ly0 < 0 or ly0 + lh > hl:
            raise ValueError(f"rows {ly0 * spec.scale}..{(ly0 + lh) * spec.scale} "
                             f"outside the image height {self.height}")
        B = self.block
        out = np.empty((1, spec.channels, lh, lw), dtype=np.float32)
        # Rectangular runs: rows split at block boundaries; columns at block boundaries and at
        # the wrap point (a block may be cut short by the image's right edge).
        y = ly0
        while y < ly0 + lh:
            by, oy = divmod(y, B)
            ny = min(B - oy, ly0 + lh - y)
            x = lx0
            while x < lx0 + lw:
                gx = x % wl
                bx, ox = divmod(gx, B)
                nx = min(B - ox, wl - gx, lx0 + lw - x)
                blk = self._block(level, spec, by, bx)
                out[0, :, y - ly0:y - ly0 + ny, x - lx0:x - lx0 + nx] = blk[:, oy:oy + ny, ox:ox + nx]
                x += nx
            y += ny
        if self.temperature != 1.0:
            out *= np.float32(self.temperature)
        return out
