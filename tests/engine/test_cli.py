"""The hdrcnf command: exit codes, one-line errors, batches, resume, info, Ctrl-C."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.bundle import load_bundle
from engine.cli import main
from engine.io import read_exr

from .conftest import make_photo, real_bundle_available, save_jpeg, save_png
from .synthetic_bundle import make_broken_bundle
from .test_io import _bomb_png

REPO = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv) -> tuple[int, list[str], list[str]]:
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out.splitlines(), cap.err.splitlines()


def snapshot(paths) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths if p.is_file()}


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def good_jpg(tmp_path):
    return save_jpeg(tmp_path / "good.jpg", make_photo(48, 64))


def _bad_case(name: str, tmp: Path, good: Path, model: Path):
    """(argv, inputs that must stay unchanged, output that must not appear, stderr needle)."""
    out = tmp / "out.exr"
    if name == "missing input":
        return ["convert", tmp / "nope.jpg", "-o", out], [], out, "no such file"
    if name == "empty file":
        (tmp / "empty.jpg").write_bytes(b"")
        return ["convert", tmp / "empty.jpg", "-o", out], [tmp / "empty.jpg"], out, "empty"
    if name == "truncated":
        data = good.read_bytes()
        (tmp / "trunc.jpg").write_bytes(data[: len(data) // 2])
        return ["convert", tmp / "trunc.jpg", "-o", out], [tmp / "trunc.jpg"], out, "truncated"
    if name == "not an image":
        (tmp / "notes.jpg").write_text("shopping list\n")
        return ["convert", tmp / "notes.jpg", "-o", out], [tmp / "notes.jpg"], out, "not an image"
    if name == "1x1":
        save_png(tmp / "dot.png", np.zeros((1, 1, 3), np.uint8))
        return ["convert", tmp / "dot.png", "-o", out], [tmp / "dot.png"], out, "1x1"
    if name == "decompression bomb":
        _bomb_png(tmp / "bomb.png", 20000, 20000)
        return ["convert", tmp / "bomb.png", "-o", out], [tmp / "bomb.png"], out, "decompression bomb"
    if name == "output overwrites input":
        disguised = tmp / "photo.exr"  # a JPEG with an .exr name: converting it onto itself
        disguised.write_bytes(good.read_bytes())
        return ["convert", disguised, "-o", disguised], [disguised], None, "overwrite an input"
    if name == "output not exr":
        return ["convert", good, "-o", tmp / "out.png"], [good], tmp / "out.png", ".exr"
    if name == "negative temperature":
        return ["convert", good, "-o", out, "--temperature", "-0.5"], [good], out, "temperature"
    if name == "unknown backend":
        return ["convert", good, "-o", out, "--backend", "cuda"], [good], out, "backend"
    if name == "samples < 1":
        return ["convert", good, "-o", out, "--samples", "0"], [good], out, "samples"
    if name == "uncertainty with 1 sample":
        return ["convert", good, "-o", out, "--uncertainty", "--samples", "1"], [good], out, "uncertainty"
    if name == "tile too small":
        return ["convert", good, "-o", out, "--tile", "8"], [good], out, "tile"
    if name == "corrupt bundle":
        (model / "model.json").write_text("{ not json")
        return ["convert", good, "-o", out, "--model", model], [good], out, "model.json"
    if name == "mismatched bundle":
        with open(model / "model.onnx", "ab") as f:
            f.write(b"tampered")
        return ["convert", good, "-o", out, "--model", model], [good], out, "sha256"
    if name == "missing bundle":
        return ["convert", good, "-o", out, "--model", tmp / "no-model"], [good], out, "not found"
    if name == "corrupt png":  # a flipped bit in the pixel stream, which only decoding the pixels finds
        save_png(tmp / "flip.png", make_photo(64, 64))
        data = bytearray((tmp / "flip.png").read_bytes())
        data[data.index(b"IDAT") + 200] ^= 0xFF
        (tmp / "flip.png").write_bytes(bytes(data))
        return ["convert", tmp / "flip.png", "-o", out], [tmp / "flip.png"], out, "corrupt image data"
    if name == "exposure out of range":
        return ["convert", good, "-o", out, "--exposure", "127"], [good], out, "exposure"
    if name == "temperature out of range":
        return ["convert", good, "-o", out, "--temperature", "1e300"], [good], out, "temperature"
    if name == "empty output":
        return ["convert", good, "-o", ""], [good], None, "output path (-o) is empty"
    if name == "output is a folder":
        (tmp / "in").mkdir()
        (tmp / "in" / "a.jpg").write_bytes(good.read_bytes())
        (tmp / "res" / "a.exr").mkdir(parents=True)          # a folder where a.exr would go
        return ["convert", tmp / "in", "-o", tmp / "res"], [tmp / "in" / "a.jpg"], None, "output is a folder"
    if name == "tensorrt here":
        return ["convert", good, "-o", out, "--backend", "tensorrt"], [good], out, "tensorrt backend unavailable"
    raise AssertionError(name)


BAD_CASES = ["missing input", "empty file", "truncated", "not an image", "1x1", "decompression bomb",
             "output overwrites input", "output not exr", "negative temperature", "unknown backend",
             "samples < 1", "uncertainty with 1 sample", "tile too small", "corrupt bundle",
             "mismatched bundle", "missing bundle", "tensorrt here", "corrupt png", "exposure out of range",
             "temperature out of range", "empty output", "output is a folder"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exit_2_one_line(case, tmp_path, capsys, synthetic_bundle):
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    good = save_jpeg(work / "good.jpg", make_photo(48, 64))
    model = tmp_path / "model"
    shutil.copytree(synthetic_bundle.path, model)
    argv, inputs, out, needle = _bad_case(case, work, good, model)
    if "--model" not in argv:
        argv += ["--model", model]
    before = snapshot(inputs)
    before_tree = tree(work)
    rc, stdout, stderr = run_cli(capsys, *argv)
    if case == "tensorrt here" and rc == 0:
        pytest.skip("TensorRT is available on this machine")
    assert rc == 2, (stdout, stderr)
    assert len(stderr) == 1, stderr
    assert needle in stderr[0], stderr[0]
    assert "Traceback" not in "".join(stdout + stderr)
    if out is not None:
        assert not out.exists()
    assert tree(work) == before_tree  # nothing left behind, no temp files
    assert snapshot(inputs) == before  # inputs unchanged, byte for byte and mtime


def test_convert_single_file(tmp_path, capsys, model_bundle, good_jpg):
    out = tmp_path / "res" / "good.exr"
    rc, stdout, stderr = run_cli(capsys, "convert", good_jpg, "-o", out, "--model", model_bundle.path, "--seed", 3)
    assert rc == 0, stderr
    assert stderr == []
    assert re.fullmatch(rf"{re.escape(str(out))}: peak (\+\d+\.\d stops above|\d+\.\d stops below) clip", stdout[0]), stdout
    assert re.fullmatch(r"converted 1, skipped 0, failed 0 in \d+\.\ds", stdout[-1]), stdout
    rgb = read_exr(out)
    assert rgb.shape == (48, 64, 3) and np.isfinite(rgb).all()


def test_mixed_batch_converts_the_good_ones(tmp_path, capsys, model_bundle):
    src = tmp_path / "photos"
    src.mkdir()
    save_jpeg(src / "a.jpg", make_photo(48, 64, seed=1))
    save_png(src / "b.png", make_photo(40, 56, seed=2))
    data = (src / "a.jpg").read_bytes()
    (src / "c.jpg").write_bytes(data[: len(data) // 3])
    save_png(src / "d.png", np.zeros((1, 1, 3), np.uint8))
    (src / "readme.txt").write_text("not picked up: wrong extension")
    before = snapshot(src.iterdir())
    out = tmp_path / "hdr"
    rc, stdout, stderr = run_cli(capsys, "convert", src, "-o", out, "--model", model_bundle.path, "--float")
    assert rc == 2
    assert len(stderr) == 2 and "c.jpg" in stderr[0] and "d.png" in stderr[1]
    assert sorted(p.name for p in out.iterdir()) == ["a.exr", "b.exr"]
    assert stdout[-1].startswith("converted 2, skipped 0, failed 2 in ")
    assert snapshot(src.iterdir()) == before


def test_skip_existing_and_overwrite(tmp_path, capsys, synthetic_bundle, good_jpg):
    out = tmp_path / "o"
    args = ["convert", good_jpg, tmp_path / "good.jpg", "-o", out, "--model", synthetic_bundle.path]
    rc, stdout, _ = run_cli(capsys, *args)
    assert rc == 0 and stdout[-1].startswith("converted 1, skipped 0, failed 0")  # duplicate input ignored
    mtime = (out / "good.exr").stat().st_mtime_ns
    time.sleep(0.01)
    rc, stdout, _ = run_cli(capsys, *args)
    assert rc == 0 and stdout == [stdout[-1]] and stdout[-1].startswith("converted 0, skipped 1, failed 0")
    assert (out / "good.exr").stat().st_mtime_ns == mtime
    rc, stdout, _ = run_cli(capsys, *args, "--overwrite")
    assert rc == 0 and stdout[-1].startswith("converted 1, skipped 0, failed 0")
    assert (out / "good.exr").stat().st_mtime_ns != mtime


def test_same_stem_collision(tmp_path, capsys, synthetic_bundle):
    a = save_jpeg(tmp_path / "x.jpg", make_photo(32, 32))
    b = save_png(tmp_path / "x.png", make_photo(32, 32, seed=1))
    rc, stdout, stderr = run_cli(capsys, "convert", a, b, "-o", tmp_path / "o", "--model", synthetic_bundle.path)
    assert rc == 2 and len(stderr) == 1 and "x.png" in stderr[0] and "already the output" in stderr[0]
    assert (tmp_path / "o" / "x.exr").is_file()


def test_uncertainty_channel_and_options(tmp_path, capsys, synthetic_bundle, good_jpg):
    out = tmp_path / "u.exr"
    rc, stdout, stderr = run_cli(capsys, "convert", good_jpg, "-o", out, "--model", synthetic_bundle.path,
                                 "--uncertainty", "--exposure", "-1", "--compression", "dwaa", "--threads", "1",
                                 "--panorama", "off", "--precision", "fp32", "--backend", "onnxruntime")
    assert rc == 0, stderr
    rgb, extra = read_exr(out, channels=True)
    assert "uncertainty" in extra and extra["uncertainty"].shape == (48, 64)


def test_internal_error_exit_1(tmp_path, capsys, good_jpg):
    broken = make_broken_bundle(tmp_path / "broken")
    rc, stdout, stderr = run_cli(capsys, "convert", good_jpg, "-o", tmp_path / "x.exr", "--model", broken.path)
    assert rc == 1 and len(stderr) == 1 and "internal error" in stderr[0]
    assert not (tmp_path / "x.exr").exists()
    rc, _, stderr = run_cli(capsys, "convert", good_jpg, "-o", tmp_path / "x.exr", "--model", broken.path, "--debug")
    assert rc == 1 and any("Traceback" in line for line in stderr)


def test_info(capsys, model_bundle):
    rc, stdout, stderr = run_cli(capsys, "info", "--model", model_bundle.path)
    assert rc == 0 and stderr == []
    text = "\n".join(stdout)
    assert model_bundle.name in text and model_bundle.sha256 in text
    assert "onnxruntime" in text and "tensorrt" in text and "training data" in text and "scores" in text


def test_info_default_model(capsys):
    rc, stdout, stderr = run_cli(capsys, "info")
    if real_bundle_available():
        assert rc == 0 and load_bundle().name in "\n".join(stdout)
        lines = {line.split(":")[0]: line for line in stdout}  # one readable line each, not a dump
        assert re.search(r"training data: [\d,]+ steps, \d+ images, last validation NLL", lines["training data"])
        assert "highlight error" in lines["scores"] and "(naive inverse: PU21" in lines["scores"]
        flows = "two, one per kind of input: photos photo.onnx" if load_bundle().photo else "one (model.onnx)"
        assert lines["flows"].startswith(f"flows: {flows}"), lines["flows"]
    else:
        assert rc == 2 and len(stderr) == 1 and "--model" in stderr[0]


def test_usage_errors_are_one_line(capsys):
    for argv in (["frobnicate"], [], ["convert", "x.jpg"], ["convert", "x.jpg", "-o", "y.exr", "--seed", "abc"],
                 ["convert", "x.jpg", "-o", "y.exr", "--half", "--float"]):
        rc, stdout, stderr = run_cli(capsys, *argv)
        assert rc == 2 and len(stderr) == 1, (argv, stderr)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "engine", "--version"], capture_output=True, text=True,
                       cwd=tmp_path, env=_env(), timeout=60)
    assert r.returncode == 0 and "hdrcnf 0.1.0" in r.stdout


def _wait_until_busy(pid: int, cpu_seconds: float, limit: float = 60.0) -> None:
    """Wait until the child has used `cpu_seconds` of CPU, i.e. it is past its imports and
    converting, so the SIGINT lands inside main() and not in the interpreter's start-up."""
    import psutil

    proc = psutil.Process(pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        t = proc.cpu_times()
        if t.user + t.system >= cpu_seconds:
            return
        time.sleep(0.05)
    raise AssertionError("the conversion never got busy")


def test_ctrl_c_exits_130_without_temp_files(tmp_path, synthetic_bundle):
    """SIGINT in the middle of a batch: exit 130, one line, no partial or temporary outputs."""
    src = tmp_path / "in"
    src.mkdir()
    save_png(src / "big.png", make_photo(768, 1536, seed=5))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "engine", "convert", str(src), "-o", str(out), "--model",
           str(synthetic_bundle.path), "--tile", "24", "--samples", "3", "--threads", "1"]
    # A suite started as a background job (`make test &`) inherits SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored; give the child the default disposition a terminal's Ctrl-C meets.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env(),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_until_busy(p.pid, cpu_seconds=1.0)  # start-up takes ~0.3 s of CPU; the whole run ~19 s
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, stdout, stderr)
    assert stderr.strip().splitlines() == ["hdrcnf: error: interrupted"]
    assert not out.exists() or list(out.iterdir()) == []


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder this process cannot create files in: a read-only folder, or, for root (which
    ignores permissions), /proc, where the kernel refuses new files to everyone."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        yield ro
        ro.chmod(0o700)
    elif Path("/proc/self").is_dir():
        yield Path("/proc")
    else:
        pytest.skip("running as root on a system without procfs: no folder refuses root's writes")


