"""More training images, from Debian: ILM's OpenEXR sample photographs and open3d's HDR skyboxes.

    python -m training.debian_data --out .cache/debian-hdr
    python -m training.train ... --data ../shared/data/hdr --data STUDIO_LIGHTS --data .cache/debian-hdr

Real scene-referred images with bright, compact light sources -- a desk lamp, a candle, windows,
street lamps -- are the data the highlight error is short of, and few are published anywhere a
build can reach. Debian's archive carries some, inside packages that need them for other reasons.
This downloads three pinned files from ``deb.debian.org``, checks each against its SHA-256, and
writes the images as ordinary OpenEXR files with a MANIFEST:

* ``psychtoolbox-3-common`` ships five of Industrial Light & Magic's OpenEXR sample photographs
  (BSD-3-Clause, (c) 2004 ILM): CandleGlass, Desk, GoldenGate, Ocean, StillLife.
* OpenEXR's own source tarball has a photograph of a room with a bright window as a test input
  (``comp_none.exr``, BSD-3-Clause; its other ``comp_*`` files are the same picture, some lossy).
* ``open3d-viewer-data`` (MIT) ships HDR skyboxes as KTX cube maps: six 256x256 faces packed as
  unsigned 11/11/10-bit floats. They become 512x256 equirectangular panoramas here
  (``cube_to_equirect``), so the panorama crops and the light-stage fit can use them.

Three skyboxes are left out, by rules rather than by eye (``skybox_damage``): one whose range is
that of a clipped capture (``konzerthaus``: 4.5 stops from median to peak), and two whose suns
reach the packed floats' ceiling, 64512 (``crossroads``, ``park``: every channel is clamped there,
the 10-bit channel's largest value), because their true brightness is unknown. The
small negatives in two ILM photographs (colour-processing residue, > -0.02) are clamped at 0.
None of these scenes is in the held-out split (``training/splits/val.txt``).
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.sphere import area_resize, equirect_directions

from . import downloads
from .data import read_hdr_bytes
from .downloads import Source
from .metrics import peak_stops

POOL = "http://deb.debian.org/debian/pool/main"
PREFIX = "debian_"
FLOAT_CEILING = 64512.0    # the largest finite unsigned 10-bit float; these skyboxes clamp every channel there
MIN_RANGE_STOPS = 6.0      # a skybox whose peak is less than 2^6 x its median was clipped at capture
EQUIRECT_SIZE = (256, 512)
SUPERSAMPLE = 4            # cube faces are sampled on a 4x finer equirect grid, then area-averaged


SOURCES = (
    Source(f"{POOL}/p/psychtoolbox-3/psychtoolbox-3-common_3.0.19.14.dfsg1-1_all.deb",
           "7ad844a02f800a34e4d2725235438a4fa725bf29239af53d199778412313f483",
           "BSD-3-Clause, (c) 2004 Industrial Light & Magic",
           tuple(f"./usr/share/psychtoolbox-3/PsychDemos/OpenEXRImages/{n}.exr"
                 for n in ("CandleGlass", "Desk", "GoldenGate", "Ocean", "StillLife"))),
    Source(f"{POOL}/o/openexr/openexr_3.1.13.orig.tar.gz",
           "26d265d8cf8df4dad115b066ba209118ca8832cda076ec704ce1a57f827c75c6",
           "BSD-3-Clause, (c) Contributors to the OpenEXR Project",
           ("openexr-3.1.13/src/test/OpenEXRTest/comp_none.exr",)),
    Source(f"{POOL}/o/open3d/open3d-viewer-data_0.19.0-3_all.deb",
           "56a50eac39b89c7036815d86d3fbb53fff39ae7983d0cb02f8dc831a2b7e4109",
           "MIT, (c) Open3D authors",
           tuple(f"./usr/share/open3d-viewer/resources/{n}_skybox.ktx"
                 for n in ("brightday", "crossroads", "hall", "konzerthaus", "nightlights", "park",
                           "park2", "pillars", "streetlamp"))),
)


def unpack_float(bits: np.ndarray, mantissa_bits: int) -> np.ndarray:
    """Unsigned small floats (5-bit exponent, bias 15, no sign) as float32; OpenGL's R11F/B10F."""
    exponent = (bits >> mantissa_bits) & 0x1F
    mantissa = (bits & ((1 << mantissa_bits) - 1)).astype(np.float64) / (1 << mantissa_bits)
    value = np.where(exponent == 0, mantissa * 2.0 ** -14, (1.0 + mantissa) * 2.0 ** (exponent.astype(np.float64) - 15))
    return np.where(exponent == 31, np.inf, value).astype(np.float32)


