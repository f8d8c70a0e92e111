"""TensorRT engine cache: keys, file names and the optimisation profile, as pure functions.

A serialized TensorRT engine is only valid for the exact network, GPU model, compute
capability, TensorRT version, precision recipe and input-shape profile it was built for, and
building one takes from seconds (compact model) to minutes (paper model). So engines are cached
on disk under a key made of all of those parts; change any part and the key changes, so a
stale engine is never loaded (and TensorRT's own check would reject a wrong-version one
anyway). Nothing here imports tensorrt: the key logic is unit-tested on machines without a GPU.

Layout of the cache folder (default `~/.cache/hdrcnf/trt`, or `$HDRCNF_CACHE_DIR/trt`):
  hdrcnf-<model sha[:12]>-<precision>-<key[:20]>.engine   the serialized engine
  hdrcnf-<...>.json                                      the key's parts, for humans
  timing-<gpu>-sm<cc>-trt<version>.cache                 TensorRT's timing cache, shared by
                                                          every model built on that GPU
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

#: Bump when the way engines are built changes in a way the other parts do not capture.
KEY_FORMAT = 1
#: Megapixels of windows one TensorRT run may take by default (sets the profile's max batch).
DEFAULT_BATCH_PIXELS = 4 << 20
DEFAULT_TILE = 1024


@dataclass(frozen=True)
class Profile:
    """Optimisation profile over (batch, height, width) of the LDR input; the latents follow.

    TensorRT tunes kernels for `opt` and guarantees every shape between `min` and `max`."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    @classmethod
    def for_tile(cls, tile: int, stride: int, max_batch: int) -> "Profile":
        """Every window the tile planner can produce for `tile` (height and width from one
        stride up to the tile, multiples of the stride), batches of 1..max_batch, tuned for
        full tiles in full batches (the common case on big images)."""
        t = max(stride, (int(tile) // stride) * stride)
        b = max(1, int(max_batch))
        return cls((1, stride, stride), (b, t, t), (b, t, t))

    def covers(self, n: int, h: int, w: int) -> bool:
        return all(lo <= v <= hi for lo, v, hi in zip(self.min, (n, h, w), self.max, strict=True))

    def shapes(self, bundle) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """{input name: (min, opt, max) NCHW shapes} for the LDR input and every latent."""
        c = bundle.input_channels  # the LDR's 3 and any geometry planes (engine.geometry)
        out = {bundle.input_name: tuple((n, c, h, w) for n, h, w in (self.min, self.opt, self.max))}
        for spec in bundle.latents:
            out[spec.name] = tuple(spec.shape(n, h, w) for n, h, w in (self.min, self.opt, self.max))
        return out

    def describe(self) -> str:
        return "x".join(map(str, self.min)) + ".." + "x".join(map(str, self.max))


def engine_cache_key(model_sha256: str, gpu_name: str, compute_capability, trt_version: str,
                     precision: str, profile: Profile, recipe: str = "") -> str:
    """Hex sha256 over every part an engine depends on (pure: same parts, same key).

    `compute_capability` may be a (major, minor) tuple or a "major.minor" string; `recipe`
    names the precision recipe (engine.backends.mixed_precision.RECIPE for fp16)."""
    if isinstance(compute_capability, (tuple, list)):
        compute_capability = ".".join(str(int(v)) for v in compute_capability)
    parts = {
        "format": KEY_FORMAT,
        "model_sha256": str(model_sha256),
        "gpu": str(gpu_name),
        "compute_capability": str(compute_capability),
        "tensorrt": str(trt_version),
        "precision": str(precision),
        "profile": asdict(profile),
        "recipe": str(recipe),
    }
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def default_cache_dir() -> Path:
    """`$HDRCNF_CACHE_DIR/trt` when set, else `~/.cache/hdrcnf/trt`."""
    base = os.environ.get("HDRCNF_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "hdrcnf"
    return root / "trt"


def resolve_cache_dir(cache_dir=None) -> Path:
    """The TensorRT cache folder for a user setting (None -> default). A folder given by the
    user (the CLI's --cache-dir, the add-on's cache-folder preference) is used as is."""
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-").lower() or "gpu"


def engine_file_name(model_sha256: str, precision: str, key: str) -> str:
    return f"hdrcnf-{model_sha256[:12]}-{precision}-{key[:20]}.engine"


def timing_cache_file_name(gpu_name: str, compute_capability, trt_version: str) -> str:
    if isinstance(compute_capability, (tuple, list)):
        compute_capability = "".join(str(int(v)) for v in compute_capability)
    else:
        compute_capability = str(compute_capability).replace(".", "")
    return f"timing-{_slug(gpu_name)}-sm{compute_capability}-trt{_slug(trt_version)}.cache"
