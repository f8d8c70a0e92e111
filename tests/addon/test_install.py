"""Installing the zip: registration, the vendored engine, enable/disable cycles, uninstall."""
from __future__ import annotations

CLASSES = ["HDRCNF_PT_compositor", "HDRCNF_PT_world", "HDRCNF_OT_convert", "HDRCNF_OT_cancel",
           "HDRCNF_OT_use_as_world", "HDRCNF_OT_save_exr", "HDRCNF_OT_add_node"]
ALL_CLASSES = CLASSES + ["HDRCNF_AddonPreferences", "HDRCNF_SceneSettings", "HDRCNF_RuntimeState"]

REGISTRATION = '''
CLASS_OBJECTS = []

def remember_classes():
    for name in ("preferences", "properties", "operators", "panels"):
        CLASS_OBJECTS.extend(submodule(name).classes)

def registered():
    menu_funcs = getattr(bpy.types.NODE_MT_add.draw, "_draw_funcs", [])
    return {
        "classes": sorted(n for n in dir(bpy.types) if n.startswith("HDRCNF")),
        "is_registered": sorted(c.__name__ for c in CLASS_OBJECTS if c.is_registered),
        "scene_prop": hasattr(bpy.types.Scene, "hdrcnf"),
        "wm_prop": hasattr(bpy.types.WindowManager, "hdrcnf"),
        "menu": [f.__module__ for f in menu_funcs if f.__module__.startswith(MODULE)],
        "handlers": [f.__module__ for f in bpy.app.handlers.load_pre if f.__module__.startswith(MODULE)],
    }
'''


DRAW = '''
class FakeLayout:
    """Records what the panels draw (headless Blender cannot draw) and checks that every
    property and operator they name exists."""
    def __init__(self, log):
        self.log = log
    def _child(self, *a, **k):
        return FakeLayout(self.log)
    row = column = box = split = _child
    def prop(self, data, name, **k):
        assert name in data.bl_rna.properties, name
        self.log.append("prop:" + name)
    def template_ID(self, data, name, **k):
        assert name in data.bl_rna.properties, name
        self.log.append("template_ID:" + name)
    def operator(self, idname, **k):
        cat, op = idname.split(".")
        assert cat != "hdrcnf" or hasattr(bpy.types, "HDRCNF_OT_" + op), idname
        self.log.append("operator:" + idname)
    def label(self, text="", **k):
        self.log.append("label:" + text)
    def progress(self, factor=0.0, text="", **k):
        self.log.append("progress:" + text)
    def separator(self, **k):
        pass

def draw_everything():
    panels, prefs_mod = submodule("panels"), submodule("preferences")
    ctx = bpy.context
    out = {"world_poll": panels.HDRCNF_PT_world.poll(ctx)}
    for running in (False, True):
        ctx.window_manager.hdrcnf.running = running
        ctx.window_manager.hdrcnf.status = "some status"
        for compositor in (True, False):
            log = []
            panels.draw_hdrcnf(FakeLayout(log), ctx, compositor)
            out[f"{'running' if running else 'idle'}-{'compositor' if compositor else 'world'}"] = log
    ctx.window_manager.hdrcnf.running = False
    log = []
    prefs = ctx.preferences.addons[MODULE].preferences
    prefs_mod.HDRCNF_AddonPreferences.draw(type("P", (), {"layout": FakeLayout(log), "backend": prefs.backend,
        "threads": prefs.threads, "cache_dir": prefs.cache_dir, "model_dir": prefs.model_dir,
        "bl_rna": prefs.bl_rna})(), ctx)
    out["prefs"] = log
    return out
'''


