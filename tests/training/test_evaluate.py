"""training.evaluate end to end on small synthetic HDR files: the report, the JSON, determinism,
the model through the engine, and one-line errors for bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.io import write_exr
from training import evaluate
from training.evaluate import brightest_direction, main, make_sources
from engine.sphere import equirect_directions

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = ROOT / "engine" / "models" / "default"
BASELINE_LABELS = ("naive inverse sRGB", "Rempel 2007", "inverse Reinhard")


def _sun_sky_pano(h=64, w=128, sun=(0.5, 0.6, 0.62)) -> np.ndarray:
    """Equirect sky gradient + ground + a small, very bright sun disc (12 stops above the sky)."""
    d = equirect_directions(h, w)
    up = d[..., 1]
    sky = np.where(up > 0, 0.3 + 0.7 * up, 0.08)[..., None] * np.array([0.6, 0.8, 1.0])
    s = np.asarray(sun) / np.linalg.norm(sun)
    disc = (d @ s) > np.cos(np.radians(5.0))
    img = sky.copy()
    img[disc] = np.array([4000.0, 3800.0, 3500.0])
    return img.astype(np.float32)


def _photo(h=48, w=64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([0.2 + 0.3 * xx / w, 0.25 + 0.2 * yy / h, 0.3 + 0 * xx], axis=-1)
    img[10:16, 40:48] = 60.0  # a lamp
    return img.astype(np.float32)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "hdr"
    d.mkdir()
    write_exr(d / "sunny.exr", _sun_sky_pano(), half=False)
    write_exr(d / "room.exr", _photo(), half=False)
    return d


def _run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


def test_sources_for_panoramas_and_photos():
    pano = _sun_sky_pano()
    yaw, pitch = brightest_direction(pano)
    s = np.array([0.5, 0.6, 0.62]) / np.linalg.norm([0.5, 0.6, 0.62])
    assert yaw == pytest.approx(np.degrees(np.arctan2(s[0], s[2])), abs=6.0)
    assert pitch == pytest.approx(np.degrees(np.arcsin(s[1])), abs=6.0)
    views = make_sources("p.exr", pano, True, max_width=96)
    assert [(v.view, v.kind) for v in views] == [("pano", "panorama"), ("crop_bright", "photo"),
                                                 ("crop_opposite", "photo")]
    assert views[0].hdr.shape == (48, 96, 3)
    # The crop aimed at the brightest direction has the sun in frame, the opposite one does not.
    assert views[1].hdr.max() > 1000.0 and views[2].hdr.max() < 10.0
    photo = make_sources("r.exr", _photo(), False, max_width=32)
    assert [(v.view, v.kind) for v in photo] == [("full", "photo")] and photo[0].hdr.shape == (24, 32, 3)


def test_upscaled_sources_are_the_same_views_larger():
    pano = _sun_sky_pano()
    small = make_sources("p.exr", pano, True, max_width=96)
    large = make_sources("p.exr", pano, True, max_width=96, upscale=3)
    for a, b in zip(small, large):
        assert (a.view, a.kind) == (b.view, b.kind)
        # crops are rendered at 3x the width, their height rounded to 8 px like any crop's
        assert b.hdr.shape[1] == 3 * a.hdr.shape[1] and abs(b.hdr.shape[0] - 3 * a.hdr.shape[0]) <= 8
        # the same scene: its mean radiance is kept (bilinear / finer sampling, no new light)
        assert b.hdr.mean() == pytest.approx(a.hdr.mean(), rel=0.15)
    photo = make_sources("r.exr", _photo(), False, max_width=32, upscale=2)
    assert photo[0].hdr.shape == (48, 64, 3)


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------


def test_baselines_end_to_end_report_json_and_determinism(data_dir, tmp_path, capsys):
    js, md = tmp_path / "out.json", tmp_path / "out.md"
    rc, out, err = _run(["--data", data_dir, "--json", js, "--markdown", md, "--quiet"], capsys)
    assert rc == 0, err
    for label in BASELINE_LABELS:
        assert label in out
    assert "### Photos" in out and "### Panoramas" in out and "PU21-PSNR" in out
    assert md.read_text() == out
    res = json.loads(js.read_text())
    # 1 panorama -> pano + 2 crops, 1 photo -> itself; 4 standard camera conditions each.
    assert len(res["inputs"]) == 4 * 4
    kinds = [r["kind"] for r in res["inputs"]]
    assert kinds.count("panorama") == 4 and kinds.count("photo") == 12
    pano_row = next(r for r in res["inputs"] if r["kind"] == "panorama")
    naive = pano_row["methods"]["naive_inverse"]
    assert naive["irradiance_rel_error"] > 0.3      # the clipped sun's light is lost ...
    assert naive["power_stops"] > 1.0
    assert pano_row["methods"]["rempel2007"]["highlight_stops"] < naive["highlight_stops"]  # ... Rempel lifts it
    photo_row = next(r for r in res["inputs"] if r["kind"] == "photo")
    assert photo_row["methods"]["naive_inverse"]["irradiance_rel_error"] is None
    assert res["methods"] == ["naive_inverse", "rempel2007", "inverse_reinhard"]
    assert res["inputs"][0]["methods"]["inverse_reinhard"]["aligned"] is True
    assert res["inputs"][0]["methods"]["naive_inverse"]["aligned"] is False
    avg = res["averages"]["all"]["naive_inverse"]
    assert avg["n_inputs"] == 16 and avg["pu21_psnr"] > 10.0 and avg["n_irradiance_rel_error"] == 4
    assert set(res["averages"]) >= {"all", "photo", "panorama", "by_condition"}
    # Same seed -> same cameras -> same numbers.
    js2 = tmp_path / "again.json"
    assert _run(["--data", data_dir, "--json", js2, "--quiet"], capsys)[0] == 0
    again = json.loads(js2.read_text())

    def numbers(rows):  # everything but the timings
        return [{**r, "methods": {m: {k: v for k, v in e.items() if k != "seconds"}
                                  for m, e in r["methods"].items()}} for r in rows]

    assert numbers(again["inputs"]) == numbers(res["inputs"])


def test_split_and_full_conditions(data_dir, tmp_path, capsys):
    split = tmp_path / "val.txt"
    split.write_text("# held out\nroom.exr\nmissing.exr\n")
    js = tmp_path / "o.json"
    rc, out, err = _run(["--data", data_dir, "--split", split, "--conditions", "full", "--json", js,
                         "--quiet", "--max-width", "32"], capsys)
    assert rc == 0, err
    assert "missing.exr" in err  # a listed name that is not there is worth a warning
    res = json.loads(js.read_text())
    assert res["images"] == ["room.exr"]
    assert len(res["inputs"]) == 12  # the full 2 x 3 x 2 grid
    assert {r["curve"] for r in res["inputs"]} == {"srgb", "gamma", "filmic"}
    assert {r["codec"] for r in res["inputs"]} == {"png", "jpeg85"}
    assert all(r["width"] == 32 for r in res["inputs"])


def test_model_bundle_end_to_end(data_dir, tmp_path, capsys):
    js = tmp_path / "m.json"
    rc, out, err = _run(["--model", DEFAULT_BUNDLE, "--data", data_dir, "--json", js, "--quiet",
                         "--temperature", "0.5", "--max-images", "2"], capsys)
    assert rc == 0, err
    res = json.loads(js.read_text())
    assert res["methods"][0] == "model" and res["model"]["temperature"] == 0.5
    header = out.split("### All inputs")[1]
    assert "(T=0.50, light stage)" in header and res["model"]["light_stage"] is True
    for label in BASELINE_LABELS:
        assert label in header
    for row in res["inputs"]:
        m = row["methods"]["model"]
        assert m["aligned"] is False and m["nonfinite_pixels"] == 0
        assert np.isfinite(m["pu21_psnr"]) and np.isfinite(m["all_stops"])
    # --no-light scores the flow alone: same photos, panoramas without the added light
    js2 = tmp_path / "flow.json"
    rc, out, err = _run(["--model", DEFAULT_BUNDLE, "--data", data_dir, "--json", js2, "--quiet",
                         "--temperature", "0.5", "--max-images", "2", "--no-light"], capsys)
    assert rc == 0, err
    flow = json.loads(js2.read_text())
    assert flow["model"]["light_stage"] is False and "(T=0.50)" in out.split("### All inputs")[1]
    lit_power = [r["methods"]["model"]["power_stops"] for r in res["inputs"] if r["kind"] == "panorama"]
    flow_power = [r["methods"]["model"]["power_stops"] for r in flow["inputs"] if r["kind"] == "panorama"]
    assert lit_power != flow_power
    for a, b in zip(res["inputs"], flow["inputs"]):
        if a["kind"] == "photo":
            assert a["methods"]["model"]["pu21_psnr"] == b["methods"]["model"]["pu21_psnr"]
    # --full-resolution is recorded and named in the report, so its numbers cannot pass for the default's
    js3 = tmp_path / "full.json"
    rc, out, err = _run(["--model", DEFAULT_BUNDLE, "--data", data_dir, "--json", js3, "--quiet",
                         "--temperature", "0.5", "--max-images", "1", "--no-light", "--full-resolution"], capsys)
    assert rc == 0, err
    assert json.loads(js3.read_text())["model"]["full_resolution"] is True
    assert "(T=0.50, full resolution)" in out.split("### All inputs")[1]


def test_record_stores_the_averages_in_the_bundle_and_leaves_the_graph_alone(data_dir, tmp_path, capsys):
    import shutil

    from engine.bundle import load_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    onnx = (bundle / "model.onnx").read_bytes()
    js = tmp_path / "r.json"
    rc, out, err = _run(["--model", bundle, "--data", data_dir, "--quiet", "--max-images", "1",
                         "--max-width", "64", "--json", js, "--record"], capsys)
    assert rc == 0, err
    scores = load_bundle(bundle).meta["scores"]
    averages = json.loads(js.read_text())["averages"]["all"]
    assert scores["model"]["highlight_stops"] == pytest.approx(averages["model"]["highlight_stops"], abs=1e-4)
    assert scores["naive_inverse"]["pu21_psnr"] == pytest.approx(averages["naive_inverse"]["pu21_psnr"], abs=1e-4)
    assert scores["light_stage"] == "included" and "--record" not in scores["evaluated_with"]
    assert "1 images" in scores["split"] and (bundle / "model.onnx").read_bytes() == onnx


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, no traceback
# --------------------------------------------------------------------------------------------


def test_empty_folder_is_a_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, err = _run(["--data", empty], capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and str(empty) in err and "Traceback" not in err


def test_corrupt_files(data_dir, tmp_path, capsys):
    bad = data_dir / "broken.exr"
    bad.write_bytes(b"this is not an EXR file" * 10)
    js = tmp_path / "o.json"
    rc, out, err = _run(["--data", data_dir, "--quiet", "--json", js, "--max-width", "32"], capsys)
    assert rc == 0 and "warning" in err and str(bad) in err  # skipped, the rest evaluated
    assert json.loads(js.read_text())["skipped"][0]["file"] == str(bad)
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "broken.hdr").write_bytes(b"#?RADIANCE\ngarbage")
    rc, out, err = _run(["--data", only_bad], capsys)
    assert rc == 2 and str(only_bad / "broken.hdr") in err.strip().splitlines()[-1]
    assert "Traceback" not in err


@pytest.mark.parametrize("extra, needle", [
    (["--split", "nope.txt"], "nope.txt"),
    (["--model", "no/such/model"], "no/such/model"),
    (["--max-width", "4"], "--max-width"),
    (["--json", "no/such/dir/out.json"], "no/such/dir"),
    (["--record"], "--record"),
])
def test_usage_errors(data_dir, capsys, extra, needle):
    rc, out, err = _run(["--data", data_dir, "--quiet"] + extra, capsys)
    assert rc == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_not_a_model_folder(data_dir, tmp_path, capsys):
    rc, out, err = _run(["--model", tmp_path, "--data", data_dir], capsys)
    assert rc == 2 and "model.json" in err and err.count("\n") == 1
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"not a checkpoint")
    rc, out, err = _run(["--model", ckpt, "--data", data_dir], capsys)
    assert rc == 2 and str(ckpt) in err.strip().splitlines()[-1] and "Traceback" not in err


def test_module_entry_point(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "training.evaluate", "--data", str(empty)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and str(empty) in r.stderr
    assert evaluate.__doc__ and "PU21" in evaluate.__doc__
