#!/usr/bin/env python3
"""Build the installable HDR-CNF Blender extension: one zip per platform.

    python build_addon.py [--platform linux-x64|windows-x64|macos-arm64|macos-x64|all] [-o dist/]

Steps:
1. Stage a copy of `addon/` in build/addon-stage/hdrcnf, with the repository's `engine/` package
   vendored as the subpackage `engine` and the default model bundle (sha256-checked) in
   engine/models/default.
2. Download the cp311 wheels the engine needs inside Blender (onnxruntime and Pillow for each
   platform, pypng and tifffile once) with `pip download`, cached in build/wheels/ so repeated
   builds are offline. This is the only network access: nothing is downloaded at run time.
   Blender 4.2 - 5.0 all bundle Python 3.11 (numpy is Blender's own).
3. Write the staged manifest's `platforms` and `wheels = [...]` lists.
4. Build with Blender's own extension builder (`bl_pkg/cli/blender_ext.py build
   --split-platforms`, shipped inside the `bpy` wheel; no Blender binary needed) and check every
   zip with its `validate` command.

Outputs follow the builder's naming: dist/hdrcnf-<version>-<platform>.zip with the platform's
dash written as an underscore (hdrcnf-0.1.0-linux_x64.zip), as on extensions.blender.org.
Exit status: 0 built, 2 usage or input problem, 1 a tool failed.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_SRC = ROOT / "addon"
ENGINE_SRC = ROOT / "engine"
DEFAULT_MODEL = ENGINE_SRC / "models" / "default"
DEFAULT_WHEELS = ROOT / "build" / "wheels"
DEFAULT_STAGE = ROOT / "build" / "addon-stage"

#: pip --platform tags per Blender platform. The oldest OS each Blender 4.2+ build runs on, so
#: the extension loads wherever that Blender runs: glibc 2.28 on Linux, macOS 11 on both Macs
#: (pip then picks the newest onnxruntime with such a wheel; for macOS that is a universal2
#: wheel, which Blender's builder puts into both macOS zips).
PLATFORM_TAGS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                  "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_11_0_universal2"],
    "macos-x64": ["macosx_11_0_x86_64", "macosx_11_0_universal2"],
}
PLATFORMS = tuple(PLATFORM_TAGS)
#: Compiled wheels, one per platform: the ONNX runtime, and Pillow for engine.io (photos).
BINARY_WHEELS = ("onnxruntime", "pillow")
#: Pure-Python wheels engine.io imports for 16-bit PNG / TIFF photos.
PURE_WHEELS = ("pypng", "tifffile")
PYTHON_VERSION = "3.11"


class BuildError(Exception):
    """A problem the user can fix (exit 2), reported as one line."""


def log(msg: str) -> None:
    print(f"build_addon: {msg}", flush=True)


# ------------------------------------------------------------------------------- wheels


def _dist_name(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def _cached(folder: Path, names) -> dict[str, Path]:
    found = {}
    if folder.is_dir():
        for whl in sorted(folder.glob("*.whl")):
            found.setdefault(_dist_name(whl), whl)
    return {n: found[n] for n in names if n in found}


def _pip_download(dest: Path, requirements, extra_args) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", PYTHON_VERSION, "-d", str(dest),
           *extra_args, *requirements]
    log(" ".join(cmd[1:]))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BuildError(f"pip download of {', '.join(requirements)} failed (network or no cp311 wheel): "
                         + " | ".join(tail))


def fetch_wheels(platform: str, cache: Path, refresh: bool = False, offline: bool = False) -> list[Path]:
    """The wheels for one Blender platform, downloading into `cache` only what is missing."""
    plat_dir, pure_dir = cache / platform, cache / "any"
    if refresh:
        shutil.rmtree(plat_dir, ignore_errors=True)
    wheels: list[Path] = []
    for folder, names, extra in (
            (plat_dir, BINARY_WHEELS, ["--implementation", "cp", "--abi", f"cp{PYTHON_VERSION.replace('.', '')}",
                                       *[a for tag in PLATFORM_TAGS[platform] for a in ("--platform", tag)]]),
            (pure_dir, PURE_WHEELS, [])):
        have = _cached(folder, names)
        missing = [n for n in names if n not in have]
        if missing:
            if offline:
                raise BuildError(f"--offline: no cached wheel for {', '.join(missing)} in {folder}")
            _pip_download(folder, missing, extra)
            have = _cached(folder, names)
            missing = [n for n in names if n not in have]
            if missing:
                raise BuildError(f"pip download gave no wheel for {', '.join(missing)} ({platform})")
        wheels.extend(have[n] for n in names)
    return wheels


# -------------------------------------------------------------------------------- stage


def _ignore(_dir, names):
    return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo")) or n.startswith(".")]


def verify_model(folder: Path) -> dict:
    """Check the bundle like engine.bundle.load_bundle does (files present, sha256 matches)."""
    meta_path = folder / "model.json"
    if not meta_path.is_file():
        raise BuildError(f"{meta_path}: missing; pass --model DIR with a model bundle")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        onnx = folder / meta["onnx"]
        expected = meta["sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise BuildError(f"{meta_path}: not a model bundle: {e}") from None
    graphs = [(onnx, expected)]
    if "photo_flow" in meta:  # a second flow, for photos (engine.bundle)
        try:
            graphs.append((folder / meta["photo_flow"]["onnx"], meta["photo_flow"]["sha256"]))
        except (KeyError, TypeError) as e:
            raise BuildError(f"{meta_path}: not a model bundle: photo_flow {e}") from None
    for path, want in graphs:
        if not path.is_file():
            raise BuildError(f"{path}: missing (named in {meta_path})")
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        if h.hexdigest() != want:
            raise BuildError(f"{path}: sha256 does not match {meta_path}; re-export the model")
    return meta


def read_manifest_version(text: str) -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise BuildError(f"{ADDON_SRC / 'blender_manifest.toml'}: no version")
    return m.group(1)


def manifest_with(text: str, platforms, wheel_names) -> str:
    """The source manifest with `platforms` and `wheels` set (inserted before the first table)."""
    lines = [ln for ln in text.splitlines() if not re.match(r"^\s*(platforms|wheels)\s*=", ln)]
    first_table = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")), len(lines))
    block = ["platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]",
             "wheels = ["] + [f'  "./wheels/{w}",' for w in wheel_names] + ["]", ""]
    return "\n".join(lines[:first_table] + block + lines[first_table:]) + "\n"


def stage(platforms, wheels: list[Path], model: Path, stage_root: Path) -> Path:
    """build/addon-stage/hdrcnf: addon/ + engine/ (+ model) + wheels + the final manifest."""
    dest = stage_root / "hdrcnf"
    shutil.rmtree(dest, ignore_errors=True)  # only our own subfolder: --stage-dir may be shared
    shutil.copytree(ADDON_SRC, dest, ignore=_ignore)
    if (dest / "engine").exists():
        raise BuildError(f"{ADDON_SRC / 'engine'} exists; remove it (the engine is vendored at build time)")

    def ignore_engine(d, names):
        skip = set(_ignore(d, names))
        if Path(d) == ENGINE_SRC / "models":
            skip.update(names)  # models are copied below: only the chosen bundle ships
        return list(skip)

    shutil.copytree(ENGINE_SRC, dest / "engine", ignore=ignore_engine)
    model_dest = dest / "engine" / "models" / "default"
    model_dest.mkdir(parents=True, exist_ok=True)
    meta = verify_model(model)
    photo = [meta["photo_flow"]["onnx"]] if "photo_flow" in meta else []
    for name in ("model.json", meta["onnx"], *photo, "MODEL_CARD.md", "LICENSE"):
        if (model / name).is_file():
            shutil.copy2(model / name, model_dest / name)
    (dest / "wheels").mkdir()
    names = []
    for whl in wheels:
        if whl.name not in names:
            shutil.copy2(whl, dest / "wheels" / whl.name)
            names.append(whl.name)
    text = (ADDON_SRC / "blender_manifest.toml").read_text(encoding="utf-8")
    (dest / "blender_manifest.toml").write_text(manifest_with(text, platforms, names), encoding="utf-8")
    return dest


# -------------------------------------------------------------------------------- build


def find_blender_ext() -> Path:
    """blender_ext.py from the installed `bpy` wheel (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the 'bpy' package is not installed (pip install bpy==5.0.1), "
                         "or pass --blender-ext PATH/TO/blender_ext.py")
    for loc in spec.submodule_search_locations:
        hits = sorted(Path(loc).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if hits:
            return hits[-1]
    raise BuildError("blender_ext.py not found inside the bpy package; pass --blender-ext")


def _run_tool(cmd, what: str) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {out}")
    return out


def build(platforms, out_dir: Path, wheels_dir: Path = DEFAULT_WHEELS, model: Path = DEFAULT_MODEL,
          blender_ext: Path | None = None, refresh: bool = False, offline: bool = False,
          stage_root: Path = DEFAULT_STAGE) -> list[Path]:
    """Build and validate one zip per platform; returns their paths."""
    t0 = time.perf_counter()
    ext = Path(blender_ext) if blender_ext else find_blender_ext()
    wheels: list[Path] = []
    for platform in platforms:
        wheels.extend(fetch_wheels(platform, Path(wheels_dir), refresh=refresh, offline=offline))
    src = stage(platforms, wheels, Path(model), Path(stage_root))
    version = read_manifest_version((src / "blender_manifest.toml").read_text(encoding="utf-8"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # the builder fails when it does not exist
    _run_tool([sys.executable, ext, "build", "--source-dir", src, "--output-dir", out_dir,
               "--split-platforms"], "blender_ext.py build")
    zips = []
    for platform in platforms:
        z = out_dir / f"hdrcnf-{version}-{platform.replace('-', '_')}.zip"
        if not z.is_file():
            raise RuntimeError(f"the builder did not write {z}")
        _run_tool([sys.executable, ext, "validate", z], f"blender_ext.py validate {z.name}")
        zips.append(z)
    for z in zips:
        log(f"{z}  {z.stat().st_size / 1e6:.1f} MB  (validated)")
    log(f"done in {time.perf_counter() - t0:.1f} s")
    return zips


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="build_addon.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--platform", default="all", choices=(*PLATFORMS, "all"),
                   help="Blender platform to build for (default: all, one zip each)")
    p.add_argument("-o", "--output", default=str(ROOT / "dist"), metavar="DIR",
                   help="folder receiving the zips (default: dist/)")
    p.add_argument("--wheels-dir", default=str(DEFAULT_WHEELS), metavar="DIR",
                   help="download cache for wheels (default: build/wheels/)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), metavar="DIR",
                   help="model bundle to ship as the default (default: engine/models/default)")
    p.add_argument("--blender-ext", default=None, metavar="PATH",
                   help="Blender's blender_ext.py (default: the one inside the installed bpy wheel)")
    p.add_argument("--stage-dir", default=str(DEFAULT_STAGE), metavar="DIR",
                   help="scratch folder; the extension is staged in its hdrcnf/ subfolder (default: build/addon-stage/)")
    p.add_argument("--refresh-wheels", action="store_true", help="download the platform wheels again")
    p.add_argument("--offline", action="store_true", help="use cached wheels only; never run pip download")
    args = p.parse_args(argv)
    platforms = PLATFORMS if args.platform == "all" else (args.platform,)
    try:
        build(platforms, Path(args.output), Path(args.wheels_dir), Path(args.model), args.blender_ext,
              refresh=args.refresh_wheels, offline=args.offline, stage_root=Path(args.stage_dir))
    except BuildError as e:
        print(f"build_addon: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as e:
        print(f"build_addon: error: {' '.join(str(e).split())[:2000]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
