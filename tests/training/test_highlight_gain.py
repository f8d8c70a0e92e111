"""The highlight-gain analysis: its arithmetic, and that g = 1 is exactly evaluate's score."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine.color import srgb_to_linear
from training import evaluate
from training.highlight_gain import channel_breakdown, gain_errors, main, oracle_errors

DEFAULT_MODEL = str(Path(__file__).resolve().parents[2] / "engine" / "models" / "default")


def half_clipped_photo(size: int, seed: int):
    """An 8-bit photo whose lower half is clipped: (ldr, its naive inverse, the clip mask)."""
    rng = np.random.default_rng(seed)
    ldr = np.full((size, size, 3), 255, np.uint8)
    ldr[:size // 2] = rng.integers(60, 200, size=(size // 2, size, 3))
    return ldr, srgb_to_linear(ldr.astype(np.float32) / 255.0), (ldr >= 250).any(axis=-1)


def test_the_right_gain_scores_zero_and_the_bias_is_signed():
    ldr, naive, clipped = half_clipped_photo(8, seed=0)
    pred = naive * np.where(clipped, 2.0, 1.0)[..., None]      # the model lifts the clip by one stop
    true = naive * np.where(clipped, 4.0, 1.0)[..., None]      # the truth is two stops up
    errors, bias = gain_errors(pred, ldr, true, clipped, gains=(1.0, 2.0, 3.0))
    assert errors[1] == pytest.approx(0.0, abs=1e-3)
    assert errors[0] == pytest.approx(1.0, abs=3e-3) and errors[2] == pytest.approx(1.0, abs=3e-3)  # eps 1e-3
    assert bias == pytest.approx(-1.0, abs=1e-3)


def test_oracles_remove_a_constant_offset_or_scale_but_not_texture():
    ldr, naive, clipped = half_clipped_photo(16, seed=1)
    rng = np.random.default_rng(2)
    texture = rng.uniform(1.0, 3.0, size=clipped.shape)                  # stops above the clip, varying
    true = naive * np.where(clipped, 2.0 ** texture, 1.0)[..., None]
    darker = true / 4.0                                                  # the right texture, two stops dark
    offset, gain = oracle_errors(darker, ldr, true, clipped)
    assert offset == pytest.approx(0.0, abs=1e-3)
    assert gain > 0.2                                                    # a gain cannot undo an offset here
    timid = naive * np.where(clipped, 2.0 ** (0.5 * texture), 1.0)[..., None]   # half the correction
    offset, gain = oracle_errors(timid, ldr, true, clipped)
    assert gain == pytest.approx(0.0, abs=3e-3) and offset > 0.2
    flat = naive * np.where(clipped, 4.0, 1.0)[..., None]               # right on average, no texture
    offset, gain = oracle_errors(flat, ldr, true, clipped)
    spread = np.abs(texture[clipped] - np.median(texture[clipped])).mean()
    assert offset == pytest.approx(spread, abs=3e-3) and gain == pytest.approx(offset, abs=0.02)


def test_the_channel_breakdown_groups_pixels_by_channels_lost_and_adds_up():
    ldr, naive, clipped = half_clipped_photo(8, seed=3)
    true = naive.copy()
    true[clipped] = [1.5, 0.8, 0.8]                 # clipped in red only ...
    true[clipped & (np.arange(8)[None, :] >= 4)] = [1.5, 1.5, 0.8]    # ... red and green ...
    true[clipped & (np.arange(8)[None, :] >= 6)] = [3.0, 3.0, 3.0]    # ... all three
    pred = np.where(clipped[..., None], 1.2, naive)
    rows = channel_breakdown(pred, ldr, true, clipped)
    assert rows[:, 0] == pytest.approx([0.5, 0.25, 0.25])
    errors, _ = gain_errors(pred, ldr, true, clipped, gains=(1.0, 0.0))
    assert rows[:, 1].sum() == pytest.approx(errors[0]) and rows[:, 2].sum() == pytest.approx(errors[1])
    assert rows[2, 2] > rows[2, 1] > 0           # all three clipped: the lift helps, the naive inverse is further off


def test_gain_one_is_evaluates_highlight_error(hdr_dir, tmp_path, capsys):
    assert main(["--model", DEFAULT_MODEL, "--data", str(hdr_dir), "--max-width", "128", "--gains", "0.5,1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    row = lines[next(i for i, line in enumerate(lines) if line.startswith("| g=")) + 2]
    cells = [float(c) for c in row.strip("|").split("|")]
    at_one, naive, oracle_offset, oracle_gain = cells[1], cells[2], cells[4], cells[5]
    assert oracle_offset <= at_one and oracle_gain <= at_one      # an oracle never does worse than the model
    report = tmp_path / "eval.json"
    assert evaluate.main(["--model", DEFAULT_MODEL, "--data", str(hdr_dir), "--max-width", "128", "--no-light",
                          "--quiet", "--json", str(report)]) == 0
    scored = json.loads(report.read_text())["averages"]["all"]
    assert at_one == pytest.approx(scored["model"]["highlight_stops"], abs=1.5e-3)   # the table prints 3 decimals
    assert naive == pytest.approx(scored["naive_inverse"]["highlight_stops"], abs=1.5e-3)


def test_excluding_everything_is_one_line_and_exit_2(hdr_dir, tmp_path, capsys):
    names = tmp_path / "all.txt"
    names.write_text("\n".join(p.name for p in hdr_dir.iterdir()))
    assert main(["--model", DEFAULT_MODEL, "--data", str(hdr_dir), "--exclude", str(names)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
