"""build_addon.py: the zip Blender's validator accepts, and what it carries."""
from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import build_addon

from .helpers import REPO


def test_zip_is_valid_and_complete(addon_zip: Path):
    assert addon_zip.name == "hdrcnf-0.1.0-linux_x64.zip"
    proc = subprocess.run([sys.executable, str(build_addon.find_blender_ext()), "validate", str(addon_zip)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with zipfile.ZipFile(addon_zip) as z:
        names = set(z.namelist())
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
        meta = json.loads(z.read("engine/models/default/model.json"))
        onnx_sha = hashlib.sha256(z.read("engine/models/default/model.onnx")).hexdigest()
        photo = meta.get("photo_flow")           # a bundle with one flow per kind ships both graphs
        photo_sha = hashlib.sha256(z.read(f"engine/models/default/{photo['onnx']}")).hexdigest() if photo else None
    assert manifest["id"] == "hdrcnf"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert "files" in manifest["permissions"]
    assert manifest["platforms"] == ["linux-x64"]
    wheels = [Path(w).name for w in manifest["wheels"]]
    assert any(w.startswith("onnxruntime-") and "cp311" in w and "linux" in w for w in wheels), wheels
    assert any(w.startswith("pillow-") and "cp311" in w for w in wheels), wheels
    assert not any("win" in w or "macosx" in w for w in wheels), wheels  # split per platform
    for w in wheels:
        assert f"wheels/{w}" in names
    for module in ("__init__.py", "operators.py", "panels.py", "nodes.py", "preferences.py", "jobs.py",
                   "engine/__init__.py", "engine/convert.py", "engine/backends/onnxruntime.py"):
        assert module in names, module
    assert meta["sha256"] == onnx_sha
    assert photo is None or photo["sha256"] == photo_sha
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "INSTALL.md" not in names


def test_manifest_generation_keeps_tables_last():
    text = (REPO / "addon" / "blender_manifest.toml").read_text()
    out = build_addon.manifest_with(text, ["linux-x64", "windows-x64"], ["a-1-py3-none-any.whl"])
    data = tomllib.loads(out)
    assert data["platforms"] == ["linux-x64", "windows-x64"]
    assert data["wheels"] == ["./wheels/a-1-py3-none-any.whl"]
    assert data["permissions"]["files"]
    # the source manifest itself lists no wheels (they only exist in the staging copy)
    assert "wheels" not in tomllib.loads(text)


STDLIB = set(sys.stdlib_module_names)


def test_addon_imports_only_bpy_stdlib_numpy_and_relative():
    """The add-on may import bpy (and bpy_extras), the standard library, numpy and itself."""
    for path in sorted((REPO / "addon").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative
                    continue
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                assert top in STDLIB or top in ("bpy", "bpy_extras", "numpy"), f"{path.name}: imports {top}"


def test_jobs_worker_side_never_imports_bpy():
    """jobs.py runs on the worker thread: no module-level bpy import, and only apply_result (main
    thread) reaches the bpy-side helpers."""
    tree = ast.parse((REPO / "addon" / "jobs.py").read_text())
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            assert "bpy" not in names and getattr(node, "module", None) != "bpy", ast.dump(node)
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.ClassDef)) and fn.name != "apply_result":
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level and any(a.name == "nodes" for a in node.names):
                    raise AssertionError(f"{fn.name} imports the bpy-side nodes module")


def test_offline_build_without_cached_wheels_fails_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--platform", "windows-x64", "--offline",
                           "--wheels-dir", str(tmp_path / "empty"), "-o", str(tmp_path / "dist"),
                           "--stage-dir", str(tmp_path / "stage")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--offline: no cached wheel for onnxruntime, pillow" in lines[0], proc.stderr
    assert not (tmp_path / "dist").exists()