def test_unwritable_output_is_exit_2(unwritable_dir, capsys, synthetic_bundle, good_jpg):
    dst = unwritable_dir / "x.exr"
    rc, _, stderr = run_cli(capsys, "convert", good_jpg, "-o", dst, "--model", synthetic_bundle.path)
    assert rc == 2 and len(stderr) == 1 and "cannot write" in stderr[0]
    assert not dst.exists()


def test_output_is_existing_file_for_batch(tmp_path, capsys, synthetic_bundle, good_jpg):
    (tmp_path / "afile").write_text("x")
    rc, _, stderr = run_cli(capsys, "convert", good_jpg, good_jpg, "-o", tmp_path / "afile",
                            "--model", synthetic_bundle.path)
    assert rc == 2 and len(stderr) == 1 and "folder" in stderr[0]


def test_output_under_a_file_is_exit_2(tmp_path, capsys, synthetic_bundle, good_jpg):
    (tmp_path / "afile").write_text("x")
    rc, _, stderr = run_cli(capsys, "convert", good_jpg, "-o", tmp_path / "afile" / "x.exr",
                            "--model", synthetic_bundle.path)
    assert rc == 2 and len(stderr) == 1 and "afile: is a file, so the output cannot go inside it" in stderr[0], stderr
    assert (tmp_path / "afile").read_text() == "x"


