"""Bundle loading and writing: schema, hashes and one-line errors."""
from __future__ import annotations

import json
import shutil

import pytest

from engine.backends import create_backend
from engine.bundle import FORMAT, Bundle, LatentSpec, load_bundle, sha256_file, write_bundle
from engine.errors import BundleError, InputError

from .synthetic_bundle import build_onnx, synthetic_meta


@pytest.fixture
def bundle_dir(tmp_path, synthetic_bundle):
    d = tmp_path / "b"
    shutil.copytree(synthetic_bundle.path, d)
    return d


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_load_ok(bundle_dir):
    b = load_bundle(bundle_dir)
    assert isinstance(b, Bundle)
    assert b.name == "synthetic-test" and b.levels == 3 and b.stride == 8
    assert b.latents[0] == LatentSpec("z1", 6, 2)
    assert b.sha256 == sha256_file(bundle_dir / "model.onnx")
    assert b.input_name == "ldr" and b.output_name == "hdr" and b.clip_point == 1.0
    assert b.meta["format"] == FORMAT and b.meta["format_version"] == 1
    assert b.latents[2].shape(2, 64, 128) == (2, 48, 8, 16)
    assert load_bundle(bundle_dir / "model.json").path == bundle_dir  # pointing at the json works too


def test_write_bundle_leaves_meta_and_no_temp(tmp_path):
    src = build_onnx(tmp_path / "graph.onnx")
    meta = synthetic_meta()
    before = json.dumps(meta, sort_keys=True)
    b = write_bundle(tmp_path / "out", src, meta)
    assert json.dumps(meta, sort_keys=True) == before  # caller's dict untouched
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.json", "model.onnx"]
    assert src.exists()  # copied, not moved
    on_disk = json.loads((tmp_path / "out" / "model.json").read_text())
    assert on_disk["sha256"] == b.sha256 and on_disk["onnx"] == "model.onnx"
    # writing again in place (onnx already inside the folder) works and keeps the hash
    b2 = write_bundle(tmp_path / "out", tmp_path / "out" / "model.onnx", dict(meta, version="0.0.2"))
    assert b2.version == "0.0.2" and b2.sha256 == b.sha256


def test_write_bundle_rejects_bad_meta(tmp_path):
    src = build_onnx(tmp_path / "graph.onnx")
    with pytest.raises(BundleError, match="stride"):
        write_bundle(tmp_path / "o1", src, {k: v for k, v in synthetic_meta().items() if k != "stride"})
    with pytest.raises(BundleError, match="strict JSON"):
        write_bundle(tmp_path / "o2", src, dict(synthetic_meta(), scores={"psnr": float("nan")}))
    assert not (tmp_path / "o1" / "model.json").exists()


def test_corrupt_json(bundle_dir):
    (bundle_dir / "model.json").write_text('{"format": "hdrcnf-bundle", ')
    with pytest.raises(BundleError) as e:
        load_bundle(bundle_dir)
    assert "model.json" in _one_line(e) and "JSON" in str(e.value)


def test_hash_mismatch(bundle_dir):
    with open(bundle_dir / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError) as e:
        load_bundle(bundle_dir)
    assert "sha256" in _one_line(e) and "model.onnx" in str(e.value)


def test_missing_onnx(bundle_dir):
    (bundle_dir / "model.onnx").unlink()
    with pytest.raises(BundleError) as e:
        load_bundle(bundle_dir)
    assert "model.onnx" in _one_line(e) and "missing" in str(e.value)