def test_installed_extension_registers_node_and_panels(blender):
    res = blender.run(REGISTRATION + DRAW + '''
mod = enable()
remember_classes()
RESULT["registered"] = registered()
RESULT["vendored"] = sys.modules[MODULE + ".engine_link"].VENDORED
# Add the HDR-CNF node the way the Add menu entry does.
RESULT["add"] = list(bpy.ops.hdrcnf.add_node())
tree = bpy.context.scene.compositing_node_group
node = tree.nodes.active
RESULT["node"] = [node.bl_idname, node.label, node.node_tree.get("hdrcnf_group"),
                  [s.name for s in node.inputs], [s.name for s in node.outputs]]
RESULT["output_linked"] = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"][0].inputs[0].is_linked
prefs = bpy.context.preferences.addons[MODULE].preferences
RESULT["prefs"] = [prefs.backend, prefs.threads, prefs.cache_dir, prefs.model_dir]
RESULT["cache"] = submodule("preferences").cache_folder(prefs)
RESULT["backend_items"] = [i.identifier for i in prefs.bl_rna.properties["backend"].enum_items]
RESULT["model"] = submodule("jobs").model_info("")
RESULT["draw"] = draw_everything()
done()
''')
    reg = res["registered"]
    assert sorted(CLASSES) == [c for c in reg["classes"] if c in CLASSES], reg["classes"]
    assert reg["is_registered"] == sorted(ALL_CLASSES)
    assert reg["scene_prop"] and reg["wm_prop"]
    assert reg["menu"], "no HDR-CNF entry in the compositor's Add menu"
    assert reg["handlers"]
    assert res["vendored"] is True
    assert res["add"] == ["FINISHED"]
    assert res["node"] == ["CompositorNodeGroup", "HDR-CNF", 1, ["Exposure"], ["Image"]]
    assert res["output_linked"]
    assert res["prefs"] == ["auto", 0, "", ""]
    assert res["cache"].endswith("cache") and str(blender.user_dir) in res["cache"]
    assert res["backend_items"][:2] == ["auto", "onnxruntime"]
    label, problem = res["model"]
    assert not problem and label.startswith("hdrcnf")
    draw = res["draw"]
    assert draw["world_poll"] is True
    idle = draw["idle-compositor"]
    for item in ("prop:source", "prop:filepath", "prop:temperature", "prop:seed", "prop:samples",
                 "prop:exposure", "prop:panorama", "operator:hdrcnf.convert", "operator:hdrcnf.add_node",
                 "operator:hdrcnf.use_as_world", "operator:hdrcnf.save_exr", "prop:world_strength",
                 "prop:world_rotation", f"label:Model: {label}", "label:Backend: auto: onnxruntime"):
        assert item in idle, item
    assert "operator:hdrcnf.add_node" not in draw["idle-world"]
    running = draw["running-world"]
    assert "progress:Converting 0 %" in running and "operator:hdrcnf.cancel" in running
    assert "operator:hdrcnf.convert" not in running
    assert "prop:backend" in draw["prefs"] and "prop:model_dir" in draw["prefs"]


def test_convert_fills_the_node_added_from_the_menu(blender, small_pano):
    res = blender.run('''
enable()
bpy.ops.hdrcnf.add_node()
sc = bpy.context.scene
sc.hdrcnf.filepath = PHOTO
RESULT["op"] = list(bpy.ops.hdrcnf.convert('EXEC_DEFAULT'))
tree = sc.compositing_node_group
RESULT["nodes"] = [[n.name, n.node_tree.name, n.node_tree.nodes["HDR-CNF Image"].image.name]
                   for n in tree.nodes if n.bl_idname == "CompositorNodeGroup"]
done()
''', PHOTO=small_pano)
    assert res["op"] == ["FINISHED"]
    assert res["nodes"] == [["HDR-CNF", "HDR-CNF small_pano", "HDR-CNF small_pano"]]


def test_disable_enable_cycles_and_uninstall(blender):
    res = blender.run(REGISTRATION + '''
enable()
remember_classes()
RESULT["on1"] = registered()
bpy.ops.preferences.addon_disable(module=MODULE)
RESULT["off1"] = registered()
bpy.ops.preferences.addon_enable(module=MODULE)
RESULT["on2"] = registered()
# register -> unregister -> register on the module itself
mod = sys.modules[MODULE]
mod.unregister(); RESULT["off2"] = registered()
mod.register(); RESULT["on3"] = registered()
repo = next(i for i, r in enumerate(bpy.context.preferences.extensions.repos) if r.module == "user_default")
RESULT["uninstall"] = list(bpy.ops.extensions.package_uninstall(repo_index=repo, pkg_id="hdrcnf"))
RESULT["off3"] = registered()
RESULT["files_left"] = os.path.exists(os.path.join(bpy.context.preferences.extensions.repos[repo].directory, "hdrcnf"))
done()
''')
    for key in ("on1", "on2", "on3"):
        assert len([c for c in res[key]["classes"] if c in CLASSES]) == len(CLASSES), (key, res[key])
        assert res[key]["is_registered"] == sorted(ALL_CLASSES), (key, res[key])
        assert res[key]["menu"] and res[key]["handlers"] and res[key]["scene_prop"], (key, res[key])
    for key in ("off1", "off2", "off3"):
        r = res[key]
        assert r["classes"] == [] and r["is_registered"] == [], (key, r)
        assert not r["scene_prop"] and not r["wm_prop"], (key, r)
        assert r["menu"] == [] and r["handlers"] == [], (key, r)
    assert res["uninstall"] == ["FINISHED"]
    assert res["files_left"] is False
