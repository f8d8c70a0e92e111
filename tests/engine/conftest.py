"""Fixtures for the engine tests: model bundles, a backend, and photos written as real files.

`model_bundle` prefers the real default bundle (engine/models/default) so CI exercises the real
flow; until that exists it falls back to the synthetic graph from synthetic_bundle.py.
`synthetic_bundle` is always the synthetic one (known receptive field, cheap, exact maths).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.backends import create_backend
from engine.bundle import default_bundle_path, load_bundle

from .synthetic_bundle import make_synthetic_bundle


def real_bundle_available() -> bool:
    return (default_bundle_path() / "model.json").is_file()


@pytest.fixture(scope="session")
def synthetic_bundle(tmp_path_factory):
    return make_synthetic_bundle(tmp_path_factory.mktemp("synthetic") / "bundle")


@pytest.fixture(scope="session")
def synthetic_backend(synthetic_bundle):
    return create_backend(synthetic_bundle, "onnxruntime")


@pytest.fixture(scope="session")
def model_bundle(synthetic_bundle):
    """The real default model when shipped, else the synthetic one."""
    if real_bundle_available():
        return load_bundle()
    return synthetic_bundle


@pytest.fixture(scope="session")
def model_backend(model_bundle):
    return create_backend(model_bundle, "onnxruntime")


def make_photo(h: int, w: int, seed: int = 0, sun: tuple[float, float] | None = None) -> np.ndarray:
    """A smooth, photo-like uint8 (h, w, 3) image with a clipped bright blob (a 'sun').

    `sun` = (row, col) as fractions of the size; the blob wraps horizontally so panorama tests
    can put it across the seam."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.25 + 0.35 * (1 - yy / h)[..., None] * np.array([0.6, 0.8, 1.0], np.float32)
    base = base + 0.1 * np.sin(2 * np.pi * xx / w)[..., None]
    sy, sx = sun if sun is not None else (0.3, 0.4)
    dx = np.abs(xx - sx * w)
    dx = np.minimum(dx, w - dx)
    r2 = ((yy - sy * h) ** 2 + dx**2) / (0.08 * min(h, w)) ** 2
    base = base + 1.5 * np.exp(-r2)[..., None]
    img = base + rng.normal(0, 0.01, base.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def save_png(path: Path, img: np.ndarray) -> Path:
    Image.fromarray(img).save(path)
    return path


def save_jpeg(path: Path, img: np.ndarray, **kw) -> Path:
    Image.fromarray(img).save(path, quality=95, **kw)
    return path


@pytest.fixture
def photo_jpg(tmp_path):
    return save_jpeg(tmp_path / "photo.jpg", make_photo(64, 96))
