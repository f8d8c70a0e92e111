"""The engine must convert on a machine without torch (the Blender extension ships no torch)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from engine.io import read_exr

from .conftest import make_photo, save_jpeg

REPO = Path(__file__).resolve().parents[2]


def test_convert_with_torch_blocked(tmp_path, model_bundle):
    src = save_jpeg(tmp_path / "p.jpg", make_photo(48, 64))
    out = tmp_path / "p.exr"
    # A `torch` package that refuses to import, first on the path, plus sys.modules['torch'] = None:
    # any attempt to import torch (directly or through a dependency) raises ImportError.
    stub = tmp_path / "stub" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    code = textwrap.dedent(f"""
        import sys
        sys.modules['torch'] = None
        from engine.cli import main
        rc = main(['convert', {str(src)!r}, '-o', {str(out)!r}, '--model', {str(model_bundle.path)!r},
                   '--samples', '2', '--uncertainty'])
        loaded = sorted(m for m, mod in sys.modules.items() if m.split('.')[0] == 'torch' and mod is not None)
        assert not loaded, loaded
        sys.exit(rc)
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "stub"), str(REPO), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_exr(out).shape == (48, 64, 3)


def test_engine_sources_never_import_torch():
    for path in (REPO / "engine").rglob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path
