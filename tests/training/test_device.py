"""The model runs wherever its parameters are.

No GPU here: PyTorch's ``meta`` device stands in for one. It has shapes but no data, and any op
mixing it with a CPU tensor fails exactly like CPU-vs-CUDA does, so it catches a tensor left on
the CPU (two such bugs only ever showed on a GPU: latents drawn on the CPU in ``sample``, and the
exported 1x1 convolutions' inverses baked on the CPU). Training cannot run on ``meta`` (actnorm
reads its initialised flag); the real-GPU test covers it and skips without a GPU.
"""
import pytest
import torch

from training.configs import tiny
from training.flow import InvConv1x1
from training.model import HDRCNF


def _model(frozen: bool):
    cfg = tiny()
    model = HDRCNF(cfg.model).eval()
    if frozen:  # as benchmarks and export use it: inverses baked, then moved
        for m in model.modules():
            if isinstance(m, InvConv1x1):
                m.freeze()
    return cfg, model


@pytest.mark.parametrize("frozen", [False, True])
def test_sampling_on_another_device(frozen):
    _, model = _model(frozen)
    model = model.to("meta")
    ldr = torch.rand(2, 3, 32, 32, device="meta")
    out = model.sample(ldr, 0.4, torch.Generator().manual_seed(0))
    assert out.device.type == "meta" and out.shape == (2, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_step_and_sampling_on_cuda(hdr_dir, tmp_path):
    from training.train import train

    cfg = tiny()
    cfg.steps = 3
    state = train(cfg, [hdr_dir], tmp_path / "run", split=None, quiet=True, data_workers=1)
    assert state["step"] == 3 and state["skipped_steps"] == 0
