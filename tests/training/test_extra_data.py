"""Extra training panoramas from the npm package: decoding, the ringing repair and what is left out.

No network here: the tests build a package tarball of the same layout from real EXR bytes."""
import base64
import hashlib
import io
import tarfile

import numpy as np
import pytest

from engine.io import read_exr, write_exr
from training import extra_data


def lanczos_ringing_sun(h=32, w=64):
    """A sky with a sun, and the ringing a Lanczos downscale leaves around it: a negative lobe on
    each side, and a hole (~0, as DWAB leaves them) two pixels below the core."""
    img = np.full((h, w, 3), 0.5, np.float32)
    img[10, 20] = 4000.0
    img[10, 18] = -60.0
    img[10, 22] = -60.0
    img[12, 20] = 1e-7
    return img


def test_holes_beside_a_sun_are_filled_and_the_sun_kept():
    img = lanczos_ringing_sun()
    holes = extra_data.ringing_holes(img)
    assert holes[10, 18] and holes[10, 22] and holes[12, 20]
    assert not holes[10, 20] and holes.sum() == 3
    fixed, filled = extra_data.fill_ringing_holes(img)
    assert filled == 3
    assert fixed.min() >= 0.0
    assert fixed[10, 20, 0] == 4000.0                      # the core itself is untouched
    assert fixed[12, 20, 0] == pytest.approx(0.5)          # the holes now hold their neighbours' light
    assert fixed[10, 18, 0] == pytest.approx(0.5)
    untouched = ~holes
    assert np.array_equal(fixed[untouched], np.maximum(img, 0)[untouched])


def test_fill_wraps_across_the_seam():
    img = np.full((8, 16, 3), 1.0, np.float32)
    img[4, 0] = -5.0
    img[4, 15] = 9.0                                       # the neighbour across the seam
    fixed, _ = extra_data.fill_ringing_holes(img)
    assert fixed[4, 0, 0] == pytest.approx((7 * 1.0 + 9.0) / 8)


def test_damage_rules():
    raw = np.full((16, 32, 3), 0.5, np.float32)
    raw[4, 4] = 1000.0
    assert extra_data.damage(raw, raw.copy()) is None
    much_brighter = raw.copy()
    much_brighter[4, 5] = 300.0                            # the fill added ~+80 % of the light
    assert "changes its light" in extra_data.damage(raw, much_brighter)
    blue_sun = raw.copy()
    blue_sun[4, 4] = (0.0, 0.0, 1000.0)                    # DWAB's one-channel sun
    assert "one-channel" in extra_data.damage(blue_sun, blue_sun)


def _package(tmp_path, images: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, img in images.items():
            exr = tmp_path / f"{name}.exr"
            write_exr(exr, img, half=True)
            uri = base64.b64encode(exr.read_bytes()).decode()
            data = f"export default 'data:application/exr;base64,{uri}'\n".encode()
            info = tarfile.TarInfo(f"package/hdri/{name}.exr.js")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        readme = b"# assets\n"
        info = tarfile.TarInfo("package/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return buf.getvalue()


def test_cli_writes_repaired_images_and_a_manifest(tmp_path, monkeypatch, capsys):
    ok = lanczos_ringing_sun()
    damaged = lanczos_ringing_sun()
    damaged[10, 20] = (0.0, 0.0, 4000.0)
    tgz = _package(tmp_path, {"good": ok, "bluesun": damaged, "studio": ok})
    src = tmp_path / "assets.tgz"
    src.write_bytes(tgz)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    monkeypatch.setattr(extra_data, "INTEGRITY", integrity)
    out = tmp_path / "extra"
    assert extra_data.main(["--out", str(out), "--tarball", str(src)]) == 0
    assert sorted(p.name for p in out.glob("*.exr")) == ["pmndrs_good.exr"]
    img = read_exr(out / "pmndrs_good.exr")
    assert img.min() >= 0.0 and img[12, 20, 0] == pytest.approx(0.5, rel=1e-3)
    manifest = (out / "MANIFEST.md").read_text()
    assert "pmndrs_good.exr" in manifest and "`studio`" in manifest and "`bluesun`" in manifest
    assert not list(out.glob(".*"))                        # no decoded temporaries left behind


def test_a_tampered_package_is_exit_2(tmp_path, capsys):
    src = tmp_path / "assets.tgz"
    src.write_bytes(_package(tmp_path, {"good": lanczos_ringing_sun()}))
    out = tmp_path / "extra"
    assert extra_data.main(["--out", str(out), "--tarball", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "integrity" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
