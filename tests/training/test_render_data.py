"""Rendered training scenes: real Cycles renders (tiny and few samples), read back by the loader.

They need bpy, which ``make test`` installs; without it they fail with render_data's own error."""
import subprocess
import sys

import numpy as np
import pytest

from training.data import load_images


def render(out, *args):
    """In a fresh process, as a user runs it: bpy is kept out of the test process."""
    return subprocess.run([sys.executable, "-m", "training.render_data", "--out", str(out), "--width", "128",
                           "--samples", "4", "--threads", "1", *args], capture_output=True, text=True, timeout=300)


def test_rooms_and_yards_render_to_hdr_panoramas_the_loader_reads(tmp_path):
    rooms, yards = tmp_path / "rooms", tmp_path / "yards"
    for out, args in ((rooms, ("--count", "2", "--p-outdoor", "0")), (yards, ("--count", "1", "--p-outdoor", "1"))):
        run = render(out, *args)
        assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in rooms.iterdir()) == ["render_room_0_0000.exr", "render_room_0_0001.exr"]
    assert [p.name for p in yards.iterdir()] == ["render_yard_0_0000.exr"]
    images = load_images([rooms, yards])
    assert len(images) == 3
    for im in images:
        assert im.panorama and im.pixels.shape == (64, 128, 3)
        assert np.isfinite(im.pixels).all() and im.pixels.min() >= 0
        lum = im.pixels.mean(axis=-1)
        # what the scenes are for: lights far above the surfaces they light (a sun, a lamp)
        assert np.log2(lum.max() / np.median(lum)) > 3, im.name


def test_an_interrupted_run_resumes_without_rendering_again(tmp_path):
    assert render(tmp_path, "--count", "1").returncode == 0
    first = (tmp_path / "render_room_0_0000.exr").stat().st_mtime_ns
    run = render(tmp_path, "--count", "2")
    assert run.returncode == 0
    assert "render_room_0_0000" not in run.stdout and "render_room_0_0001.exr" in run.stdout
    assert (tmp_path / "render_room_0_0000.exr").stat().st_mtime_ns == first
    assert not list(tmp_path.glob(".partial_*"))


def test_bad_arguments_are_one_line_errors(tmp_path):
    run = render(tmp_path, "--count", "0")
    assert run.returncode == 2
    assert run.stderr.startswith("error:") and len(run.stderr.strip().splitlines()) == 1
    assert not tmp_path.joinpath("render_room_0_0000.exr").exists()
    a_file = tmp_path / "photo.exr"
    a_file.write_bytes(b"not a folder")
    run = render(a_file, "--count", "1")
    assert run.returncode == 2 and "needs a folder" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert a_file.read_bytes() == b"not a folder"


def test_lens_glare_conserves_light_and_gives_a_lamp_a_glow_that_follows_its_brightness():
    from training.render_data import apply_lens_glare, glare_kernel

    k = glare_kernel(0.02, 2.5, 16)
    assert k.sum() == pytest.approx(1.0) and k[16, 16] == pytest.approx(0.98)
    room = np.full((64, 128, 3), 0.5, np.float32)
    dim, bright = room.copy(), room.copy()
    dim[32, 40] = 2.0 ** 4
    bright[32, 40] = 2.0 ** 12
    out_dim, out_bright = apply_lens_glare(dim, 0.02, 2.5, 16), apply_lens_glare(bright, 0.02, 2.5, 16)
    assert out_bright.sum() == pytest.approx(bright.sum(), rel=1e-4)  # light kept (the lamp is far from the poles)
    assert out_bright[32, 40, 0] == pytest.approx(0.98 * 2.0 ** 12 + 0.5 * 0.02, rel=1e-3)
    glow = out_bright[32, 41:57, 0] - 0.5
    assert (glow > 0).all() and (np.diff(glow) < 0).all()             # falls off with distance
    assert glow[0] / (out_dim[32, 41, 0] - 0.5) == pytest.approx((2.0 ** 12 - 0.5) / (2.0 ** 4 - 0.5), rel=1e-3)
    assert np.allclose(apply_lens_glare(room, 0.02, 2.5, 16), 0.5, atol=1e-5)  # a flat field is unchanged
    wrapped = room.copy()
    wrapped[32, 0] = 2.0 ** 12                                        # a panorama wraps around
    assert apply_lens_glare(wrapped, 0.02, 2.5, 16)[32, -1, 0] == pytest.approx(out_bright[32, 39, 0], rel=1e-4)