def test_an_inaccessible_path_fails_alone(tmp_path, capsys, synthetic_bundle, good_jpg):
    """A path the OS refuses to look at (here a name longer than the file system allows: pathlib's
    exists() raises there, as it does under a folder without search permission) is one line and
    exit 2 for that input; the others are still converted. As the output, it stops the batch."""
    unreachable = tmp_path / ("x" * 300) / "a.jpg"
    out = tmp_path / "out"
    rc, stdout, stderr = run_cli(capsys, "convert", good_jpg, unreachable, "-o", out, "--model", synthetic_bundle.path)
    assert rc == 2 and (out / "good.exr").is_file(), (stdout, stderr)
    assert len(stderr) == 1 and "cannot access" in stderr[0] and "Traceback" not in stderr[0]
    rc, _, stderr = run_cli(capsys, "convert", good_jpg, "-o", tmp_path / ("y" * 300) / "x.exr",
                            "--model", synthetic_bundle.path)
    assert rc == 2 and len(stderr) == 1 and "cannot access" in stderr[0]


def test_a_full_disk_is_exit_2_without_leftovers(tmp_path, synthetic_bundle, good_jpg):
    """A write the OS refuses midway (here the file size limit, RLIMIT_FSIZE, which any user may
    lower: the same failure path as a full disk, which OpenEXR reports as a RuntimeError) is one
    line naming the output, exit 2, and no partial or temporary file."""
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)    # fail the write with EFBIG, not kill us
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([sys.executable, "-m", "engine", "convert", str(good_jpg), "-o", str(out / "x.exr"),
                        "--model", str(synthetic_bundle.path), "--float"], capture_output=True, text=True,
                       cwd=tmp_path, env=_env(), preexec_fn=small_files, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "x.exr: cannot write output: File too large" in lines[0], lines
    assert list(out.iterdir()) == []


def test_no_onnxruntime_telemetry_warning_on_a_read_only_home(tmp_path, good_jpg):
    """onnxruntime writes a telemetry identifier under $HOME when imported and prints a coloured
    warning where it cannot (a farm node's read-only home); the engine turns that telemetry off."""
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    env = {**_env(), "HOME": str(home)}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    r = subprocess.run([sys.executable, "-m", "engine", "convert", str(good_jpg), "-o", str(tmp_path / "x.exr")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_no_light_flag(tmp_path, capsys, synthetic_bundle):
    import OpenEXR

    from engine.bundle import write_bundle

    from .test_light import constant_head, sun_scene

    lit = write_bundle(tmp_path / "lit", synthetic_bundle.onnx_path,
                       {**synthetic_bundle.meta, "light": constant_head(3.0).to_meta()})
    src = save_png(tmp_path / "pano.png", sun_scene(64, 128)[0])
    rc, stdout, stderr = run_cli(capsys, "convert", src, "-o", tmp_path / "a.exr", "--model", lit.path)
    assert rc == 0, stderr
    assert "clipped light raised 3.0 stops" in stdout[0]
    rc, stdout, stderr = run_cli(capsys, "convert", src, "-o", tmp_path / "b.exr", "--model", lit.path, "--no-light")
    assert rc == 0, stderr
    assert "clipped light" not in stdout[0]
    assert OpenEXR.File(str(tmp_path / "a.exr")).header()["hdrcnf_light_stops"] == "3.000"
    assert "hdrcnf_light_stops" not in OpenEXR.File(str(tmp_path / "b.exr")).header()
    assert read_exr(tmp_path / "a.exr").sum() > read_exr(tmp_path / "b.exr").sum()
    rc, stdout, _ = run_cli(capsys, "info", "--model", lit.path)
    assert rc == 0 and any(line.startswith("light stage: fitted on") for line in stdout)
