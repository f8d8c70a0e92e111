"""The model bundle: a folder holding `model.onnx` (the flow's reverse pass) and `model.json`,
and optionally `photo.onnx`, a second flow of the same architecture for photos (one flow per kind
of input: the main flow then converts panoramas, see MODEL_CARD).

This module is the single owner of the bundle format (docs/contracts.md): `training/export.py`
writes bundles through `write_bundle`, the engine and the add-on read them through `load_bundle`.
Loading checks the schema and the sha256 of model.onnx so that a truncated download, a
hand-edited JSON or a model swapped under a stale model.json fails at once with one actionable
line (an `BundleError`, exit 2) instead of producing a wrong HDR. JSON only, never pickle.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import BundleError
from .geometry import GEOMETRY_CHANNELS
from .jsonvalues import is_int, is_number
from .io import atomic_write
from .light import LightHead, head_problem
from .scale import FlowScale, scale_problem

FORMAT = "hdrcnf-bundle"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
JSON_NAME = "model.json"
ONNX_NAME = "model.onnx"
PHOTO_ONNX_NAME = "photo.onnx"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LatentSpec:
    """One level's latent input: `channels` planes at 1/`scale` of the image resolution."""

    name: str
    channels: int
    scale: int

    def shape(self, n: int, height: int, width: int) -> tuple[int, int, int, int]:
        """NCHW shape of this latent for an (height, width) image tile."""
        return (n, self.channels, height // self.scale, width // self.scale)


@dataclass(frozen=True)
class Bundle:
    """A verified model bundle (construct it with `load_bundle`)."""

    path: Path
    onnx_path: Path
    name: str
    version: str
    sha256: str
    levels: int
    stride: int
    latents: tuple[LatentSpec, ...]
    receptive_field: int
    default_temperature: float
    target_transform: dict
    meta: dict = field(repr=False, compare=False)
    light: LightHead | None = None  # the panorama light stage's fitted amount regression (engine.light)
    # The flow for photos when the bundle has one (`photo.onnx`): the same bundle with that graph.
    photo: Bundle | None = field(default=None, repr=False, compare=False)

    @property
    def input_name(self) -> str:
        return str(self.meta.get("input", {}).get("name", "ldr"))

    @property
    def geometry(self) -> tuple[str, ...]:
        """The ``engine.geometry`` planes the model takes after the LDR (empty for most models)."""
        return tuple(self.meta.get("input", {}).get("geometry", ()))

    @property
    def input_channels(self) -> int:
        """Channels of the graph's input: the LDR's three, then the geometry planes."""
        return 3 + len(self.geometry)

    @property
    def output_name(self) -> str:
        return str(self.meta.get("output", {}).get("name", "hdr"))

    @property
    def clip_point(self) -> float:
        return float(self.meta.get("output", {}).get("clip_point", 1.0))

    @property
    def flow_scale(self) -> FlowScale:
        """The sizes the flow was trained at, which `engine.scale` keeps large photos near."""
        return FlowScale.from_meta(self.meta.get("scale"))


def default_bundle_path() -> Path:
    """The model shipped inside the package: engine/models/default."""
    return Path(__file__).resolve().parent / "models" / "default"


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed so big models don't need to fit in memory twice."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_bundle(path=None) -> Bundle:
    """Load and verify a bundle folder (default: `default_bundle_path()`).

    Raises BundleError (one line naming the file and the problem) when the folder or a file is
    missing, model.json is not valid JSON or violates the schema, the format version is not
    supported, or model.onnx does not match the recorded sha256."""
    folder = Path(path) if path is not None else default_bundle_path()
    if not folder.is_dir():
        if folder.is_file() and folder.name == JSON_NAME:
            folder = folder.parent
        else:
            raise BundleError(f"{folder}: model bundle folder not found "
                              f"(expected a folder with {JSON_NAME} and {ONNX_NAME}); pass --model DIR")
    json_path = folder / JSON_NAME
    if not json_path.is_file():
        raise BundleError(f"{json_path}: missing; {folder} is not a model bundle (re-export or reinstall the model)")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BundleError(f"{json_path}: corrupt JSON at line {e.lineno} column {e.colno}: {e.msg}; "
                          f"re-export or reinstall the model") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"{json_path}: cannot read: {e}") from None
    validate_meta(meta, json_path)
    onnx_path = folder / meta["onnx"]
    _check_onnx(onnx_path, meta["sha256"], json_path)
    bundle = Bundle(
        path=folder, onnx_path=onnx_path, name=meta["name"], version=meta["version"],
        sha256=meta["sha256"], levels=meta["levels"], stride=meta["stride"],
        latents=tuple(LatentSpec(d["name"], d["channels"], d["scale"]) for d in meta["latents"]),
        receptive_field=meta["receptive_field"], default_temperature=float(meta["default_temperature"]),
        target_transform=dict(meta.get("target_transform", {})), meta=meta,
        light=LightHead.from_meta(meta["light"]) if "light" in meta else None,
    )
    if "photo_flow" in meta:
        photo_path = folder / meta["photo_flow"]["onnx"]
        _check_onnx(photo_path, meta["photo_flow"]["sha256"], json_path)
        bundle = replace(bundle, photo=replace(bundle, onnx_path=photo_path, sha256=meta["photo_flow"]["sha256"],
                                               light=None))
    return bundle


