"""Image files in and out: LDR photos (JPEG, PNG 8/16-bit, TIFF 8/16/32-bit and float), HDR (OpenEXR, Radiance).

Why this module is more than `Image.open`:
- Pillow silently truncates 16-bit RGB PNG/TIFF to 8 bits, so those go through pypng / tifffile
  (both pure Python, small enough to vendor into the Blender extension); tifffile also reads the
  TIFFs Pillow cannot open (float and 32-bit samples, 16-bit gray with alpha).
- EXIF orientation must be applied, or portrait photos come out sideways. Newer Pillow applies a
  TIFF's orientation itself while loading, older Pillow does not: both are handled.
- Every failure (missing, empty, truncated, not an image, too small, decompression bomb) becomes
  an `InputError` with one line naming the file, which the CLI prints as-is (exit 2).
- The OpenEXR bindings write non-C-contiguous arrays silently wrong (measured: errors up to 1.0),
  so `write_exr` always hands them `np.ascontiguousarray` copies.
- Writes are atomic: a temporary file in the destination folder, then `os.replace`, and the
  temporary is removed on any exception including KeyboardInterrupt.
"""
from __future__ import annotations

import os
import re
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from .errors import InputError

#: Extensions picked up when a folder is given as input (files named explicitly may have any).
LDR_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
#: Smallest accepted photo side: below this there is nothing to convert (and no stride to pad to).
MIN_SIDE = 8
#: Largest accepted photo (pixels). 16384x8192 panoramas (134 Mpx) pass; Pillow's own
#: decompression-bomb check (2 x Image.MAX_IMAGE_PIXELS, about 179 Mpx by default) may refuse
#: earlier; we never change Pillow's global setting because the add-on shares it with Blender.
MAX_PIXELS = 16384 * 16384

_PIL_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, zlib.error, struct.error, IndexError)


# --------------------------------------------------------------------------------------- LDR


def read_ldr(path) -> np.ndarray:
    """Read a photo as display-encoded float32 RGB in [0, 1], shape (H, W, 3).

    8-bit values are divided by 255, 16-bit by 65535; EXIF orientation is applied; gray, alpha,
    palette and CMYK images become RGB (alpha dropped)."""
    return to_unit_float(read_ldr_raw(path))


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> /255, uint16 -> /65535, float -> clipped to [0, 1]; always float32."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535.0)
    return np.clip(np.nan_to_num(image.astype(np.float32), nan=0.0), 0.0, 1.0)


def read_ldr_raw(path) -> np.ndarray:
    """Read a photo as (H, W, 3) in its storage type (uint8, uint16, or float32 for float TIFFs).

    Keeping the integer type lets the converter hold a huge input at 3-6 bytes per pixel and
    normalise only the tile it is working on."""
    p = Path(path)
    _check_file(p)
    try:  # Pillow only where photos are read: the engine imports (and writes EXRs) without it
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise InputError(f"{p}: reading photos needs the Pillow package (pip install Pillow)") from None
    with warnings.catch_warnings():
        # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; we apply our own limit.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)
        except UnidentifiedImageError:
            if not _is_tiff(p):
                raise InputError(f"{p}: not an image (JPEG, PNG or TIFF expected)") from None
            im = None  # a TIFF Pillow cannot open (float, 32-bit, 16-bit gray + alpha): tifffile reads it
        except Image.DecompressionBombError as e:
            raise InputError(f"{p}: refused as a possible decompression bomb: {e}") from None
        except _PIL_DECODE_ERRORS as e:
            raise InputError(f"{p}: cannot read image: {e}") from None
        if im is None:
            arr, orientation = _decode_tiff(p)
            return np.ascontiguousarray(apply_orientation(arr, orientation))
        with im:
            w, h = im.size
            _check_size(p, w, h)
            tiff_orientation = _tiff_orientation(im.tag_v2) if im.format == "TIFF" else 1
            try:
                if im.format == "PNG" and _png_bit_depth(p) == 16:
                    arr = _decode_png16(p)
                elif im.format == "TIFF" and _tiff_needs_tifffile(im):
                    arr, orientation = _decode_tiff(p)
                    return np.ascontiguousarray(apply_orientation(arr, orientation))
                else:
                    arr = _decode_pil(im, p)
            except (InputError, MemoryError):
                raise
            except Exception as e:  # decoders raise many types on corrupt data
                raise InputError(f"{p}: truncated or corrupt image data: {e}") from None
            if im.format == "TIFF":
                # Newer Pillow applies a TIFF's orientation itself while loading (and drops the tag);
                # older Pillow leaves both to us.
                orientation = tiff_orientation if _tiff_orientation(im.tag_v2) != 1 else 1
            else:
                # Only after the pixels: for a PNG, getexif() decodes the image, and a broken EXIF
                # block is ignored -- which must not swallow a broken pixel stream with it.
                try:
                    orientation = int(im.getexif().get(0x0112, 1) or 1)
                except Exception:  # a broken EXIF block must not stop the conversion
                    orientation = 1
    if arr.shape[0] != h or arr.shape[1] != w:
        raise InputError(f"{p}: decoded size {arr.shape[1]}x{arr.shape[0]} does not match header {w}x{h}")
    return np.ascontiguousarray(apply_orientation(arr, orientation))


