"""A geometry-aware model (``encoder.geometry``): it trains on panorama crops that know their
latitudes, exports with the planes in its input, and the engine feeds them as training did."""
from pathlib import Path

import numpy as np
import pytest

from engine.backends import create_backend
from engine.bundle import load_bundle
from engine.convert import ConvertOptions, convert_array
from engine.geometry import GEOMETRY_CHANNELS, window_planes
from training.configs import tiny
from training.export import export_bundle
from training.train import apply_overrides, train

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hdr"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A tiny geometry model trained a few steps (validated on one fixture panorama) and exported."""
    tmp = tmp_path_factory.mktemp("geometry")
    split = tmp / "split.txt"
    split.write_text("3ddemodata_circus_arena.exr\n")
    cfg = apply_overrides(tiny(), ["model.encoder.geometry=true", "patches.view_photos=true"])
    cfg.steps, cfg.val_every = 4, 2
    state = train(cfg, [FIXTURES], tmp / "run", split=split, quiet=True)
    assert state["step"] == 4 and state["skipped_steps"] == 0
    assert np.isfinite(state["history"][-1]["val_nll_bpd"])
    export_bundle(tmp / "run" / "last", tmp / "bundle")
    return load_bundle(tmp / "bundle")


class Spy:
    """The real onnxruntime backend, keeping a copy of every input batch it is given."""

    def __init__(self, backend):
        self.backend, self.inputs = backend, []

    def run(self, ldr, latents):
        self.inputs.append(np.array(ldr))
        return self.backend.run(ldr, latents)

    def __getattr__(self, name):
        return getattr(self.backend, name)


def test_the_bundle_declares_its_planes(bundle):
    assert bundle.geometry == GEOMETRY_CHANNELS and bundle.input_channels == 5
    assert bundle.meta["input"]["channels"] == 5


@pytest.mark.parametrize("shape, panorama", [((64, 128, 3), True), ((48, 72, 3), False)])
def test_the_engine_feeds_the_planes_of_each_window(bundle, shape, panorama):
    img = (np.random.default_rng(0).random(shape) * 0.9).astype(np.float32)
    img[:8] = 1.0  # a clipped band at the top
    spy = Spy(create_backend(bundle, "onnxruntime"))
    opts = ConvertOptions(tile=2 * bundle.receptive_field + 2 * bundle.stride, seed=1)
    result = convert_array(img, spy, bundle, opts)
    assert result.panorama == panorama and np.isfinite(result.hdr).all()
    assert result.info["tiles"] > 1
    planes = [p for x in spy.inputs for p in x[:, 3:]]  # windows differ in size at the edges
    assert all(p.shape[0] == 2 for p in planes)
    if not panorama:
        assert not any(p.any() for p in planes)
        return
    assert all((p[0] == 1).all() for p in planes)
    # every window's latitude plane is a run of the whole image's rows (any window, any order)
    rows = window_planes(0, 64 + 8, 1, 64, panorama=True)[:, 0, 1]
    for window in (p[1, :, 0] for p in planes):
        starts = [y for y in range(len(rows) - len(window) + 1) if np.allclose(rows[y:y + len(window)], window)]
        assert starts, window[:3]