def test_missing_folder_and_json(tmp_path):
    with pytest.raises(BundleError) as e:
        load_bundle(tmp_path / "nowhere")
    assert "not found" in _one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError) as e:
        load_bundle(tmp_path / "empty")
    assert "model.json" in _one_line(e)


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m.pop("levels"), "levels"),
    (lambda m: m.update(format="something-else"), "format"),
    (lambda m: m.update(format_version=99), "format_version 99"),
    (lambda m: m.update(stride="8"), "stride"),
    (lambda m: m.update(levels=True), "levels"),
    (lambda m: m.update(levels=2), "latents"),
    (lambda m: m["latents"][0].update(scale=3), "scale"),
    (lambda m: m["latents"][1].update(name="z1"), "twice"),
    (lambda m: m.update(onnx="../x.onnx"), "onnx"),
    (lambda m: m.update(sha256="abc"), "sha256"),
    (lambda m: m.update(default_temperature=-1), "default_temperature"),
    (lambda m: m.update(receptive_field=-8), "receptive_field"),
    (lambda m: m.update(scores=[1, 2]), "scores"),
    (lambda m: m.update(output={"name": "hdr", "clip_point": 0}), "clip_point"),
    (lambda m: [1, 2], "object"),
    (lambda m: m.update(light={"type": "something-else"}), "'light' has type"),
    (lambda m: m.update(light=[]), "'light' must be a JSON object"),
    (lambda m: m.update(input={"name": "ldr", "channels": 5, "geometry": ["panorama", "altitude"]}),
     "a newer hdrcnf"),
    (lambda m: m.update(input={"name": "ldr", "geometry": "panorama"}), "'input.geometry'"),
    (lambda m: m.update(input={"name": "ldr", "channels": 3, "geometry": ["panorama", "sin_latitude"]}),
     "'input.channels' must be 3 + the number of geometry planes (5)"),
])
def test_schema_violations(bundle_dir, edit, needle):
    meta = json.loads((bundle_dir / "model.json").read_text())
    new = edit(meta)
    if isinstance(new, list):
        meta = new
    (bundle_dir / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError) as e:
        load_bundle(bundle_dir)
    assert needle in _one_line(e)


def test_bundle_error_is_input_error():
    assert issubclass(BundleError, InputError) and issubclass(InputError, ValueError)


def test_onnx_inputs_must_match_json(tmp_path):
    """A valid-looking model.json whose latent names disagree with the graph fails at backend creation."""
    src = build_onnx(tmp_path / "graph.onnx")
    meta = synthetic_meta()
    for i, lat in enumerate(meta["latents"]):
        lat["name"] = f"w{i + 1}"
    b = write_bundle(tmp_path / "mismatch", src, meta)
    with pytest.raises(BundleError) as e:
        create_backend(b, "onnxruntime")
    assert "do not match" in _one_line(e)


def test_garbage_onnx_with_matching_hash(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"this is not a protobuf")
    b = write_bundle(tmp_path / "junk", tmp_path / "junk.onnx", synthetic_meta())
    with pytest.raises(BundleError) as e:
        create_backend(b, "onnxruntime")
    assert "cannot load" in _one_line(e)


def test_a_light_head_loads_and_round_trips(tmp_path, synthetic_bundle):
    from engine.light import FEATURES, LightHead

    n = len(FEATURES)
    head = LightHead(mean=(0.0,) * n, std=(1.0,) * n, weights=(1.5,) + (0.0,) * n, max_stops=6.0, fitted_on=12)
    b = write_bundle(tmp_path / "lit", synthetic_bundle.onnx_path, {**synthetic_bundle.meta, "light": head.to_meta()})
    assert b.light == head and load_bundle(tmp_path / "lit").light == head
    assert synthetic_bundle.light is None        # the block is optional


def test_a_photo_flow_is_loaded_verified_and_kept_by_rewrites(tmp_path, synthetic_bundle):
    """photo.onnx: recorded with its sha256, loaded as bundle.photo (same metadata, its own graph),
    kept when model.json is rewritten (scores, light head), and a tampered copy fails at load."""
    from engine.bundle import PHOTO_ONNX_NAME

    photo_src = build_onnx(tmp_path / "photo-src.onnx", lift=0.0)
    two = write_bundle(tmp_path / "two", synthetic_bundle.onnx_path, synthetic_bundle.meta, photo_onnx_file=photo_src)
    assert two.photo is not None and two.photo.onnx_path.name == PHOTO_ONNX_NAME
    assert two.photo.sha256 != two.sha256 and two.photo.latents == two.latents and two.photo.photo is None
    again = write_bundle(two.path, two.onnx_path, {**two.meta, "scores": {"kept": True}})
    assert again.photo is not None and again.photo.sha256 == two.photo.sha256
    with open(two.path / PHOTO_ONNX_NAME, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(BundleError, match="photo.onnx: sha256 mismatch"):
        load_bundle(two.path)
    (two.path / PHOTO_ONNX_NAME).unlink()
    with pytest.raises(BundleError, match="photo.onnx: missing"):
        load_bundle(two.path)
    bad = {**two.meta, "photo_flow": {"onnx": "../elsewhere.onnx", "sha256": two.meta["photo_flow"]["sha256"]}}
    (two.path / "model.json").write_text(json.dumps(bad))
    with pytest.raises(BundleError, match="'photo_flow' must be"):
        load_bundle(two.path)
