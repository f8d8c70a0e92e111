"""Training batches, one per step, drawn ahead by worker processes when a GPU would otherwise wait.

Synthesising a batch (crops, perspective views, camera curves, JPEG) is numpy work on the CPU:
~20 ms for 8 patches of 64 px, ~400 ms for 16 of 256 px. The compact model's GPU step on the
latter took ~0.2 s (H200), so on a GPU the sampler, not the model, sets the pace unless several
processes draw batches ahead.

Every batch comes from its own generator seeded with (seed, rank, step): the data a step sees
depends on nothing else, so runs are reproducible and resumable whatever the number of workers,
and no sampler state has to be checkpointed.
"""
from __future__ import annotations

import multiprocessing as mp
import sys
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from .data import PatchSampler

_worker_sampler: PatchSampler | None = None  # set in each worker process by _init_worker


def draw(sampler: PatchSampler, seed: int, rank: int, step: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The (LDR, target) batch of ``step``: a pure function of its arguments."""
    return sampler.batch(np.random.default_rng([seed, rank, step]), n)


def _init_worker(sampler: PatchSampler) -> None:
    global _worker_sampler
    _worker_sampler = sampler


def _draw_in_worker(seed: int, rank: int, step: int, n: int):
    return draw(_worker_sampler, seed, rank, step, n)


class BatchStream:
    """``get(step)`` returns that step's batch; with ``workers`` > 0 the next ``ahead`` steps are
    already being drawn in a process pool (fork where available, so the images are shared, not
    copied). Steps must be asked for in increasing order, as the training loop does."""

    def __init__(self, sampler: PatchSampler, batch: int, seed: int, rank: int = 0, workers: int = 0,
                 ahead: int | None = None):
        self.sampler, self.batch, self.seed, self.rank = sampler, batch, seed, rank
        self.workers = max(0, int(workers))
        self.ahead = ahead if ahead is not None else 2 * self.workers
        self._pending: dict[int, Future] = {}
        self._pool = None
        if self.workers:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context(method),
                                             initializer=_init_worker, initargs=(sampler,))

    def get(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        if self._pool is None:
            return draw(self.sampler, self.seed, self.rank, step, self.batch)
        for s in list(self._pending):
            if s < step:  # jumped over (the training loop never skips a step; callers may)
                del self._pending[s]
        for s in range(step, step + self.ahead + 1):
            if s not in self._pending:
                self._pending[s] = self._pool.submit(_draw_in_worker, self.seed, self.rank, s, self.batch)
        return self._pending.pop(step).result()

    def close(self) -> None:
        """Cancel the batches not yet started and wait for the workers to exit. (A
        multiprocessing.Pool's terminate() could hang here for good: its task thread blocked on
        the queue lock of workers it had just killed.)"""
        if self._pool is not None:
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
