"""TensorRT engine cache keys, file names and profiles: pure functions, tested without a GPU."""
from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from engine.backends import trt_cache
from engine.backends.trt_cache import (Profile, default_cache_dir, engine_cache_key, engine_file_name,
                                       resolve_cache_dir, timing_cache_file_name)
from engine.bundle import LatentSpec
from engine.tiling import default_overlap, plan_tiles

BASE = dict(model_sha256="ab" * 32, gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
            trt_version="10.13.0.35", precision="fp16", profile=Profile.for_tile(1024, 8, 4),
            recipe="fp16-conv-follow-v1")


def test_key_is_pure_and_stable():
    a = engine_cache_key(**BASE)
    assert a == engine_cache_key(**BASE) == engine_cache_key(**dict(BASE, compute_capability="9.0"))
    assert len(a) == 64 and int(a, 16) >= 0


@pytest.mark.parametrize("part, value", [
    ("model_sha256", "cd" * 32),
    ("gpu_name", "NVIDIA A100-SXM4-80GB"),
    ("compute_capability", (8, 0)),
    ("compute_capability", (9, 1)),
    ("trt_version", "11.4.0.106"),
    ("precision", "fp32"),
    ("profile", Profile.for_tile(2048, 8, 4)),
    ("profile", Profile.for_tile(1024, 8, 2)),
    ("profile", replace(Profile.for_tile(1024, 8, 4), opt=(2, 1024, 1024))),
    ("recipe", "fp16-conv-follow-v2"),
])
def test_key_changes_when_any_part_changes(part, value):
    assert engine_cache_key(**dict(BASE, **{part: value})) != engine_cache_key(**BASE)


def test_key_module_never_imports_tensorrt():
    """The key must be computable (and tested) where tensorrt is not installed."""
    tree = ast.parse(Path(trt_cache.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "tensorrt" not in imported


def test_file_names():
    key = engine_cache_key(**BASE)
    name = engine_file_name(BASE["model_sha256"], "fp16", key)
    assert name == f"hdrcnf-{'ab' * 6}-fp16-{key[:20]}.engine"
    assert timing_cache_file_name("NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35") == \
        "timing-nvidia-h100-80gb-hbm3-sm90-trt10.13.0.35.cache"


def test_cache_dir_default_env_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("HDRCNF_CACHE_DIR", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "hdrcnf" / "trt"
    monkeypatch.setenv("HDRCNF_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "trt"
    assert resolve_cache_dir(None) == tmp_path / "c" / "trt"
    assert resolve_cache_dir(tmp_path / "mine") == tmp_path / "mine"  # the add-on's folder, as is


@pytest.mark.parametrize("H, W, tile, wrap", [(512, 1024, 1024, True), (1000, 1500, 512, False),
                                              (2048, 4096, 2048, True), (40, 56, 1024, False)])
def test_profile_covers_every_window_of_the_plan(H, W, tile, wrap):
    stride, rf = 8, 32
    prof = Profile.for_tile(tile, stride, 4)
    plan = plan_tiles(-(-H // stride) * stride, -(-W // stride) * stride, tile, default_overlap(rf, stride),
                      stride, wrap=wrap)
    for t in plan.tiles:
        _, _, h, w = t.window
        for n in (1, 4):
            assert prof.covers(n, h, w), (n, h, w, prof)
    assert not prof.covers(5, tile, tile) and not prof.covers(1, tile + stride, tile)


def test_profile_shapes_follow_the_latent_specs_and_the_input_channels():
    class B:
        input_name = "ldr"
        input_channels = 3
        latents = (LatentSpec("z1", 6, 2), LatentSpec("z2", 12, 4), LatentSpec("z3", 48, 8))

    shapes = Profile.for_tile(1024, 8, 2).shapes(B)
    assert shapes["ldr"] == ((1, 3, 8, 8), (2, 3, 1024, 1024), (2, 3, 1024, 1024))
    assert shapes["z3"] == ((1, 48, 1, 1), (2, 48, 128, 128), (2, 48, 128, 128))
    B.input_channels = 5  # a geometry model (engine.geometry): the planes ride in the same input
    assert Profile.for_tile(1024, 8, 2).shapes(B)["ldr"][2] == (2, 5, 1024, 1024)
