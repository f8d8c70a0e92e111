"""Helpers for the Blender extension tests: run scripts in fresh bpy processes."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
MODULE = "bl_ext.user_default.hdrcnf"
MARK = "@@HDRCNF-RESULT@@ "

HAVE_BPY = importlib.util.find_spec("bpy") is not None  # found without importing it here

#: Prepended to every script: enable the installed extension and collect a JSON result.
PRELUDE = f'''
import json, os, sys, time, traceback
import bpy, addon_utils
import numpy as np
MODULE = {MODULE!r}
RESULT = {{}}

def enable():
    """A fresh process does not load the saved preferences: enable the installed extension."""
    if MODULE not in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_enable(module=MODULE)
    return sys.modules[MODULE]

def submodule(name):
    return sys.modules[MODULE + "." + name]

def pixels(image):
    w, h = image.size
    buf = np.empty(w * h * image.channels, np.float32)
    image.pixels.foreach_get(buf)
    return buf.reshape(h, w, image.channels)[::-1]

def render_compositor(scene, path, w, h):
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = w, h, 100
    s = r.image_settings
    if hasattr(s, "media_type"):
        s.media_type = 'IMAGE'
    s.file_format = 'OPEN_EXR'
    s.color_depth = '32'
    r.filepath = path
    bpy.ops.render.render(write_still=True)

def done():
    print({MARK!r} + json.dumps(RESULT), flush=True)
'''


class Blender:
    """Runs scripts in fresh `bpy` processes sharing one BLENDER_USER_RESOURCES folder."""

    def __init__(self, user_dir: Path, work: Path, python: str = sys.executable):
        self.user_dir = Path(user_dir)
        self.work = Path(work)
        self.python = python
        self._n = 0

    def run(self, body: str, timeout: float = 240, expect_ok: bool = True, **params) -> dict:
        """Run PRELUDE + `body` (which fills RESULT and calls done()); `params` become globals."""
        self._n += 1
        script = self.work / f"script_{self._n}.py"
        header = "".join(f"{k} = {json.dumps(str(v) if isinstance(v, Path) else v)}\n" for k, v in params.items())
        script.write_text(PRELUDE + header + textwrap.dedent(body), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BLENDER_USER_SCRIPTS")}
        env["BLENDER_USER_RESOURCES"] = str(self.user_dir)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        proc = subprocess.run([self.python, str(script)], cwd=self.work, env=env, capture_output=True,
                              text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
        if expect_ok and (proc.returncode != 0 or not lines):
            raise AssertionError(f"Blender script {script.name} failed (exit {proc.returncode}):\n{out[-6000:]}")
        result = json.loads(lines[-1][len(MARK):]) if lines else {}
        result["_output"] = out
        result["_returncode"] = proc.returncode
        return result


INSTALL = '''
bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default", enable_on_install=True)
mod = sys.modules[MODULE]
RESULT["file"] = mod.__file__
RESULT["enabled"] = MODULE in bpy.context.preferences.addons
done()
'''


def install(addon_zip: Path, root: Path, python: str = sys.executable) -> Blender:
    user, work = root / "user", root / "work"
    user.mkdir(parents=True)
    work.mkdir(parents=True)
    blender = Blender(user, work, python)
    res = blender.run(INSTALL, ZIP=addon_zip)
    assert res["enabled"], res["_output"][-3000:]
    assert Path(res["file"]).resolve().is_relative_to(user.resolve()), res["file"]
    return blender



def read_exr_rgb(path) -> np.ndarray:
    """(H, W, 3) float32 from an OpenEXR file, read with the OpenEXR package (not Blender)."""
    import OpenEXR

    f = OpenEXR.File(str(path), separate_channels=True)
    ch = {k: np.asarray(v.pixels, dtype=np.float32) for k, v in f.channels().items()}
    return np.stack([ch["R"], ch["G"], ch["B"]], axis=-1)
