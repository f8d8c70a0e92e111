"""The light-budget analysis: where it puts the missing light, and that the right amount in the
right place restores a panorama's irradiance."""
import json
from pathlib import Path

import numpy as np
import pytest

from training import metrics
from engine import light
from training.light_budget import GATES, add_missing_light, choose_gate, fit_head, main, missing_stops

DEFAULT_MODEL = str(Path(__file__).resolve().parents[2] / "engine" / "models" / "default")


def test_the_right_amount_in_the_right_place_restores_irradiance():
    h, w = 32, 64
    rng = np.random.default_rng(0)
    sky = (0.2 + 0.1 * rng.random((h, w, 3))).astype(np.float32)
    target = sky.copy()
    target[6, 40] += 5000.0                    # a sun the model missed
    yy, xx = np.mgrid[:h, :w]
    clipped = (yy - 6) ** 2 + (xx - 40) ** 2 <= 4 ** 2   # its clipped halo, a disc around it
    clipped[2:5, 20:30] = True                           # and a thinner clipped cloud elsewhere
    ldr = np.where(clipped[..., None], 255, 120).astype(np.uint8).repeat(3, axis=2)
    pred = sky.copy()
    assert metrics.irradiance_rel_error(pred, target) > 0.5
    assert missing_stops(pred, target, clipped) > 5
    fixed = add_missing_light(pred, target, ldr, "at_truth")
    assert metrics.irradiance_rel_error(fixed, target) < 1e-3
    near = add_missing_light(pred, target, ldr, "at_deepest")
    assert metrics.irradiance_rel_error(near, target) < 1e-3
    spread = add_missing_light(pred, target, ldr, "spread")
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


def test_fit_head_recovers_a_linear_relation_within_the_range_it_saw():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, len(light.FEATURES)))
    stops = 2.0 + 1.0 * f[:, 0] - 0.5 * f[:, 2]
    head = fit_head(f, stops, ridge=1e-6)
    x = np.zeros(len(light.FEATURES))
    x[0] = 1.0
    assert head.predict(x) == pytest.approx(3.0, abs=0.05)
    assert head.max_stops == pytest.approx(stops.max() + 1.0, abs=1e-3) and head.fitted_on == 300
    assert light.head_problem(head.to_meta()) is None       # what --write stores is a valid block


def test_the_gate_drops_the_small_amounts_that_do_harm_but_never_costs_power():
    # Six inputs: small predicted amounts (overcast skies) hurt irradiance when added, large ones
    # (suns) help both errors.
    cv = np.array([0.3, 0.6, 0.9, 2.0, 3.0, 4.0])
    plain = np.array([[0.1, 0.2]] * 3 + [[0.8, 2.0]] * 3)
    added = np.array([[0.5, 0.25]] * 3 + [[0.2, 0.5]] * 3)
    gate, table = choose_gate(cv, plain, added)
    assert 0.9 < gate <= 2.0
    assert [t for t, _, _ in table] == list(GATES)
    by_gate = {t: (irr, pw) for t, irr, pw in table}
    assert by_gate[gate][0] < by_gate[0.0][0] and by_gate[gate][1] <= by_gate[0.0][1]
    # When every added amount helps, nothing is gated.
    gate, _ = choose_gate(cv, plain, np.minimum(added, plain) - 0.01)
    assert gate == 0.0
    # A gate that would lower irradiance error at the cost of power is not taken.
    added_power_matters = np.array([[0.5, 0.1]] * 3 + [[0.2, 0.5]] * 3)
    gate, table = choose_gate(cv, plain, added_power_matters)
    assert gate == 0.0 and min(irr for _, irr, _ in table) < table[0][1]


def test_cli_fits_the_amount_on_panoramas_outside_the_split(hdr_dir, split_file, tmp_path, capsys):
    assert main(["--model", DEFAULT_MODEL, "--data", str(hdr_dir), "--split", str(split_file),
                 "--fit-data", str(hdr_dir), "--max-width", "128", "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "fitted on 24 photographed panoramas" in out    # 3 panoramas x 2 seeds x 4 conditions
    assert "| predicted |" in out
    assert "each panorama scored by a head fitted on the other 2 (24 photographed inputs)" in out
    result = json.loads((tmp_path / "b.json").read_text())
    cv = result["cross_validation"]
    assert cv["gate"] in GATES and result["head"]["min_stops"] == pytest.approx(min(cv["gate"], result["head"]["max_stops"]))
    assert [g["min_stops"] for g in cv["gates"]] == list(GATES)
    assert all(np.isfinite(g["irradiance"]) and np.isfinite(g["power"]) for g in cv["gates"])


def test_write_stores_a_head_the_engine_then_applies(hdr_dir, split_file, tmp_path, capsys):
    import shutil

    from engine.bundle import load_bundle, sha256_file

    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL, bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta.pop("light", None)                      # start from the flow alone
    (bundle / "model.json").write_text(json.dumps(meta))
    onnx_sha = sha256_file(bundle / "model.onnx")
    assert main(["--model", str(bundle), "--data", str(hdr_dir), "--split", str(split_file),
                 "--fit-data", str(hdr_dir), "--max-width", "128", "--write"]) == 0
    loaded = load_bundle(bundle)
    assert loaded.light is not None and loaded.light.fitted_on == 24
    assert sha256_file(bundle / "model.onnx") == onnx_sha   # the model itself is untouched
    capsys.readouterr()
    # Refitting measures the flow alone: the head now in the bundle does not change the numbers.
    assert main(["--model", str(bundle), "--data", str(hdr_dir), "--split", str(split_file),
                 "--fit-data", str(hdr_dir), "--max-width", "128", "--json", str(tmp_path / "b.json")]) == 0
    again = json.loads((tmp_path / "b.json").read_text())
    assert again["head"] == loaded.light.to_meta()


@pytest.mark.parametrize("extra, needle", [(["--write"], "--fit-data"),
                                           (["--write", "--fit-data", "X"], "needs a model bundle")])
def test_write_needs_a_fit_and_a_bundle(extra, needle, hdr_dir, tmp_path, capsys):
    model = DEFAULT_MODEL if needle == "--fit-data" else str(tmp_path)
    assert main(["--model", model, "--data", str(hdr_dir)] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
