"""training.compare: the paired image bootstrap agrees with training.evaluate's averages, is exact
when every image agrees, widens when one image disagrees, and refuses unpaired evaluations."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training import compare
from training.evaluate import METRICS, aggregate

CONFIG = {"data": ["d"], "split": None, "max_width": 768, "seed": 0, "conditions": "standard",
          "pu21_clip_cd": 200.0, "crop_fov_deg": 90.0}


def _scores(rng, panorama: bool, shift: float = 0.0) -> dict:
    return {"pu21_psnr": 25.0 - 3 * shift + rng.normal(), "highlight_stops": 0.5 + shift + 0.1 * rng.random(),
            "all_stops": 0.4 + 0.05 * rng.random(),
            "irradiance_rel_error": 0.3 + shift + 0.1 * rng.random() if panorama else None,
            "power_stops": 0.5 + shift + 0.1 * rng.random() if panorama else None,
            "log2_scale": 0.0, "seconds": 0.1}


def _evaluation(shift_per_image: dict[str, float] | None = None, seed: int = 0) -> dict:
    """Five images; the panoramas give a panorama and two crops, the photos one input; four
    cameras each. ``shift_per_image`` worsens the model's errors on the named images."""
    rng = np.random.default_rng(seed)
    inputs = []
    for i in range(5):
        pano = i < 3
        for view in (("pano", "crop_bright", "crop_opposite") if pano else ("full",)):
            for cond in ("c1", "c2", "c3", "c4"):
                is_pano = view == "pano"
                shift = (shift_per_image or {}).get(f"img{i}", 0.0)
                inputs.append({"image": f"img{i}", "view": view, "condition": cond,
                               "kind": "panorama" if is_pano else "photo",
                               "clip_fraction": 0.03, "curve": "srgb", "codec": "png",
                               "methods": {"model": _scores(np.random.default_rng([seed, i, len(inputs)]), is_pano, shift),
                                           "naive_inverse": _scores(rng, is_pano, 0.4)}})
    return {"config": dict(CONFIG), "inputs": inputs}


def test_point_estimates_are_the_averages_training_evaluate_reports():
    a = _evaluation()
    avg = aggregate(a["inputs"], ["model", "naive_inverse"])["all"]
    b = _evaluation({"img1": 0.2})
    rows = compare.compare_models(a, b, resamples=200)
    for m in METRICS:
        mean_a, _, _ = rows[m]
        assert mean_a == pytest.approx(avg["model"][m])
    ratio = compare.compare_baseline(a, "naive_inverse", resamples=200)
    assert ratio["highlight_stops"][2].value == pytest.approx(
        avg["model"]["highlight_stops"] / avg["naive_inverse"]["highlight_stops"])
    assert ratio["pu21_psnr"][2].value == pytest.approx(avg["model"]["pu21_psnr"] - avg["naive_inverse"]["pu21_psnr"])


def test_identical_evaluations_differ_by_nothing():
    a = _evaluation()
    rows = compare.compare_models(a, json.loads(json.dumps(a)), resamples=300)
    for m, (_, _, s) in rows.items():
        assert (s.value, s.low, s.high) == (0.0, 0.0, 0.0), m
        assert s.p_better == 0.0


def test_a_model_better_on_every_image_is_better_in_every_resample():
    worse = {f"img{i}": 0.1 for i in range(5)}
    a, b = _evaluation(worse), _evaluation()
    _, _, s = compare.compare_models(a, b, resamples=500)["highlight_stops"]
    assert s.value == pytest.approx(-0.1)
    assert s.low == pytest.approx(-0.1) and s.high == pytest.approx(-0.1)
    assert s.p_better == 1.0
    _, _, psnr = compare.compare_models(a, b, resamples=500)["pu21_psnr"]
    assert psnr.value == pytest.approx(0.3) and psnr.p_better == 1.0  # higher is better there


def test_one_disagreeing_image_makes_the_interval_straddle_zero():
    a = _evaluation({f"img{i}": 0.05 for i in range(4)})   # B better by 0.05 on four images ...
    b = _evaluation({"img4": 0.5})                         # ... and much worse on the fifth
    _, _, s = compare.compare_models(a, b, resamples=2000)["highlight_stops"]
    assert s.low < 0 < s.high
    assert 0.0 < s.p_better < 1.0


def test_unpaired_evaluations_are_refused(tmp_path, capsys):
    a, b = _evaluation(), _evaluation()
    b["inputs"] = b["inputs"][:-1]
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert compare.main([str(pa), str(pb)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different inputs" in err

    b = _evaluation()
    b["config"]["seed"] = 1
    pb.write_text(json.dumps(b))
    assert compare.main([str(pa), str(pb)]) == 2
    assert "'seed'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["a.json"], "two evaluation files"),
    (["a.json", "a.json", "--baseline", "naive_inverse"], "two evaluation files"),
    (["a.json", "--baseline", "nope"], "no method 'nope'"),
    (["missing.json", "--baseline", "naive_inverse"], "not a readable"),
    (["a.json", "a.json", "--resamples", "5"], "--resamples"),
    (["bad.json", "--baseline", "naive_inverse"], "lacks image, view, condition or methods"),
])
def test_usage_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps(_evaluation()))
    (tmp_path / "bad.json").write_text(json.dumps({"inputs": [{"image": "x"}]}))
    assert compare.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_report_names_both_files_and_every_metric(tmp_path, capsys):
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(_evaluation({"img0": 0.1})))
    pb.write_text(json.dumps(_evaluation()))
    assert compare.main([str(pa), str(pb), "--resamples", "500"]) == 0
    out = capsys.readouterr().out
    assert f"A: {pa}" in out and f"B: {pb}" in out and "5 images" in out
    assert out.count("\n| ") == 1 + len(METRICS)   # header + one row per metric
    assert "P(B better)" in out


def test_pooled_files_are_one_set_of_images(tmp_path, capsys):
    a, b = _evaluation(seed=0), _evaluation(seed=1)
    for r in b["inputs"]:
        r["image"] = "other_" + r["image"]          # a second held-out set: other images
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    pooled = compare.load_eval(f"{pa},{pb}")
    assert len(pooled["inputs"]) == len(a["inputs"]) + len(b["inputs"])
    assert compare.main([f"{pa},{pb}", "--baseline", "naive_inverse", "--resamples", "200"]) == 0
    assert "10 images" in capsys.readouterr().out
    # The same images twice, or a set evaluated with other settings, cannot be pooled.
    assert compare.main([f"{pa},{pa}", "--baseline", "naive_inverse"]) == 2
    assert "scores images that another pooled file scores too" in capsys.readouterr().err
    b["config"]["max_width"] = 512
    pb.write_text(json.dumps(b))
    assert compare.main([f"{pa},{pb}", "--baseline", "naive_inverse"]) == 2
    assert "'max_width'" in capsys.readouterr().err
