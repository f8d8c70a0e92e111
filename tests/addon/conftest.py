"""Fixtures for the Blender extension tests.

Everything Blender runs in subprocesses (`python script.py` with the venv's `bpy`), so a crash
cannot take pytest down and "reopen in a fresh process" is real. The zip is built once per
session by build_addon.py (wheels cached in build/wheels/, so only the first build on a machine
needs PyPI), and installed with `bpy.ops.extensions.package_install_files` into a throw-away
BLENDER_USER_RESOURCES folder, fresh for each test module. The tests then only go through the
installed extension (`bl_ext.user_default.hdrcnf`), never the source tree.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import EXAMPLES, HAVE_BPY, REPO, install

if not HAVE_BPY:  # pragma: no cover - the test venv has bpy
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    """build_addon.py --platform linux-x64, once per session (validated by the build)."""
    out = tmp_path_factory.mktemp("dist")
    stage = tmp_path_factory.mktemp("stage")
    proc = subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--platform", "linux-x64", "-o", str(out),
                           "--stage-dir", str(stage)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"build_addon.py failed:\n{proc.stdout}\n{proc.stderr}"
    zips = sorted(out.glob("hdrcnf-*-linux_x64.zip"))
    assert len(zips) == 1, f"expected one linux zip, got {zips}\n{proc.stdout}"
    return zips[0]


@pytest.fixture(scope="module")
def blender(addon_zip, tmp_path_factory) -> Blender:
    """The extension installed from the zip into a fresh user-resources folder (per module)."""
    return install(addon_zip, tmp_path_factory.mktemp("blender"))


@pytest.fixture(scope="session")
def small_pano(tmp_path_factory) -> Path:
    """examples/sunny_overpass_pano.jpg downscaled to 128x64 (cheap conversions)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("photos") / "small_pano.png"
    with Image.open(EXAMPLES / "sunny_overpass_pano.jpg") as im:
        im.convert("RGB").resize((128, 64), Image.LANCZOS).save(path)
    return path