def _check_size(p: Path, w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise InputError(f"{p}: refused as a possible decompression bomb: {w}x{h} = "
                         f"{w * h / 1e6:.0f} Mpx exceeds the {MAX_PIXELS / 1e6:.0f} Mpx limit")
    if w < MIN_SIDE or h < MIN_SIDE:
        raise InputError(f"{p}: image is {w}x{h} pixels, smaller than the {MIN_SIDE}x{MIN_SIDE} minimum")


def _check_file(p: Path) -> None:
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not an image file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")


def _decode_pil(im: "Image.Image", p: Path) -> np.ndarray:
    im.load()  # raises OSError on truncated data
    mode = im.mode
    if mode.startswith("I;16"):
        g = np.asarray(im).astype(np.uint16)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "I":  # 16-bit gray from some loaders, stored as int32
        g = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        g = np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32)), 0.0, 1.0)
        return np.repeat(g[..., None], 3, axis=2)
    if mode != "RGB":
        try:
            im = im.convert("RGB")  # L, LA, P (palette), RGBA, CMYK, YCbCr, 1 ...; alpha dropped
        except ValueError as e:
            raise InputError(f"{p}: unsupported colour mode {mode}: {e}") from None
    return np.asarray(im, dtype=np.uint8)


def _png_bit_depth(p: Path) -> int:
    with open(p, "rb") as f:
        head = f.read(26)
    return head[24] if len(head) >= 26 and head[12:16] == b"IHDR" else 8