def _check_onnx(path: Path, sha256: str, json_path: Path) -> None:
    if not path.is_file():
        raise BundleError(f"{path}: missing (named in {json_path}); re-export or reinstall the model")
    digest = sha256_file(path)
    if digest != sha256:
        raise BundleError(f"{path}: sha256 mismatch (model.json says {sha256[:12]}..., file is "
                          f"{digest[:12]}...): the file is corrupt or was replaced; re-export or reinstall the model")


def validate_meta(meta, where) -> None:
    """Check a model.json dict against the bundle schema; raise BundleError naming `where`."""

    def fail(problem: str):
        raise BundleError(f"{where}: {problem}; re-export or reinstall the model")

    if not isinstance(meta, dict):
        fail("top level must be a JSON object")
    fmt = meta.get("format")
    if fmt != FORMAT:
        fail(f"'format' is {fmt!r}, expected {FORMAT!r}")
    ver = meta.get("format_version")
    if not is_int(ver):
        fail(f"'format_version' must be an integer, got {ver!r}")
    if ver not in SUPPORTED_FORMAT_VERSIONS:
        raise BundleError(f"{where}: format_version {ver} is not supported by this engine (supports "
                          f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}); upgrade hdrcnf or re-export the model")
    required = {
        "name": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
        "version": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
        "onnx": (lambda v: isinstance(v, str) and v not in ("", ".", "..") and "/" not in v and "\\" not in v,
                 "a file name inside the bundle folder"),
        "sha256": (lambda v: isinstance(v, str) and bool(_HEX64.match(v)), "64 lowercase hex digits"),
        "levels": (lambda v: is_int(v) and v >= 1, "a positive integer"),
        "stride": (lambda v: is_int(v) and v >= 1, "a positive integer"),
        "latents": (lambda v: isinstance(v, list) and len(v) >= 1, "a non-empty list"),
        "receptive_field": (lambda v: is_int(v) and v >= 0, "a non-negative integer"),
        "default_temperature": (lambda v: is_number(v) and v >= 0, "a non-negative number"),
    }
    for key, (ok, what) in required.items():
        if key not in meta:
            fail(f"missing required key {key!r}")
        if not ok(meta[key]):
            fail(f"{key!r} must be {what}, got {meta[key]!r}"[:300])
    optional_dicts = ("input", "output", "target_transform", "config", "training", "scores")
    for key in optional_dicts:
        if key in meta and not isinstance(meta[key], dict):
            fail(f"{key!r} must be a JSON object")
    if "licence" in meta and not isinstance(meta["licence"], str):
        fail("'licence' must be a string")
    for key in ("input", "output"):
        name = meta.get(key, {}).get("name", "x")
        if not isinstance(name, str) or not name:
            fail(f"'{key}.name' must be a non-empty string")
    geometry = meta.get("input", {}).get("geometry", [])
    if not isinstance(geometry, list) or (geometry and geometry != list(GEOMETRY_CHANNELS)):
        fail(f"'input.geometry' {geometry!r} is not what this engine feeds ({list(GEOMETRY_CHANNELS)}): "
             f"a newer hdrcnf may read this model")
    channels = meta.get("input", {}).get("channels", 3)
    if channels != 3 + len(geometry):
        fail(f"'input.channels' must be 3 + the number of geometry planes ({3 + len(geometry)}), got {channels!r}")
    clip = meta.get("output", {}).get("clip_point", 1.0)
    if not is_number(clip) or clip <= 0:
        fail(f"'output.clip_point' must be a positive number, got {clip!r}")
    if "light" in meta and (problem := head_problem(meta["light"])):
        fail(f"'light' {problem}")
    if "scale" in meta and (problem := scale_problem(meta["scale"])):
        fail(f"'scale' {problem}")
    if "photo_flow" in meta:
        photo = meta["photo_flow"]
        if (not isinstance(photo, dict) or photo.get("onnx") != PHOTO_ONNX_NAME
                or not isinstance(photo.get("sha256"), str) or not _HEX64.match(photo["sha256"])):
            fail(f"'photo_flow' must be {{\"onnx\": \"{PHOTO_ONNX_NAME}\", \"sha256\": 64 hex digits}}, got {photo!r}")
    lat = meta["latents"]
    if len(lat) != meta["levels"]:
        fail(f"'latents' has {len(lat)} entries but 'levels' is {meta['levels']}")
    names = set()
    for i, d in enumerate(lat):
        if not isinstance(d, dict):
            fail(f"latents[{i}] must be an object with name, channels, scale")
        for k in ("name", "channels", "scale"):
            if k not in d:
                fail(f"latents[{i}] is missing {k!r}")
        if not isinstance(d["name"], str) or not d["name"]:
            fail(f"latents[{i}].name must be a non-empty string")
        if not is_int(d["channels"]) or d["channels"] < 1:
            fail(f"latents[{i}].channels must be a positive integer")
        if not is_int(d["scale"]) or d["scale"] < 1 or meta["stride"] % d["scale"]:
            fail(f"latents[{i}].scale must be a positive integer dividing the stride {meta['stride']}")
        if d["name"] in names:
            fail(f"latent name {d['name']!r} appears twice")
        names.add(d["name"])
    if meta.get("input", {}).get("name", "ldr") in names:
        fail("a latent has the same name as the input")


