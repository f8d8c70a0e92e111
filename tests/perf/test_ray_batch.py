"""`hdrcnf convert --ray`: the batch as a Ray Data pipeline on a local in-process Ray.

Same outputs (byte for byte), same per-file lines, same exit status and summary as the local
batch, resumable; a GPU-only request on a CPU cluster is a one-line usage error."""
from __future__ import annotations

import re

import numpy as np
import pytest
import ray  # the ray extra, installed by `make test`

from engine.cli import main

from ..engine.conftest import make_photo, save_jpeg, save_png

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture
def plates(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    save_jpeg(src / "a.jpg", make_photo(64, 96, seed=1))
    save_png(src / "b.png", make_photo(80, 160, seed=2))  # 2:1: a panorama, wrapped
    (src / "c.jpg").write_text("not a photo\n")
    return src


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    ours = [ln for ln in cap.err.splitlines() if ln.startswith("hdrcnf:")]
    return rc, cap.out.splitlines(), ours


def _normalise(lines, folder):
    out = [ln.replace(str(folder), "OUT") for ln in lines]
    return sorted(re.sub(r" in [0-9.]+s$", "", ln) for ln in out)


def test_ray_batch_matches_local_batch(local_ray, plates, tmp_path, capsys, model_bundle):
    common = ["--model", model_bundle.path, "--seed", "3", "--samples", "2", "--uncertainty"]
    rc_local, out_local, err_local = _run(capsys, "convert", plates, "-o", tmp_path / "local", *common)
    rc_ray, out_ray, err_ray = _run(capsys, "convert", plates, "-o", tmp_path / "ray", *common, "--ray")
    assert rc_local == rc_ray == 2
    assert _normalise(out_ray, tmp_path / "ray") == _normalise(out_local, tmp_path / "local")
    assert out_ray[-1].startswith("converted 2, skipped 0, failed 1 in ")
    assert err_ray == err_local and len(err_ray) == 1 and "c.jpg: not an image" in err_ray[0]
    for name in ("a.exr", "b.exr"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["a.exr", "b.exr"]  # no temp files

    # resumable: finished outputs are skipped, the bad file is reported again
    mtime = (tmp_path / "ray" / "a.exr").stat().st_mtime_ns
    rc, out, err = _run(capsys, "convert", plates, "-o", tmp_path / "ray", *common, "--ray")
    assert rc == 2 and out[-1].startswith("converted 0, skipped 2, failed 1 in ") and len(err) == 1
    assert (tmp_path / "ray" / "a.exr").stat().st_mtime_ns == mtime


def test_ray_all_good_exit_0(local_ray, plates, tmp_path, capsys, synthetic_bundle):
    (plates / "c.jpg").unlink()
    rc, out, err = _run(capsys, "convert", plates, "-o", tmp_path / "o", "--model", synthetic_bundle.path,
                        "--ray", "--workers", "1", "--threads", "1", "--float")
    assert rc == 0 and not err and out[-1].startswith("converted 2, skipped 0, failed 0")
    from engine.io import read_exr

    assert read_exr(tmp_path / "o" / "a.exr").dtype == np.float32


def test_ray_gpu_request_on_cpu_cluster_is_one_line(local_ray, plates, tmp_path, capsys, synthetic_bundle):
    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray cluster has a GPU")
    rc, out, err = _run(capsys, "convert", plates, "-o", tmp_path / "o", "--model", synthetic_bundle.path,
                        "--ray", "--backend", "tensorrt")
    assert rc == 2 and len(err) == 1
    assert err[-1].startswith("hdrcnf: error: tensorrt backend unavailable: the Ray cluster has no GPU")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
