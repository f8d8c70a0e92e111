"""Extra training images from Debian: archive unpacking, KTX cube maps, the equirect resampling and
the rules that leave a skybox out.

No network here: the tests build a Debian package and a source tarball of the real layouts."""
import hashlib
import io
import lzma
import struct
import tarfile

import numpy as np
import pytest

from engine.io import read_exr, write_exr
from training import debian_data as dd


def pack_float(values: np.ndarray, mantissa_bits: int) -> np.ndarray:
    """Exactly representable non-negative values -> unsigned small-float bits (test-side encoder)."""
    values = np.asarray(values, np.float64)
    exponent = np.floor(np.log2(np.maximum(values, 2.0 ** -14))).astype(np.int64)
    mantissa = np.round((values / 2.0 ** exponent - 1.0) * (1 << mantissa_bits)).astype(np.int64)
    bits = ((exponent + 15) << mantissa_bits) | mantissa
    return np.where(values == 0, 0, bits).astype(np.uint32)


def ktx_cube(faces: list[np.ndarray]) -> bytes:
    size = faces[0].shape[0]
    head = b"\xabKTX 11\xbb\r\n\x1a\n" + struct.pack(
        "<13I", 0x04030201, 0x8C3B, 4, 0x1907, 0x8C3A, 0x1907, size, size, 0, 0, 6, 1, 0)
    body = b""
    for f in faces:
        packed = pack_float(f[..., 0], 6) | (pack_float(f[..., 1], 6) << 11) | (pack_float(f[..., 2], 5) << 22)
        body += struct.pack("<I", size * size * 4) if not body else b""
        body += packed.astype("<u4").tobytes()
    return head + body


def test_small_floats_decode_exactly():
    values = np.array([0.0, 1.0, 0.5, 3.0, 992.0, 64512.0])
    assert np.array_equal(dd.unpack_float(pack_float(values, 5), 5), values)
    assert dd.unpack_float(np.array([(30 << 6) | 63]), 6)[0] == 65024.0   # the 11-bit maximum
    assert np.isinf(dd.unpack_float(np.array([31 << 6]), 6)[0])


def test_ktx_cube_round_trip_and_refusals():
    faces = [np.full((4, 4, 3), v, np.float32) for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)]
    faces[0][1, 2] = (1000.0, 0.5, 3.0)
    back = dd.read_ktx_cube(ktx_cube(faces))
    assert len(back) == 6 and all(np.array_equal(a, b) for a, b in zip(back, faces))
    with pytest.raises(dd.InputError, match="KTX 1"):
        dd.read_ktx_cube(b"not a ktx file at all, but long enough" * 3)


def test_cube_to_equirect_orientation():
    """Sky (+Y) on top, ground (-Y) at the bottom; the panorama's centre looks down the cube's -Z,
    its +90 degrees longitude down +X, its seam down +Z (OpenGL's cube convention)."""
    faces = [np.full((8, 8, 3), v, np.float32) for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)]
    pano = dd.cube_to_equirect(faces, 16, 32)
    assert pano.shape == (16, 32, 3)
    assert np.allclose(pano[0], 3.0) and np.allclose(pano[-1], 4.0)
    row = pano[8, :, 0]
    assert row[16] == 6.0 and row[24] == 1.0 and row[8] == 2.0 and row[0] == 5.0 and row[31] == 5.0


def test_cube_to_equirect_keeps_light():
    """The area average keeps a bright texel's energy: total radiance x solid angle agrees with the
    cube's within the resampling error of a small map."""
    from engine.sphere import equirect_solid_angles
    faces = [np.full((32, 32, 3), 1.0, np.float32) for _ in range(6)]
    pano = dd.cube_to_equirect(faces, 64, 128)
    power = float((pano[..., 0] * equirect_solid_angles(64, 128)[:, None]).sum())
    assert power == pytest.approx(4 * np.pi, rel=1e-3)


