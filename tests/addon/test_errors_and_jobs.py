"""Errors leave the scene unchanged (one-line ERROR reports, CANCELLED), and the worker-thread job
reports progress, results, failures and cancellation."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from .helpers import REPO

ERRORS = '''
enable()
ops = submodule("operators")
sc = bpy.context.scene
s = sc.hdrcnf
prefs = bpy.context.preferences.addons[MODULE].preferences

def snapshot():
    tree = sc.compositing_node_group
    return {
        "images": sorted(i.name for i in bpy.data.images),
        "groups": sorted(g.name for g in bpy.data.node_groups),
        "worlds": sorted(w.name for w in bpy.data.worlds),
        "world": sc.world.name if sc.world else None,
        "tree": sorted(n.name for n in tree.nodes) if tree else None,
        "result": s.result.name if s.result else None,
        "result_ptr": s.result.as_pointer() if s.result else None,
    }

def attempt(label, **setup):
    """Run Convert through bpy.ops (an ERROR report raises RuntimeError there) and through
    the synchronous function the operator runs (to see its return value and reports)."""
    for k, v in setup.items():
        target = prefs if k in ("model_dir", "backend") else s
        setattr(target, k, v)
    before = snapshot()
    try:
        ret = list(bpy.ops.hdrcnf.convert('EXEC_DEFAULT'))
        err = None
    except RuntimeError as e:
        ret, err = None, str(e)
    reports = []
    direct = sorted(ops.convert_sync(bpy.context, lambda kind, msg: reports.append([sorted(kind), msg])))
    RESULT[label] = {"ret": ret, "error": err, "direct": direct, "reports": reports,
                     "unchanged": snapshot() == before, "status": bpy.context.window_manager.hdrcnf.status}
    prefs.model_dir = ""

for phase in ("clean", "after_result"):
    if phase == "after_result":
        s.filepath = GOOD
        assert bpy.ops.hdrcnf.convert('EXEC_DEFAULT') == {'FINISHED'}
    attempt(phase + ":text", filepath=TEXT)
    attempt(phase + ":text_jpg", filepath=TEXT_JPG)
    attempt(phase + ":tiny", filepath=TINY)
    attempt(phase + ":missing", filepath=os.path.join(WORK, "nope.jpg"))
    attempt(phase + ":no_photo", filepath="")
    attempt(phase + ":no_model", filepath=GOOD, model_dir=EMPTY_MODEL)
    attempt(phase + ":bad_backend", filepath=GOOD, model_dir=BROKEN_MODEL)

# Use as World / Save as EXR without a result: errors, no world.
bpy.ops.wm.read_homefile(use_empty=False)
enable()
sc = bpy.context.scene; s = sc.hdrcnf
worlds = sorted(w.name for w in bpy.data.worlds)
for op in ("use_as_world", "save_exr"):
    try:
        kw = {"filepath": os.path.join(WORK, "x.exr")} if op == "save_exr" else {}
        RESULT[op] = list(getattr(bpy.ops.hdrcnf, op)(**kw))
    except RuntimeError as e:
        RESULT[op] = str(e)
RESULT["worlds_unchanged"] = sorted(w.name for w in bpy.data.worlds) == worlds and sc.world.name == "World"
RESULT["no_exr"] = not os.path.exists(os.path.join(WORK, "x.exr"))
done()
'''


@pytest.fixture(scope="module")
def error_files(tmp_path_factory, small_pano):
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.txt").write_text("this is not a photo\n" * 20)
    (d / "notes.jpg").write_text("this is not a photo either\n" * 20)
    Image.new("RGB", (4, 4), (200, 30, 30)).save(d / "tiny.png")
    (d / "empty_model").mkdir()
    broken = d / "broken_model"
    broken.mkdir()
    src = REPO / "engine" / "models" / "default"
    meta = json.loads((src / "model.json").read_text())
    meta.pop("photo_flow", None)  # one flow, whose graph is garbage
    (broken / "model.onnx").write_bytes(b"not an onnx graph" * 100)
    import hashlib

    meta["sha256"] = hashlib.sha256((broken / "model.onnx").read_bytes()).hexdigest()
    (broken / "model.json").write_text(json.dumps(meta))
    return {"TEXT": d / "notes.txt", "TEXT_JPG": d / "notes.jpg", "TINY": d / "tiny.png",
            "EMPTY_MODEL": d / "empty_model", "BROKEN_MODEL": broken, "GOOD": small_pano}


@pytest.fixture(scope="module")
def errors(blender, error_files):
    return blender.run(ERRORS, timeout=300, WORK=blender.work, **error_files)


CASES = {
    "text": "not an image",
    "text_jpg": "not an image",
    "tiny": "smaller than",
    "missing": "no such file",
    "no_photo": "no photo chosen",
    "no_model": "model.json",
    "bad_backend": "onnxruntime cannot load the model",
}


@pytest.mark.parametrize("phase", ["clean", "after_result"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_reports_one_line_and_changes_nothing(errors, phase, case):
    r = errors[f"{phase}:{case}"]
    assert r["ret"] is None and r["error"].startswith("Error: HDR-CNF: "), r
    assert CASES[case] in r["error"], r["error"]
    assert r["error"].strip().count("\n") == 0, "error report must be one line"
    assert r["direct"] == ["CANCELLED"]
    assert len(r["reports"]) == 1 and r["reports"][0][0] == ["ERROR"], r["reports"]
    assert "Traceback" not in r["error"]
    assert r["unchanged"], f"{case} changed the scene"
    assert CASES[case] in r["status"]


def test_world_and_save_without_result_are_errors(errors):
    assert "no HDR result yet" in errors["use_as_world"]
    assert "no HDR result yet" in errors["save_exr"]
    assert errors["worlds_unchanged"] and errors["no_exr"]


JOBS = '''
import threading
enable()
jobs = submodule("jobs")
tiling = submodule("engine_link").module("tiling")
bundle, _ = jobs.load_engine(jobs.Settings())
# the smallest tile the installed model allows, so the small photo takes many model runs
TILE = tiling.min_tile(tiling.default_overlap(bundle.receptive_field, bundle.stride), bundle.stride)

seen_threads = []
def runner(source, settings, progress=None, cancel=None):
    seen_threads.append(threading.current_thread().name)
    return jobs.run_conversion(source, settings, progress=progress, cancel=cancel)

# 1. a job with several model runs (small tiles, two samples) reports rising progress and a result
src = jobs.Source(name="p", key=PHOTO, path=PHOTO)
job = jobs.ConversionJob(src, jobs.Settings(tile=TILE, samples=2), runner=runner).start()
seen = []
t0 = time.time()
while not job.finished and time.time() - t0 < 120:
    job.poll(); seen.append(job.progress); time.sleep(0.005)
RESULT["job1"] = {"state": job.state, "progress": job.progress, "monotonic": seen == sorted(seen),
                  "partial": any(0 < p < 1 for p in seen), "shape": list(job.output.hdr.shape),
                  "thread": seen_threads}

# 2. cancelling after the first model run stops it
holder = {}
def cancelling(source, settings, progress=None, cancel=None):
    def prog(f):
        progress(f); holder["job"].cancel()
    return jobs.run_conversion(source, settings, progress=prog, cancel=cancel)
job2 = jobs.ConversionJob(src, jobs.Settings(tile=TILE, samples=2), runner=cancelling)
holder["job"] = job2
job2.start()
RESULT["job2"] = [job2.wait(120), job2.error, job2.output is None]

# 3. a failure in the worker comes back as one line
job3 = jobs.ConversionJob(jobs.Source(name="t", key=TEXT, path=TEXT), jobs.Settings()).start()
RESULT["job3"] = [job3.wait(60), job3.error]

# 4. 'INVOKE_DEFAULT' in background mode runs synchronously (no event loop for a modal timer)
bpy.context.scene.hdrcnf.filepath = PHOTO
RESULT["invoke"] = list(bpy.ops.hdrcnf.convert('INVOKE_DEFAULT'))
RESULT["engine_module"] = [m for m in sys.modules if m == "engine" or m.endswith(".engine.convert")]

# 5. a plate with a deep clipped disc is judged on a reduced copy unless Full Resolution is on
yy, xx = np.mgrid[0:683, 0:1024]
plate = np.full((683, 1024, 3), 90 / 255, np.float32)
plate[(yy - 341) ** 2 + (xx - 512) ** 2 <= 60 ** 2] = 1.0
big = jobs.Source(name="plate", key="plate", pixels=plate)
RESULT["factors"] = [jobs.run_conversion(big, jobs.Settings(panorama="off", full_resolution=full)).flow_factor
                     for full in (False, True)]
done()
'''


def test_conversion_job_progress_cancel_and_failure(blender, small_pano, error_files):
    res = blender.run(JOBS, timeout=300, PHOTO=small_pano, TEXT=error_files["TEXT"])
    j1 = res["job1"]
    assert j1["state"] == "done" and j1["progress"] == 1.0, j1
    assert j1["monotonic"] and j1["partial"], j1
    assert j1["shape"] == [64, 128, 3]
    assert j1["thread"] == ["hdrcnf-convert"]
    assert res["job2"] == ["cancelled", "conversion cancelled", True]
    state, message = res["job3"]
    assert state == "failed" and "not an image" in message and "\n" not in message
    assert res["invoke"] == ["FINISHED"]
    # only the vendored engine was used, never a top-level `engine` from the source tree
    assert res["engine_module"] == ["bl_ext.user_default.hdrcnf.engine.convert"]
    assert res["factors"] == [4, 1]   # engine.scale by default, the photo's own size with Full Resolution


MODAL = '''
import types
enable()
ops = submodule("operators")
Op = ops.HDRCNF_OT_convert
reports = []

class Driver:
    """Stands in for the operator instance: Blender's event loop (which never runs headless)
    would call start() from invoke() and then modal() for every event."""
    start, modal, _end = Op.start, Op.modal, Op._end
    def report(self, kind, msg):
        reports.append([sorted(kind), msg])

TIMER = types.SimpleNamespace(type='TIMER', value='NOTHING')
ESC = types.SimpleNamespace(type='ESC', value='PRESS')
MOUSE = types.SimpleNamespace(type='MOUSEMOVE', value='NOTHING')
ctx = bpy.context
state = ctx.window_manager.hdrcnf
s = ctx.scene.hdrcnf

def drive(first_event=None):
    d = Driver()
    out = {"start": sorted(d.start(ctx)), "running": state.running, "poll_blocked": not Op.poll(ctx)}
    if first_event is not None:
        out["esc"] = sorted(d.modal(ctx, first_event))
    out["mouse"] = sorted(d.modal(ctx, MOUSE))
    t0 = time.time(); ret = {'PASS_THROUGH'}; progress = []
    while ret == {'PASS_THROUGH'} and time.time() - t0 < 120:
        time.sleep(0.02)
        ret = d.modal(ctx, TIMER)
        progress.append(state.progress)
    out.update(ret=sorted(ret), progress=progress[-1], running=out["running"], after_running=state.running,
               active_cleared=ops._active_job is None, status=state.status)
    return out

s.filepath = PHOTO
s.samples = 2
RESULT["done"] = drive()
RESULT["done"]["result"] = s.result.name if s.result else None
images = sorted(i.name for i in bpy.data.images)
s.seed = 3
RESULT["esc"] = drive(ESC)
RESULT["esc"]["images_unchanged"] = sorted(i.name for i in bpy.data.images) == images
RESULT["esc"]["seed_kept"] = s.result["hdrcnf_seed"] == 0
s.filepath = TEXT
RESULT["bad"] = drive()
RESULT["reports"] = reports
done()
'''


def test_modal_wrapper_applies_on_main_thread_and_escape_cancels(blender, small_pano, error_files):
    res = blender.run(MODAL, timeout=300, PHOTO=small_pano, TEXT=error_files["TEXT"])
    done_ = res["done"]
    assert done_["start"] == ["RUNNING_MODAL"] and done_["running"] and done_["poll_blocked"]
    assert done_["mouse"] == ["PASS_THROUGH"]
    assert done_["ret"] == ["FINISHED"] and done_["progress"] == 100.0
    assert not done_["after_running"] and done_["active_cleared"]
    assert done_["result"] == "HDR-CNF small_pano"
    esc = res["esc"]
    assert esc["esc"] == ["RUNNING_MODAL"] and esc["ret"] == ["CANCELLED"]
    assert esc["status"] == "Cancelled" and esc["images_unchanged"] and esc["seed_kept"]
    assert esc["active_cleared"] and not esc["after_running"]
    bad = res["bad"]
    # a bad file is found by the worker: the modal ends CANCELLED with one ERROR report
    assert bad["ret"] == ["CANCELLED"] and "not an image" in bad["status"]
    kinds = [r[0] for r in res["reports"]]
    assert kinds == [["INFO"], ["WARNING"], ["ERROR"]], res["reports"]
