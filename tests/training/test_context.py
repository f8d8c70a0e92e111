"""The encoder's context branch: stride, receptive field, and a graph the engine can tile."""
import numpy as np
import torch

from training.configs import tiny
from training.export import receptive_field
from training.model import HDRCNF


def _trained_like(cfg):
    """Weights moved off their initial values: a fresh flow ignores its conditioning (zero-initialised
    subnets) and a fresh branch outputs zero, so neither shows a receptive field."""
    torch.manual_seed(0)
    model = HDRCNF(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _wide(context_down=2):
    cfg = tiny()
    cfg.model.encoder.context_down = context_down
    return cfg, _trained_like(cfg)


def test_stride_covers_the_context_resolution():
    cfg, _ = _wide(2)
    assert cfg.model.encoder.stride == 16 and cfg.model.stride == 16
    assert tiny().model.stride == 4  # without a branch: the flow's squeezes (2 levels) decide


def test_context_branch_widens_the_receptive_field():
    plain = _trained_like(tiny())
    _, wide = _wide(2)
    _, full_plain = receptive_field(plain, size=512)
    _, full_wide = receptive_field(wide, size=512)
    assert full_wide >= full_plain + 64, (full_plain, full_wide)


def test_context_model_exports_and_tiles_like_untiled(tmp_path):
    """Through the engine: the tiled conversion (overlap from the measured receptive field) equals
    one whole-image window within the tiling tolerance, so the branch is safe to ship."""
    from engine.backends import create_backend
    from engine.bundle import load_bundle
    from engine.convert import ConvertOptions, convert_array
    from training.checkpoint import save_checkpoint
    from training.export import export_bundle

    cfg, model = _wide(2)
    save_checkpoint(tmp_path / "ckpt", model, None, cfg, {"step": 1})
    export_bundle(tmp_path / "ckpt", tmp_path / "bundle")
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.stride == 16
    backend = create_backend(bundle, "onnxruntime")
    rng = np.random.default_rng(0)
    img = (rng.random((200, 520, 3)) * 0.8).astype(np.float32)
    img[40:120, 300:400] = 1.0  # a clipped disc the context branch sees as a whole
    whole = convert_array(img, backend, bundle, ConvertOptions(tile=1024, seed=3, full_resolution=True)).hdr
    small = min(1024, 2 * bundle.receptive_field + 3 * bundle.stride)
    tiled = convert_array(img, backend, bundle, ConvertOptions(tile=small, seed=3, full_resolution=True))
    assert tiled.info["tiles"] > 1
    err = np.abs(np.log2(np.maximum(tiled.hdr, 1e-4)) - np.log2(np.maximum(whole, 1e-4)))
    assert float(err.mean()) < 0.01, float(err.mean())
