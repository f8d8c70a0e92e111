"""The light-budget analysis: where it puts the missing light, and that the right amount in the
right place restores a panorama's irradiance."""
import json
from pathlib import Path

import numpy as np
import pytest

from training import metrics
from training.light_budget import deepest_point, main, missing_stops, restore_light

DEFAULT_MODEL = str(Path(__file__).resolve().parents[2] / "engine" / "models" / "default")


def test_deepest_point_is_the_centre_of_the_thickest_region():
    yy, xx = np.mgrid[:40, :80]
    mask = ((yy - 20) ** 2 + (xx - 50) ** 2 <= 8 ** 2) | ((yy < 3) & (xx < 30))  # disc + thin band
    assert deepest_point(mask)[:2] == pytest.approx((20, 50), abs=1)


def test_deepest_point_wraps_across_the_panorama_seam():
    yy, xx = np.mgrid[:40, :80]
    mask = (yy - 20) ** 2 + (np.minimum(xx, 80 - xx)) ** 2 <= 6 ** 2  # a disc cut by the seam
    y, x, _ = deepest_point(mask)
    assert y == 20 and min(x, 80 - x) <= 1


def test_the_right_amount_in_the_right_place_restores_irradiance():
    h, w = 32, 64
    rng = np.random.default_rng(0)
    sky = (0.2 + 0.1 * rng.random((h, w, 3))).astype(np.float32)
    target = sky.copy()
    target[6, 40] += 5000.0                    # a sun the model missed
    yy, xx = np.mgrid[:h, :w]
    clipped = (yy - 6) ** 2 + (xx - 40) ** 2 <= 4 ** 2   # its clipped halo, a disc around it
    clipped[2:5, 20:30] = True                           # and a thinner clipped cloud elsewhere
    pred = sky.copy()
    assert metrics.irradiance_rel_error(pred, target) > 0.5
    assert missing_stops(pred, target, clipped) > 5
    fixed = restore_light(pred, target, clipped, "at_truth")
    assert metrics.irradiance_rel_error(fixed, target) < 1e-3
    near = restore_light(pred, target, clipped, "at_deepest")
    assert metrics.irradiance_rel_error(near, target) < 1e-3
    spread = restore_light(pred, target, clipped, "spread")
    assert 1e-2 < metrics.irradiance_rel_error(spread, target) < metrics.irradiance_rel_error(pred, target)
    assert np.array_equal(pred, sky)                     # inputs left alone


def test_cli_on_real_panoramas_with_the_shipped_model(hdr_dir, tmp_path, capsys):
    out = tmp_path / "budget.json"
    assert main(["--model", DEFAULT_MODEL, "--data", str(hdr_dir), "--max-width", "128",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| **mean** |" in text
    result = json.loads(out.read_text())
    assert len(result["inputs"]) == 4 * 4                 # 4 fixture panoramas x 4 camera conditions
    assert all(np.isfinite(r["model"]) and np.isfinite(r["at_deepest"]) for r in result["inputs"])


def test_cli_bad_data_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--model", DEFAULT_MODEL, "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_fit_amount_recovers_a_linear_relation_and_never_lowers_light():
    from training.light_budget import add_predicted_light, fit_amount

    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 3))
    stops = 1.0 + 2.0 * f[:, 0] - 0.5 * f[:, 2]
    predict = fit_amount(f, stops, ridge=1e-6)
    assert predict([1.0, 0.0, 0.0]) == pytest.approx(3.0, abs=1e-3)
    pano = np.ones((16, 32, 3), np.float32)
    clipped = np.zeros((16, 32), bool)
    clipped[4:9, 10:15] = True
    assert np.array_equal(add_predicted_light(pano, clipped, -2.0), pano)   # a negative amount adds nothing
    raised = add_predicted_light(pano, clipped, 1.0)                        # one stop more in the clip
    sa = metrics.equirect_solid_angles(16, 32)[:, None]
    before, after = (pano[..., 0] * sa)[clipped].sum(), (raised[..., 0] * sa)[clipped].sum()
    assert after == pytest.approx(2.0 * before, rel=1e-5)


def test_cli_fits_the_amount_on_panoramas_outside_the_split(hdr_dir, split_file, capsys):
    assert main(["--model", DEFAULT_MODEL, "--data", str(hdr_dir), "--split", str(split_file),
                 "--fit-data", str(hdr_dir), "--max-width", "128"]) == 0
    out = capsys.readouterr().out
    assert "fitted on 24 photographed panoramas" in out    # 3 panoramas x 2 seeds x 4 conditions
    assert "| predicted |" in out