def test_skybox_damage_rules():
    good = [np.full((4, 4, 3), 0.5, np.float32) for _ in range(6)]
    good[2][0, 0] = 5000.0
    assert dd.skybox_damage(good) is None
    clamped = [f.copy() for f in good]
    clamped[2][0, 1] = (64512.0, 64512.0, 100.0)
    assert "clamped" in dd.skybox_damage(clamped)
    flat = [np.full((4, 4, 3), 0.5, np.float32) for _ in range(6)]
    flat[2][0, 0] = 3.0
    assert "clipped at capture" in dd.skybox_damage(flat)


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _deb(files: dict[str, bytes]) -> bytes:
    def member(name: str, data: bytes) -> bytes:
        head = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return head + data + (b"\n" if len(data) % 2 else b"")
    data_tar = lzma.compress(_tar(files, "w"))
    return (b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("control.tar.xz", lzma.compress(_tar({}, "w")))
            + member("data.tar.xz", data_tar))


@pytest.fixture
def archives(tmp_path, monkeypatch):
    """A cache folder holding one .deb (an EXR photo and two skyboxes) and one .tar.gz (a photo),
    and SOURCES pointing at them with their true hashes."""
    photo = np.full((16, 24, 3), 0.25, np.float32)
    photo[3, 4] = (-0.01, 2.0, 500.0)                      # a residue negative, and a lamp
    exr = tmp_path / "photo.exr"
    write_exr(exr, photo, half=False)
    sky = [np.full((8, 8, 3), 0.5, np.float32) for _ in range(6)]
    sky[2][2, 2] = 4096.0
    burnt = [f.copy() for f in sky]
    burnt[2][2, 2] = 64512.0
    deb = _deb({"./usr/share/x/Lamp.exr": exr.read_bytes(), "./usr/share/x/sunny_skybox.ktx": ktx_cube(sky),
                "./usr/share/x/burnt_skybox.ktx": ktx_cube(burnt)})
    tgz = _tar({"pkg-1.0/test/room.exr": exr.read_bytes()}, "w:gz")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "x_1.0_all.deb").write_bytes(deb)
    (cache / "pkg_1.0.orig.tar.gz").write_bytes(tgz)
    monkeypatch.setattr(dd, "SOURCES", (
        dd.Source("http://deb.invalid/x_1.0_all.deb", hashlib.sha256(deb).hexdigest(), "BSD",
                  ("./usr/share/x/Lamp.exr", "./usr/share/x/sunny_skybox.ktx", "./usr/share/x/burnt_skybox.ktx")),
        dd.Source("http://deb.invalid/pkg_1.0.orig.tar.gz", hashlib.sha256(tgz).hexdigest(), "MIT",
                  ("pkg-1.0/test/room.exr",)),
    ))
    return cache


def test_cli_writes_images_and_a_manifest(tmp_path, archives, capsys):
    out = tmp_path / "debian"
    assert dd.main(["--out", str(out), "--cache", str(archives)]) == 0
    assert sorted(p.name for p in out.glob("*.exr")) == ["debian_Lamp.exr", "debian_room.exr", "debian_sunny.exr"]
    lamp = read_exr(out / "debian_Lamp.exr")
    assert lamp.min() >= 0.0 and lamp[3, 4, 2] == 500.0
    sunny = read_exr(out / "debian_sunny.exr")
    assert sunny.shape == (256, 512, 3) and sunny.max() > 100.0
    manifest = (out / "MANIFEST.md").read_text()
    assert "debian_room.exr" in manifest and "`burnt_skybox.ktx` (" in manifest and "MIT" in manifest
    assert not list(out.glob(".*"))                        # no temporaries left behind


def test_a_tampered_download_is_exit_2_and_writes_nothing(tmp_path, archives, capsys):
    deb = archives / "x_1.0_all.deb"
    deb.write_bytes(deb.read_bytes()[:-1] + b"\0")
    out = tmp_path / "debian"
    assert dd.main(["--out", str(out), "--cache", str(archives)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "SHA-256" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_member_is_exit_2(tmp_path, archives, monkeypatch, capsys):
    first = dd.SOURCES[0]
    monkeypatch.setattr(dd, "SOURCES", (dd.Source(first.url, first.sha256, first.licence, ("./nope.exr",)),))
    assert dd.main(["--out", str(tmp_path / "o"), "--cache", str(archives)]) == 2
    assert "./nope.exr is not in the archive" in capsys.readouterr().err