def write_bundle(directory, onnx_file, meta: dict, photo_onnx_file=None) -> Bundle:
    """Create (or update) a bundle folder from an ONNX file and its metadata; return it loaded.

    Copies `onnx_file` to `directory/model.onnx` unless it is already that file (and
    `photo_onnx_file`, when given, to `directory/photo.onnx`, recorded as "photo_flow"; a `meta`
    that already names a photo flow keeps it), fills in
    "format", "format_version", "onnx" and "sha256", validates the schema, and writes model.json
    atomically (so a crash never leaves a model.json that points at the wrong model). The
    caller's `meta` dict is not modified. Raises BundleError if `meta` is invalid or not strict
    JSON (NaN/inf scores must be written as null)."""
    directory = Path(directory)
    onnx_file = Path(onnx_file)
    if not onnx_file.is_file():
        raise BundleError(f"{onnx_file}: ONNX file not found")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / ONNX_NAME
    if not (target.exists() and os.path.samefile(target, onnx_file)):
        atomic_write(target, lambda tmp: shutil.copyfile(onnx_file, tmp), suffix=".tmp.onnx")
    full = dict(meta)
    full.update(format=FORMAT, format_version=FORMAT_VERSION, onnx=ONNX_NAME, sha256=sha256_file(target))
    if photo_onnx_file is not None:
        photo_file, photo_target = Path(photo_onnx_file), directory / PHOTO_ONNX_NAME
        if not photo_file.is_file():
            raise BundleError(f"{photo_file}: ONNX file not found")
        if not (photo_target.exists() and os.path.samefile(photo_target, photo_file)):
            atomic_write(photo_target, lambda tmp: shutil.copyfile(photo_file, tmp), suffix=".tmp.onnx")
        full["photo_flow"] = {"onnx": PHOTO_ONNX_NAME, "sha256": sha256_file(photo_target)}
    json_path = directory / JSON_NAME
    validate_meta(full, json_path)
    try:
        text = json.dumps(full, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise BundleError(f"{json_path}: metadata is not strict JSON: {e}") from None
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), suffix=".tmp.json")
    return load_bundle(directory)