def _decode_png16(p: Path) -> np.ndarray:
    import png  # pypng: Pillow cannot hold 16-bit RGB

    try:
        width, height, rows, info = png.Reader(filename=str(p)).asDirect()
        planes = int(info["planes"])
        arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, planes)
    except (png.Error, EOFError, zlib.error, ValueError) as e:
        raise InputError(f"{p}: truncated or corrupt PNG data: {e}") from None
    depth = int(info["bitdepth"])
    if depth != 16:  # asDirect may rescale to the sBIT depth
        arr = (arr.astype(np.uint32) * 65535 // (2**depth - 1)).astype(np.uint16)
    if planes <= 2:
        return np.repeat(arr[..., :1], 3, axis=2)
    return arr[..., :3]


def _is_tiff(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(4) in (b"II*\0", b"MM\0*")


def _tiff_orientation(tags) -> int:
    """A TIFF's orientation tag (274), 1 when absent or out of range."""
    try:
        value = int(tags.get(274, 1) or 1)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _tiff_needs_tifffile(im: "Image.Image") -> bool:
    bits = im.tag_v2.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    samples = int(im.tag_v2.get(277, 1))
    return max(bits) > 8 and samples >= 3


# TIFF photometric interpretations (tag 262) the tifffile path reads.
_MINISWHITE, _MINISBLACK, _RGB, _SEPARATED = 0, 1, 2, 5


def _decode_tiff(p: Path) -> tuple[np.ndarray, int]:
    """Decode a TIFF Pillow cannot hold (16-bit RGB, which it truncates to 8 bits; float and 32-bit
    samples; 16-bit gray with alpha) with tifffile. Returns the stored pixels as (H, W, 3) and the
    file's orientation tag, which the caller applies."""
    import tifffile

    try:
        with tifffile.TiffFile(str(p)) as tif:
            page = tif.pages[0]
            width, height = int(page.imagewidth), int(page.imagelength)
            _check_size(p, width, height)
            photometric = int(page.photometric)
            orientation = _tiff_orientation({274: page.tags[274].value} if 274 in page.tags else {})
            arr = page.asarray()
            axes = page.axes
    except InputError:
        raise
    except Exception as e:  # tifffile raises many types, e.g. for codecs it lacks
        msg = str(e)
        if "imagecodecs" in msg:
            raise InputError(f"{p}: this TIFF's compression needs the 'imagecodecs' package; "
                             f"re-save it uncompressed or with ZIP compression") from None
        raise InputError(f"{p}: truncated or corrupt TIFF data: {msg}") from None
    if "S" in axes and "Y" in axes and axes.index("S") < axes.index("Y"):
        arr = np.moveaxis(arr, axes.index("S"), -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[:2] != (height, width):
        raise InputError(f"{p}: unsupported TIFF layout {axes} {arr.shape}")
    arr = _tiff_samples_to_unit(arr, p)
    if photometric in (_MINISBLACK, _MINISWHITE):
        gray = arr[..., :1]  # a second sample is alpha, dropped as for every other photo
        if photometric == _MINISWHITE:
            gray = _unit_max(gray) - gray
        return np.repeat(gray, 3, axis=2), orientation
    if photometric == _RGB and arr.shape[2] >= 3:
        return arr[..., :3], orientation
    if photometric == _SEPARATED and arr.shape[2] >= 4:
        # CMYK as Pillow converts 8-bit CMYK photos (no colour management): R = max - min(max, C + K)
        top = _unit_max(arr)
        ink = arr[..., :3].astype(np.float64) + arr[..., 3:4]
        return (top - np.minimum(ink, top)).astype(arr.dtype), orientation
    names = {3: "palette", 4: "mask", 6: "YCbCr", 8: "CIELab", 9: "ICCLab", 10: "ITULab", 32844: "LogL",
             32845: "LogLuv"}
    raise InputError(f"{p}: unsupported TIFF colour space {names.get(photometric, photometric)} "
                     f"with {arr.shape[2]} samples; re-save it as RGB")


def _unit_max(arr: np.ndarray):
    return np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.integer) else np.float32(1.0)


def _tiff_samples_to_unit(arr: np.ndarray, p: Path) -> np.ndarray:
    """Keep uint8/uint16 as stored; other sample types become float32 in [0, 1] (floats are taken as
    display-referred values, 0..1; other integers are scaled by their type's range)."""
    if arr.dtype == np.uint16 or arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    if np.issubdtype(arr.dtype, np.integer):
        top = float(np.iinfo(arr.dtype).max)
        return np.clip(arr.astype(np.float64) / top, 0.0, 1.0).astype(np.float32)
    raise InputError(f"{p}: unsupported TIFF sample type {arr.dtype}")


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1..8) to an (H, W, ...) array, like PIL's exif_transpose."""
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return np.swapaxes(image, 0, 1)
    if orientation == 6:
        return np.rot90(image, k=-1)
    if orientation == 7:
        return np.swapaxes(image, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(image, k=1)
    return image


def path_kind(p) -> str:
    """'dir', 'file' (anything else that exists) or 'missing'. A path the user may not look at (a
    folder above it without search permission) is an InputError naming it, not an internal error:
    pathlib's exists() and is_dir() raise PermissionError there."""
    p = Path(p)
    try:
        return "dir" if p.is_dir() else "file" if p.exists() else "missing"
    except OSError as e:
        raise InputError(f"{p}: cannot access: {e.strerror or e}") from None


def list_images(folder) -> list[Path]:
    """Image files directly inside `folder` (non-recursive), by extension, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in LDR_EXTENSIONS)


# --------------------------------------------------------------------------------------- HDR


def read_hdr(path) -> np.ndarray:
    """Read an HDR image (.exr via OpenEXR, .hdr/.pic Radiance RGBE) as linear float32 (H, W, 3)."""
    p = Path(path)
    _check_file(p)
    suffix = p.suffix.lower()
    if suffix == ".exr":
        return read_exr(p)
    if suffix in (".hdr", ".pic", ".rgbe"):
        return read_rgbe(p)
    raise InputError(f"{p}: unsupported HDR format {suffix!r} (.exr or .hdr expected)")


def read_exr(path, channels: bool = False):
    """Read an OpenEXR file's R, G, B (or Y) channels as float32 (H, W, 3).

    With `channels=True` returns `(rgb, extra)` where `extra` maps every other channel name
    to a float32 (H, W) array (e.g. the "uncertainty" channel written by the converter)."""
    import OpenEXR

    p = Path(path)
    _check_file(p)
    try:
        f = OpenEXR.File(str(p), separate_channels=True)
        chans = {name: np.asarray(c.pixels) for name, c in f.channels().items()}
    except Exception as e:
        raise InputError(f"{p}: cannot read OpenEXR file: {e}") from None
    if all(k in chans for k in "RGB"):
        rgb = np.stack([chans["R"], chans["G"], chans["B"]], axis=-1).astype(np.float32)
        used = {"R", "G", "B"}
    elif "Y" in chans:
        rgb = np.repeat(chans["Y"].astype(np.float32)[..., None], 3, axis=2)
        used = {"Y"}
    else:
        raise InputError(f"{p}: no R/G/B or Y channels (found {', '.join(sorted(chans)) or 'none'})")
    if not channels:
        return rgb
    extra = {k: v.astype(np.float32) for k, v in chans.items() if k not in used}
    return rgb, extra


_EXR_COMPRESSION = {
    "none": "NO_COMPRESSION", "zip": "ZIP_COMPRESSION", "zips": "ZIPS_COMPRESSION",
    "piz": "PIZ_COMPRESSION", "rle": "RLE_COMPRESSION", "dwaa": "DWAA_COMPRESSION",
    "dwab": "DWAB_COMPRESSION",
}
HALF_MAX = 65504.0


def write_exr(path, rgb: np.ndarray, half: bool = True, compression: str = "zip",
              extra_channels: dict | None = None, header: dict | None = None) -> Path:
    """Write linear RGB (H, W, 3) and optional single channels (H, W) to an OpenEXR file, atomically.

    half=True stores 16-bit floats (values clamped to +-65504 so they stay finite); False stores
    32-bit floats. `header` adds string/number attributes (e.g. the model and seed used)."""
    import OpenEXR

    p = Path(path)
    key = _EXR_COMPRESSION.get(str(compression).lower())
    if key is None:
        raise InputError(f"{p}: unknown EXR compression {compression!r} "
                         f"(choose from {', '.join(_EXR_COMPRESSION)})")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_exr expects (H, W, 3) RGB, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    dtype = np.float16 if half else np.float32

    def prep(a: np.ndarray) -> np.ndarray:
        # Always a fresh C-contiguous array (never hand OpenEXR a strided view), converted in
        # row bands so a huge image needs no full-size float32 temporary: peak memory is the
        # caller's array plus the converted copy (2 bytes per value for half).
        a = np.asarray(a)
        res = np.empty(a.shape, dtype=dtype)
        band = max(1, (8 << 20) // max(1, a[0].size * 4))
        for r0 in range(0, a.shape[0], band):
            chunk = np.asarray(a[r0:r0 + band], dtype=np.float32)
            if half:
                chunk = np.clip(chunk, -HALF_MAX, HALF_MAX)
            res[r0:r0 + band] = chunk
        return res

    channels = {"RGB": prep(rgb)}
    for name, arr in (extra_channels or {}).items():
        arr = np.asarray(arr)
        if arr.shape != (h, w):
            raise ValueError(f"extra channel {name!r} has shape {arr.shape}, expected {(h, w)}")
        if name in ("R", "G", "B", "RGB"):
            raise ValueError(f"extra channel name {name!r} clashes with the colour channels")
        channels[name] = prep(arr)
    hdr = {"compression": getattr(OpenEXR, key), "type": OpenEXR.scanlineimage}
    for k, v in (header or {}).items():
        native = isinstance(v, (int, float, str)) and not isinstance(v, bool)
        hdr[str(k)] = v if native or type(v).__module__ == "OpenEXR" else str(v)

    def write(tmp: str) -> None:
        OpenEXR.File(hdr, channels).write(tmp)

    atomic_write(p, write, suffix=".tmp.exr")
    return p


def _umask() -> int:
    # Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
    old = os.umask(0o022)
    os.umask(old)
    return old


_NEW_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path, writer, suffix: str = ".tmp") -> None:
    """Call `writer(tmp_path)` on a hidden temporary file beside `path`, then rename it over `path`.

    Readers never see a half-written file, and an interrupted batch leaves no debris: the
    temporary is removed on any exception, KeyboardInterrupt included."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        writer(tmp)
        # mkstemp creates 0600; give the result the permissions a plain open() would have.
        os.chmod(tmp, _NEW_FILE_MODE)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# ------------------------------------------------------------------------- Radiance RGBE (.hdr)

_RGBE_RES = re.compile(rb"^([-+])Y\s+(\d+)\s+([-+])X\s+(\d+)\s*$")


def read_rgbe(path) -> np.ndarray:
    """Read a Radiance RGBE (.hdr) file as linear float32 (H, W, 3).

    A small pure-numpy reader (flat and run-length-encoded scanlines) because no maintained,
    dependency-free PyPI package reads .hdr without downloading native code. The header's
    EXPOSURE is ignored (values are returned as stored), as most tools do."""
    p = Path(path)
    _check_file(p)
    data = p.read_bytes()
    try:
        return _decode_rgbe(data)
    except InputError as e:
        raise InputError(f"{p}: {e}") from None
    except (IndexError, ValueError) as e:
        raise InputError(f"{p}: truncated or corrupt Radiance HDR data: {e}") from None


def _decode_rgbe(data: bytes) -> np.ndarray:
    if not (data.startswith(b"#?RADIANCE") or data.startswith(b"#?RGBE")):
        raise InputError("not a Radiance HDR file (missing #?RADIANCE header)")
    pos = 0
    fmt = b"32-bit_rle_rgbe"
    while True:  # header lines up to an empty line
        end = data.index(b"\n", pos)
        line = data[pos:end].strip()
        pos = end + 1
        if not line:
            break
        if line.startswith(b"FORMAT="):
            fmt = line[7:]
    end = data.index(b"\n", pos)
    m = _RGBE_RES.match(data[pos:end].strip())
    pos = end + 1
    if fmt != b"32-bit_rle_rgbe":
        raise InputError(f"unsupported Radiance format {fmt.decode(errors='replace')}")
    if not m or m.group(3) != b"+":
        raise InputError("unsupported Radiance resolution line (only -Y H +X W and +Y H +X W)")
    h, w = int(m.group(2)), int(m.group(4))
    buf = np.frombuffer(data, dtype=np.uint8, offset=pos)
    out = np.empty((h, w, 4), dtype=np.uint8)
    i = 0
    for y in range(h):
        if 8 <= w < 32768 and buf[i] == 2 and buf[i + 1] == 2 and (int(buf[i + 2]) << 8 | int(buf[i + 3])) == w:
            i += 4
            for c in range(4):
                x = 0
                while x < w:
                    n = int(buf[i])
                    if n > 128:
                        n -= 128
                        if x + n > w:
                            raise ValueError("run overflows scanline")
                        out[y, x:x + n, c] = buf[i + 1]
                        i += 2
                    else:
                        if n == 0 or x + n > w:
                            raise ValueError("bad literal count")
                        out[y, x:x + n, c] = buf[i + 1:i + 1 + n]
                        i += 1 + n
                    x += n
        else:  # flat scanline
            row = buf[i:i + 4 * w]
            if row.size != 4 * w:
                raise ValueError("file ends inside a scanline")
            out[y] = row.reshape(w, 4)
            i += 4 * w
    if m.group(1) == b"+":
        out = out[::-1]
    e = out[..., 3].astype(np.int32)
    scale = np.where(e > 0, np.ldexp(np.float32(1.0), e - 136), 0.0).astype(np.float32)
    return ((out[..., :3].astype(np.float32) + 0.5) * scale[..., None]).astype(np.float32)


def write_rgbe(path, rgb: np.ndarray) -> Path:
    """Write linear RGB (H, W, 3) as a flat (uncompressed) Radiance .hdr file, atomically."""
    rgb = np.nan_to_num(np.maximum(np.asarray(rgb, dtype=np.float32), 0.0), posinf=3e38)
    h, w = rgb.shape[:2]
    v = rgb.max(axis=2)
    mant, exp = np.frexp(v)
    ok = v > 1e-32
    scale = np.where(ok, mant * 256.0 / np.where(ok, v, 1.0), 0.0)
    rgbe = np.zeros((h, w, 4), dtype=np.uint8)
    rgbe[..., :3] = np.clip(np.floor(rgb * scale[..., None]), 0, 255).astype(np.uint8)
    rgbe[..., 3] = np.where(ok, np.clip(exp + 128, 0, 255), 0).astype(np.uint8)
    head = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {h} +X {w}\n".encode()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(head)
            f.write(np.ascontiguousarray(rgbe).tobytes())

    atomic_write(path, write, suffix=".tmp.hdr")
    return Path(path)
