"""Training batches are a pure function of (seed, rank, step), whoever draws them."""
import numpy as np

from training.batches import BatchStream
from training.data import HDRImage, PatchConfig, PatchSampler


def _sampler():
    rng = np.random.default_rng(0)
    images = [HDRImage(f"im{i}", (rng.random((96, 192, 3)) ** 4 * 20).astype(np.float32), panorama=i == 0)
              for i in range(3)]
    return PatchSampler(images, PatchConfig(patch=32))


def test_workers_draw_the_same_batches_as_the_main_process():
    sampler = _sampler()
    with BatchStream(sampler, 3, seed=5) as inline, BatchStream(sampler, 3, seed=5, workers=2) as pool:
        for step in (0, 1, 2, 7, 8):  # a jump, as after --resume
            a, b = inline.get(step), pool.get(step)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def test_steps_and_ranks_draw_different_batches():
    sampler = _sampler()
    with BatchStream(sampler, 3, seed=5) as r0, BatchStream(sampler, 3, seed=5, rank=1) as r1:
        assert not np.array_equal(r0.get(0)[1], r0.get(1)[1])
        assert not np.array_equal(r0.get(4)[1], r1.get(4)[1])
