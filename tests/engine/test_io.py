"""Round trips and failure modes of engine.io on real files."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import OpenEXR
import png
import pytest
import tifffile
from PIL import Image, ImageOps

from engine import io
from engine.errors import InputError

from .conftest import make_photo, save_jpeg, save_png


def _hwc_noncontiguous(rng, h, w):
    """What a model output looks like: a CHW array permuted to HWC (a strided view)."""
    chw = np.ascontiguousarray(rng.random((3, h, w), dtype=np.float32) * 8)
    view = chw.transpose(1, 2, 0)
    assert not view.flags["C_CONTIGUOUS"]
    return view


# ------------------------------------------------------------------------------------ EXR


def test_exr_float_roundtrip_exact(tmp_path):
    rgb = np.random.default_rng(1).random((17, 23, 3), dtype=np.float32) * 100
    io.write_exr(tmp_path / "a.exr", rgb, half=False)
    back = io.read_hdr(tmp_path / "a.exr")
    assert back.dtype == np.float32 and back.shape == rgb.shape
    np.testing.assert_array_equal(back, rgb)


def test_exr_half_roundtrip_and_clamp(tmp_path):
    rgb = np.random.default_rng(2).random((16, 20, 3), dtype=np.float32) * 50
    rgb[0, 0] = 1e6  # beyond half range: must stay finite
    io.write_exr(tmp_path / "h.exr", rgb, half=True)
    f = OpenEXR.File(str(tmp_path / "h.exr"), separate_channels=True)
    assert f.channels()["R"].pixels.dtype == np.float16
    back = io.read_hdr(tmp_path / "h.exr")
    assert np.isfinite(back).all()
    assert back[0, 0, 0] == 65504.0
    np.testing.assert_allclose(back[1:], rgb[1:], rtol=1e-3)


def test_exr_noncontiguous_input_roundtrip(tmp_path):
    """The OpenEXR bindings write strided arrays silently wrong; write_exr must not."""
    rgb = _hwc_noncontiguous(np.random.default_rng(3), 19, 31)
    unc = rgb[..., 1].T.copy().T  # also a non-contiguous single channel
    assert not unc.flags["C_CONTIGUOUS"]
    io.write_exr(tmp_path / "nc.exr", rgb, half=False, extra_channels={"uncertainty": unc})
    back, extra = io.read_exr(tmp_path / "nc.exr", channels=True)
    np.testing.assert_array_equal(back, np.ascontiguousarray(rgb))
    np.testing.assert_array_equal(extra["uncertainty"], np.ascontiguousarray(unc))


@pytest.mark.parametrize("compression", ["zip", "dwaa"])
def test_exr_compression_and_extra_channel(tmp_path, compression):
    rng = np.random.default_rng(4)
    rgb = rng.random((32, 48, 3), dtype=np.float32) * 4
    unc = rng.random((32, 48), dtype=np.float32)
    io.write_exr(tmp_path / "c.exr", rgb, compression=compression, extra_channels={"uncertainty": unc},
                 header={"hdrcnf_seed": "7"})
    f = OpenEXR.File(str(tmp_path / "c.exr"))
    assert f.header()["compression"].name == f"{compression.upper()}_COMPRESSION"
    assert f.header()["hdrcnf_seed"] == "7"
    back, extra = io.read_exr(tmp_path / "c.exr", channels=True)
    tol = 2e-3 if compression == "zip" else 0.05
    np.testing.assert_allclose(back, rgb, rtol=tol, atol=tol)
    np.testing.assert_allclose(extra["uncertainty"], unc, rtol=tol, atol=tol)


def test_exr_bad_compression_name(tmp_path):
    with pytest.raises(InputError, match="compression"):
        io.write_exr(tmp_path / "x.exr", np.zeros((8, 8, 3), np.float32), compression="jpeg")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_removes_temp_on_failure(tmp_path):
    dst = tmp_path / "out.exr"
    dst.write_bytes(b"previous")

    def failing(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half-written")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(dst, failing, suffix=".tmp.exr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.exr"]
    assert dst.read_bytes() == b"previous"

    def failing2(tmp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(tmp_path / "new.exr", failing2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.exr"]


def test_atomic_write_temp_name_and_permissions(tmp_path):
    seen = []
    io.write_exr(tmp_path / "p.exr", np.ones((8, 8, 3), np.float32))
    io.atomic_write(tmp_path / "q.exr", lambda tmp: (seen.append(tmp), open(tmp, "wb").close()), suffix=".tmp.exr")
    name = seen[0].rsplit("/", 1)[-1]
    assert name.startswith(".") and name.endswith(".tmp.exr")
    assert (tmp_path / "p.exr").stat().st_mode & 0o044  # readable by others like a plain open()


# ------------------------------------------------------------------------------- Radiance


def test_rgbe_roundtrip(tmp_path):
    rng = np.random.default_rng(5)
    rgb = (rng.random((9, 13, 3)) * 10 ** rng.uniform(-3, 4, (9, 13, 1))).astype(np.float32)
    rgb[0, 0] = 0
    io.write_rgbe(tmp_path / "a.hdr", rgb)
    back = io.read_hdr(tmp_path / "a.hdr")
    assert back.shape == rgb.shape
    # RGBE shares one exponent per pixel: precision is relative to the pixel's largest channel.
    err = np.abs(back - rgb) / np.maximum(rgb.max(axis=2, keepdims=True), 1e-30)
    assert err[1:].max() < 0.01
    assert back[0, 0].max() == 0


def test_rgbe_rle_scanlines(tmp_path):
    """Decode new-style run-length-encoded scanlines written by hand (as Radiance tools do)."""
    w, h = 16, 2
    pixels = np.zeros((h, w, 4), np.uint8)
    pixels[..., :3] = 128
    pixels[..., 3] = 129  # value (128 + .5) / 256 * 2 = ~1.0
    pixels[1, :5, 0] = [10, 20, 30, 40, 50]
    body = b""
    for y in range(h):
        body += bytes([2, 2, w >> 8, w & 255])
        for c in range(4):
            row = pixels[y, :, c]
            if c == 0 and y == 1:
                body += bytes([5]) + bytes(row[:5]) + bytes([128 + 11, row[5]])
            else:
                body += bytes([128 + w, row[0]])
    (tmp_path / "rle.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 16\n" + body)
    back = io.read_hdr(tmp_path / "rle.hdr")
    np.testing.assert_allclose(back[0], (128.5 / 256) * 2, rtol=1e-6)
    np.testing.assert_allclose(back[1, :5, 0], (np.array([10, 20, 30, 40, 50]) + 0.5) / 128, rtol=1e-6)


def test_read_hdr_errors(tmp_path):
    (tmp_path / "bad.hdr").write_bytes(b"not radiance")
    with pytest.raises(InputError, match="bad.hdr"):
        io.read_hdr(tmp_path / "bad.hdr")
    (tmp_path / "bad.exr").write_bytes(b"not exr at all")
    with pytest.raises(InputError, match="bad.exr"):
        io.read_hdr(tmp_path / "bad.exr")
    with pytest.raises(InputError, match="no such file"):
        io.read_hdr(tmp_path / "missing.exr")


# ------------------------------------------------------------------------------------ LDR


def test_read_png8_and_jpeg(tmp_path):
    img = make_photo(24, 40)
    a = io.read_ldr(save_png(tmp_path / "a.png", img))
    assert a.dtype == np.float32 and a.shape == (24, 40, 3)
    np.testing.assert_array_equal(a, img.astype(np.float32) / 255)
    j = io.read_ldr(save_jpeg(tmp_path / "a.jpg", img))
    assert j.shape == (24, 40, 3) and np.abs(j - a).mean() < 0.02


def test_read_png16_rgb_keeps_16_bits(tmp_path):
    rng = np.random.default_rng(6)
    a = rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    png.from_array(a.reshape(10, 36), "RGB;16").save(str(tmp_path / "rgb16.png"))
    back = io.read_ldr(tmp_path / "rgb16.png")
    np.testing.assert_array_equal(back, a.astype(np.float32) / 65535)
    assert len(np.unique(back)) > 256  # not truncated to 8 bits (what Pillow would do)


def test_read_png16_gray_and_rgba(tmp_path):
    rng = np.random.default_rng(7)
    g = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    Image.fromarray(g).save(tmp_path / "g16.png")
    back = io.read_ldr(tmp_path / "g16.png")
    np.testing.assert_array_equal(back, np.repeat(g[..., None], 3, 2).astype(np.float32) / 65535)
    rgba = rng.integers(0, 65536, (9, 11, 4), dtype=np.uint16)
    png.from_array(rgba.reshape(9, 44), "RGBA;16").save(str(tmp_path / "rgba16.png"))
    np.testing.assert_array_equal(io.read_ldr(tmp_path / "rgba16.png"), rgba[..., :3].astype(np.float32) / 65535)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_read_tiff16_rgb(tmp_path, compression):
    a = np.random.default_rng(8).integers(0, 65536, (10, 14, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", a, photometric="rgb", compression=compression)
    np.testing.assert_array_equal(io.read_ldr(tmp_path / "a.tif"), a.astype(np.float32) / 65535)
    raw = io.read_ldr_raw(tmp_path / "a.tif")
    assert raw.dtype == np.uint16


def test_read_tiff8_lzw_and_gray16(tmp_path):
    img = make_photo(16, 16)
    Image.fromarray(img).save(tmp_path / "l.tiff", compression="tiff_lzw")
    np.testing.assert_array_equal(io.read_ldr(tmp_path / "l.tiff"), img.astype(np.float32) / 255)
    g = np.random.default_rng(9).integers(0, 65536, (12, 10), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "g.tif", g)
    np.testing.assert_array_equal(io.read_ldr(tmp_path / "g.tif")[..., 1], g.astype(np.float32) / 65535)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_tiff_orientation_applied_once_at_8_and_16_bits(tmp_path, orientation):
    """Newer Pillow turns a TIFF itself while loading; the 16-bit path (tifffile) does not. Both
    must come out as the orientation tag says, exactly once (apply_orientation is checked against
    Pillow's exif_transpose in test_exif_orientation_matches_pil)."""
    a16 = np.random.default_rng(orientation).integers(0, 65536, (12, 20, 3), dtype=np.uint16)
    a8 = (a16 >> 8).astype(np.uint8)
    tifffile.imwrite(tmp_path / "r8.tif", a8, extratags=[(274, "H", 1, orientation, True)])
    tifffile.imwrite(tmp_path / "r16.tif", a16, extratags=[(274, "H", 1, orientation, True)])
    expected_shape = (20, 12, 3) if orientation in (6, 8) else (12, 20, 3)
    got8, got16 = io.read_ldr_raw(tmp_path / "r8.tif"), io.read_ldr_raw(tmp_path / "r16.tif")
    assert got8.shape == got16.shape == expected_shape
    np.testing.assert_array_equal(got8, io.apply_orientation(a8, orientation))
    np.testing.assert_array_equal(got16, io.apply_orientation(a16, orientation))


def test_tiffs_pillow_cannot_hold_are_read_by_tifffile(tmp_path):
    """Float and 32-bit samples, 16-bit gray with alpha, 16-bit CMYK (converted as Pillow converts
    8-bit CMYK photos); colour spaces it cannot convert are named in one line."""
    rng = np.random.default_rng(10)
    f = rng.random((12, 16, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f)
    np.testing.assert_array_equal(io.read_ldr(tmp_path / "f.tif"), f)
    u = rng.integers(0, 2**32, (12, 16, 3), dtype=np.uint32)
    tifffile.imwrite(tmp_path / "u.tif", u)
    np.testing.assert_allclose(io.read_ldr(tmp_path / "u.tif"), u / (2**32 - 1), rtol=1e-6)
    ga = rng.integers(0, 65536, (12, 16, 2), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "ga.tif", ga, photometric="minisblack", extrasamples=[2])
    np.testing.assert_array_equal(io.read_ldr_raw(tmp_path / "ga.tif"), np.repeat(ga[..., :1], 3, axis=2))
    cmyk = rng.integers(0, 65536, (12, 16, 4), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "cmyk.tif", cmyk, photometric="separated")
    ink = cmyk[..., :3].astype(np.int64) + cmyk[..., 3:]
    np.testing.assert_array_equal(io.read_ldr_raw(tmp_path / "cmyk.tif"), 65535 - np.minimum(ink, 65535))
    tifffile.imwrite(tmp_path / "ycc.tif", rng.integers(0, 65536, (12, 16, 3), dtype=np.uint16),
                     photometric="ycbcr", subsampling=(1, 1))
    with pytest.raises(io.InputError, match="unsupported TIFF colour space YCbCr"):
        io.read_ldr_raw(tmp_path / "ycc.tif")
    tifffile.imwrite(tmp_path / "thin.tif", rng.random((4, 16, 3)).astype(np.float32), photometric="rgb")
    with pytest.raises(io.InputError, match="smaller than the 8x8 minimum"):
        io.read_ldr_raw(tmp_path / "thin.tif")


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_read_modes_become_rgb(tmp_path, mode):
    img = Image.fromarray(make_photo(20, 30)).convert(mode)
    ext = "jpg" if mode == "CMYK" else "png"
    img.save(tmp_path / f"m.{ext}")
    out = io.read_ldr(tmp_path / f"m.{ext}")
    assert out.shape == (20, 30, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    if mode != "CMYK":
        expected = np.asarray(Image.open(tmp_path / f"m.{ext}").convert("RGB"), np.float32) / 255
        np.testing.assert_array_equal(out, expected)


def test_rgba_alpha_dropped(tmp_path):
    rgb = make_photo(10, 10)
    rgba = np.dstack([rgb, np.zeros((10, 10), np.uint8)])  # fully transparent: colour must survive
    save_png(tmp_path / "t.png", rgba)
    np.testing.assert_array_equal(io.read_ldr(tmp_path / "t.png"), rgb.astype(np.float32) / 255)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil(tmp_path, orientation):
    img = make_photo(12, 20)
    img[0, 0] = [255, 0, 0]  # mark a corner so a wrong flip shows
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img).save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"), np.float32) / 255
    out = io.read_ldr(tmp_path / "o.png")
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


def test_exif_orientation_jpeg(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW: a landscape file shows as portrait
    save_jpeg(tmp_path / "r.jpg", make_photo(16, 40), exif=exif)
    assert io.read_ldr(tmp_path / "r.jpg").shape == (40, 16, 3)


def _bomb_png(path, width, height):
    """A valid 8x8 PNG whose header claims width x height pixels."""
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_ldr_errors_are_one_line_input_errors(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "nope.jpg", "no such file")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.jpg", "empty")
    full = save_jpeg(tmp_path / "full.jpg", make_photo(64, 64)).read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(full[: len(full) // 2])
    cases["truncated"] = (tmp_path / "trunc.jpg", "truncated")
    (tmp_path / "text.jpg").write_text("hello, I am not a picture\n")
    cases["not image"] = (tmp_path / "text.jpg", "not an image")
    save_png(tmp_path / "one.png", np.zeros((1, 1, 3), np.uint8))
    cases["1x1"] = (tmp_path / "one.png", "1x1")
    cases["bomb"] = (_bomb_png(tmp_path / "bomb.png", 20000, 20000), "decompression bomb")
    cases["folder"] = (tmp_path, "folder")
    for name, (path, needle) in cases.items():
        with pytest.raises(InputError) as e:
            io.read_ldr(path)
        msg = str(e.value)
        assert "\n" not in msg, name
        assert str(path) in msg, name
        assert needle in msg, (name, msg)


def test_truncated_png(tmp_path):
    data = save_png(tmp_path / "ok.png", make_photo(64, 64)).read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) - 200])
    with pytest.raises(InputError, match="t.png"):
        io.read_ldr(tmp_path / "t.png")
    png.from_array(np.zeros((16, 48), np.uint16), "RGB;16").save(str(tmp_path / "ok16.png"))
    d16 = (tmp_path / "ok16.png").read_bytes()
    (tmp_path / "t16.png").write_bytes(d16[: len(d16) - 20])
    with pytest.raises(InputError, match="t16.png"):
        io.read_ldr(tmp_path / "t16.png")


def test_large_but_allowed_header_is_not_a_bomb(tmp_path):
    """A 16384x8192 header (134 Mpx) passes the size checks (decoding then fails: no data)."""
    with pytest.raises(InputError) as e:
        io.read_ldr(_bomb_png(tmp_path / "big.png", 16384, 8192))
    assert "bomb" not in str(e.value)


def test_list_images(tmp_path):
    for n in ["b.JPG", "a.png", "c.tiff", "d.txt", "e.exr"]:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.jpg").write_bytes(b"x")
    assert [p.name for p in io.list_images(tmp_path)] == ["a.png", "b.JPG", "c.tiff"]
