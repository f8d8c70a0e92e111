"""Growing a trained model: added flow steps, encoder trunk blocks, a context branch and an
auxiliary head leave its function unchanged."""
import copy
from pathlib import Path

import pytest
import torch

from engine.errors import InputError
from engine.geometry import window_planes
from training.configs import tiny
from training.export import export_bundle
from training.model import HDRCNF
from training.train import apply_overrides, train


def _trained_like(cfg, seed=0):
    torch.manual_seed(seed)
    model = HDRCNF(cfg.model)
    with torch.no_grad():  # stand-in for training: every weight moved off its initial value
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def _assert_same_function(deep: HDRCNF, small: HDRCNF):
    g = torch.Generator().manual_seed(1)
    ldr = torch.rand(2, 3, 32, 32, generator=g)
    hdr = torch.rand(2, 3, 32, 32, generator=g) * 8
    latents = [0.5 * torch.randn(s, generator=g) for s in small.latent_shapes(2, 32, 32)]
    with torch.no_grad():
        torch.testing.assert_close(deep(ldr, *latents), small(ldr, *latents), rtol=1e-5, atol=1e-5)
        t = small.to_target(hdr, ldr)
        torch.testing.assert_close(deep.log_prob(*deep.encode(ldr, t)), small.log_prob(*small.encode(ldr, t)),
                                   rtol=1e-5, atol=1e-3)


def _grown(change):
    """A trained-like tiny model, the same grown by ``change(model_config)`` and loaded from it,
    and the names of the modules the growth added."""
    small = _trained_like(tiny())
    grown_cfg = copy.deepcopy(small.cfg)
    change(grown_cfg)
    grown = HDRCNF(grown_cfg).eval()
    return small, grown, grown.load_weights(small.state_dict())


def _encoder_gradient(model: HDRCNF) -> None:
    ldr = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    sum(f.square().sum() for f in model.encoder(ldr)).backward()


def test_deeper_model_starts_as_the_same_function():
    small, deep, added = _grown(lambda c: setattr(c.flow, "steps", c.flow.steps + 2))
    assert len(added) == 2 * small.cfg.flow.levels
    _assert_same_function(deep, small)


def test_added_context_branch_starts_as_the_same_function_then_learns():
    # H/4 trunk -> H/8 context: stride 8, inputs of 32 px fit
    small, wide, added = _grown(lambda c: setattr(c.encoder, "context_down", 1))
    assert added == ["encoder.context"]
    _assert_same_function(wide, small)
    # zero output, but not a dead branch: the output convolution gets a gradient at once
    _encoder_gradient(wide)
    assert wide.encoder.context.out.weight.grad.abs().sum() > 0


def test_weights_of_another_architecture_are_refused():
    cfg = tiny()
    small = _trained_like(cfg)
    other = copy.deepcopy(cfg.model)
    other.encoder.nf += 8
    with pytest.raises(ValueError, match="size mismatch"):
        HDRCNF(other).load_weights(small.state_dict())


def test_only_whole_trailing_flow_steps_may_be_missing():
    # A model with an extra transition step has its step indices shifted: not a "shallower" model.
    cfg = tiny()
    other = copy.deepcopy(cfg.model)
    other.flow.transitions += 1
    with pytest.raises(ValueError, match="do not fit"):
        HDRCNF(cfg.model).load_weights(HDRCNF(other).state_dict())


def test_an_added_auxiliary_head_leaves_the_model_unchanged_and_trains(tmp_path):
    small, with_aux, added = _grown(lambda c: setattr(c, "aux_head", True))
    assert added == ["aux"]
    _assert_same_function(with_aux, small)
    with pytest.raises(InputError, match="model.aux_head=true"):
        apply_overrides(tiny(), ["loss.aux_weight=1"])
    run_cfg = apply_overrides(tiny(), ["model.aux_head=true", "loss.aux_weight=1"])
    run_cfg.steps = 5
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "hdr"
    state = train(run_cfg, [fixtures], tmp_path / "run", split=None, quiet=True)
    assert state["step"] == 5 and state["skipped_steps"] == 0
    bundle = export_bundle(tmp_path / "run" / "last", tmp_path / "bundle")  # the head is not in the graph
    assert bundle.meta["export"]["parity_max_rel_error"] <= 1e-3


def test_added_trunk_blocks_start_as_the_same_function_then_learn():
    small, deep, added = _grown(lambda c: setattr(c.encoder, "nb", c.encoder.nb + 2))
    nb = small.cfg.encoder.nb
    assert added == [f"encoder.trunk.{nb}", f"encoder.trunk.{nb + 1}"]
    _assert_same_function(deep, small)
    # not dead blocks: their fusing convolutions get a gradient at once
    _encoder_gradient(deep)
    assert deep.encoder.trunk[nb].blocks[0].fuse.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("latitude", [True, False])
def test_geometry_inputs_start_ignored_then_learn(latitude):
    def change(c):
        c.encoder.geometry, c.encoder.geometry_latitude = True, latitude

    small, geo, added = _grown(change)
    assert added == ["encoder.stem"]
    assert geo.encoder.stem.weight.shape[1] == 4 * (4 + (2 if latitude else 1))
    g = torch.Generator().manual_seed(1)
    ldr = torch.rand(2, 3, 32, 32, generator=g)
    planes = torch.from_numpy(window_planes(0, 32, 32, 32, panorama=True).transpose(2, 0, 1).copy())
    planes = planes.expand(2, -1, -1, -1)
    latents = [0.5 * torch.randn(s, generator=g) for s in small.latent_shapes(2, 32, 32)]
    with torch.no_grad():
        torch.testing.assert_close(geo(torch.cat([ldr, planes], 1), *latents), small(ldr, *latents),
                                   rtol=1e-5, atol=1e-5)
    # not dead inputs: the stem's weights for the planes get a gradient at once
    sum(f.square().sum() for f in geo.encoder(ldr, planes)).backward()
    assert geo.encoder.stem.weight.grad[:, 4 * 4:].abs().sum() > 0
    with pytest.raises(ValueError, match="geometry planes"):
        geo.encoder(ldr)
    if not latitude:  # the flag alone: the graph still takes the latitude plane, and ignores it
        other = planes.clone()
        other[:, 1] = -other[:, 1]
        with torch.no_grad():
            torch.testing.assert_close(geo.encoder(ldr, other), geo.encoder(ldr, planes))
