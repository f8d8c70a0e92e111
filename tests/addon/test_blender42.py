"""The Blender 4.2 LTS code path (`scene.node_tree`, `use_nodes`, Composite node, `world.use_nodes`).

It needs the python of a separate venv holding `bpy==4.2.*` (bpy pins its own numpy and Python
per Blender version) in HDRCNF_BPY42_PYTHON. `make test` builds that venv (.venv42) and sets it;
by hand:

    python3.11 -m venv .venv42 && .venv42/bin/pip install "bpy==4.2.*" "numpy<2"
    HDRCNF_BPY42_PYTHON=.venv42/bin/python .venv/bin/python -m pytest tests/addon/test_blender42.py

That venv needs neither onnxruntime nor Pillow: the extension's bundled wheels provide them, as
in a real Blender.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from .helpers import install, read_exr_rgb

PY42 = os.environ.get("HDRCNF_BPY42_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not PY42, reason="needs HDRCNF_BPY42_PYTHON, a python with bpy==4.2.* (make test builds .venv42 and sets it)")

RUN = '''
import importlib.util
enable()
RESULT["version"] = list(bpy.app.version)
RESULT["legacy"] = submodule("nodes").LEGACY
RESULT["panels"] = [hasattr(bpy.types, n) for n in ("HDRCNF_PT_compositor", "HDRCNF_PT_world")]
RESULT["ort_from"] = importlib.util.find_spec("onnxruntime").origin
sc = bpy.context.scene
s = sc.hdrcnf
s.filepath = PHOTO
RESULT["op"] = list(bpy.ops.hdrcnf.convert('EXEC_DEFAULT'))
img = s.result
np.save(os.path.join(WORK, "hdr.npy"), pixels(img)[..., :3])
tree = sc.node_tree
comp = [n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"][0]
RESULT["use_nodes"] = sc.use_nodes
RESULT["composite_from"] = comp.inputs["Image"].links[0].from_node.label if comp.inputs["Image"].is_linked else None
sc.render.engine = 'CYCLES'  # in case 4.2 renders the scene too: keep it cheap
sc.cycles.samples = 1
render_compositor(sc, os.path.join(WORK, "comp.exr"), img.size[0], img.size[1])
RESULT["save"] = list(bpy.ops.hdrcnf.save_exr(filepath=os.path.join(WORK, "saved.exr")))
RESULT["world"] = list(bpy.ops.hdrcnf.use_as_world())
RESULT["world_nodes"] = sorted(n.bl_idname for n in sc.world.node_tree.nodes) if sc.world.use_nodes else None
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(WORK, "s42.blend"))
mod = sys.modules[MODULE]
mod.unregister(); gone = not hasattr(bpy.types, "HDRCNF_PT_world"); mod.register()
RESULT["cycle"] = gone and hasattr(bpy.types, "HDRCNF_PT_world")
done()
'''

REOPEN = '''
bpy.ops.wm.open_mainfile(filepath=os.path.join(WORK, "s42.blend"))
imgs = [i for i in bpy.data.images if i.get("hdrcnf_source")]
RESULT["packed"] = [i.packed_file is not None for i in imgs]
np.save(os.path.join(WORK, "re.npy"), pixels(imgs[0])[..., :3])
done()
'''


def test_blender_42_code_path(addon_zip, small_pano, tmp_path_factory):
    blender = install(addon_zip, tmp_path_factory.mktemp("b42"), python=PY42)
    res = blender.run(RUN, timeout=300, PHOTO=small_pano, WORK=blender.work)
    print("\nbpy", res["version"], "onnxruntime from", res["ort_from"])
    assert res["version"][:2] == [4, 2] and res["legacy"] is True
    assert res["panels"] == [True, True]
    assert "/extensions/.local/" in res["ort_from"], res["ort_from"]  # the bundled wheel
    assert res["op"] == ["FINISHED"], res["_output"][-3000:]
    assert res["use_nodes"] is True and res["composite_from"] == "HDR-CNF"
    hdr = np.load(blender.work / "hdr.npy")
    np.testing.assert_allclose(read_exr_rgb(blender.work / "comp.exr"), hdr, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(read_exr_rgb(blender.work / "saved.exr"), hdr, rtol=2.0**-10, atol=1e-7)
    assert res["save"] == ["FINISHED"] and res["world"] == ["FINISHED"]
    assert res["world_nodes"] == sorted(["ShaderNodeTexCoord", "ShaderNodeMapping", "ShaderNodeTexEnvironment",
                                         "ShaderNodeBackground", "ShaderNodeOutputWorld"])
    assert res["cycle"]
    re = blender.run(REOPEN, WORK=blender.work)
    assert re["packed"] == [True]
    np.testing.assert_allclose(np.load(blender.work / "re.npy"), hdr, rtol=1e-6, atol=1e-7)