def read_ktx_cube(data: bytes) -> list[np.ndarray]:
    """The six (S, S, 3) faces, in order +X, -X, +Y, -Y, +Z, -Z, of a KTX 1 cube map stored as
    GL_R11F_G11F_B10F (first mip level only)."""
    if data[:12] != b"\xabKTX 11\xbb\r\n\x1a\n":
        raise InputError("not a KTX 1 file")
    (endian, gl_type, _, _, internal, _, width, height, _, layers, faces, _, kv_bytes) = struct.unpack("<13I", data[12:64])
    if endian != 0x04030201 or internal != 0x8C3A or faces != 6 or width != height or layers > 1:
        raise InputError(f"unsupported KTX: format 0x{internal:X}, {faces} faces, {width}x{height}")
    pos = 64 + kv_bytes
    face_bytes = struct.unpack("<I", data[pos:pos + 4])[0]
    pos += 4
    out = []
    for _ in range(6):
        packed = np.frombuffer(data, "<u4", count=width * height, offset=pos).reshape(height, width)
        out.append(np.stack([unpack_float(packed & 0x7FF, 6), unpack_float((packed >> 11) & 0x7FF, 6),
                             unpack_float(packed >> 22, 5)], axis=-1))
        pos += face_bytes
    return out


def cube_to_equirect(faces: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Resample a cube map (OpenGL face order and orientation, y up) to an equirectangular image:
    nearest texel on a SUPERSAMPLE-times finer grid, then an area average, so every output pixel
    is the mean of the texels it covers."""
    d = equirect_directions(height * SUPERSAMPLE, width * SUPERSAMPLE)
    x, y, z = d[..., 0], d[..., 1], -d[..., 2]   # the equirect's forward (+z) is the cube's -Z
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    size = faces[0].shape[0]
    out = np.zeros(d.shape[:2] + (3,), dtype=np.float32)
    # (face index, which pixels, major-axis magnitude, s coordinate, t coordinate): OpenGL's table.
    choices = (
        (0, (ax >= ay) & (ax >= az) & (x > 0), ax, -z, -y),
        (1, (ax >= ay) & (ax >= az) & (x <= 0), ax, z, -y),
        (2, (ay > ax) & (ay >= az) & (y > 0), ay, x, z),
        (3, (ay > ax) & (ay >= az) & (y <= 0), ay, x, -z),
        (4, (az > ax) & (az > ay) & (z > 0), az, x, -y),
        (5, (az > ax) & (az > ay) & (z <= 0), az, -x, -y),
    )
    for face, mask, major, s, t in choices:
        u = np.clip(((s[mask] / major[mask] + 1.0) * 0.5 * size).astype(int), 0, size - 1)
        v = np.clip(((t[mask] / major[mask] + 1.0) * 0.5 * size).astype(int), 0, size - 1)
        out[mask] = faces[face][v, u]
    return area_resize(out, height, width)


def skybox_damage(faces: list[np.ndarray]) -> str | None:
    """Why a skybox cannot serve as truth, or None."""
    texels = np.concatenate([f.reshape(-1, 3) for f in faces])
    if not np.isfinite(texels).all() or texels.max() >= FLOAT_CEILING:
        n = int((texels >= FLOAT_CEILING).any(axis=-1).sum())
        return f"{n} texels clamped at {FLOAT_CEILING:g}: its sun's truth is unknown"
    stops = peak_stops(texels)
    if stops < MIN_RANGE_STOPS:
        return f"only {stops:.1f} stops from median to peak: clipped at capture"
    return None


def image_name(member: str) -> str:
    stem = Path(member).name.rsplit(".", 1)[0]
    return f"{PREFIX}{stem.removesuffix('_skybox')}.exr"


def convert(member: str, data: bytes, scratch: Path) -> tuple[np.ndarray | None, str | None]:
    """(linear RGB, None) for a usable image, (None, why) for one left out."""
    if member.endswith(".ktx"):
        faces = read_ktx_cube(data)
        why = skybox_damage(faces)
        return (None, why) if why else (cube_to_equirect(faces, *EQUIRECT_SIZE), None)
    return np.maximum(read_hdr_bytes(data, f"source.{Path(member).name}", scratch), 0.0), None


def write_images(sources, out: Path, cache: Path | None) -> tuple[list[str], list[str]]:
    return downloads.write_images(sources, out, cache, image_name, convert)


def build(out: Path, cache: Path | None) -> int:
    rows, skipped = write_images(SOURCES, out, cache)
    downloads.write_manifest(out, "Extra training images from Debian", "training.debian_data", POOL, skipped, rows)
    return len(rows)


def main(argv=None) -> int:
    return downloads.cli(argv, "training.debian_data", __doc__.split("\n\n")[0],
                         "folder of already downloaded package files (same names as in the archive) to use first",
                         build)


if __name__ == "__main__":
    sys.exit(main())
