"""Twin descents side by side: a pool of worker processes the caller owns.

A step of the twin is bound by the cost of its many small tensor operations (a 64²
step of a one-chain draw: hundreds of them), not by arithmetic, so a second torch
thread does not speed it up (bench/results/twin.md) and Python threads share one
interpreter lock; a second process does: 8 wide descents of 3 s for one picture take
23.0 s one after another and 11.6 s on 2 workers, ending at the same NCC
(bench/results/twin-workers.md). So descents of different starts run in worker
processes, one per core, while the search waits.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import multiprocessing
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from art_explorer.predict import descent
from art_explorer.predict.budget import Log
from art_explorer.scene import schema


def twin_workers(requested: int = 0) -> int:
    """Processes for side-by-side twin descents: `requested`, or with 0 one per core
    (os.cpu_count(), up to 4)."""
    return requested if requested > 0 else max(1, min(4, os.cpu_count() or 1))


def _worker_start() -> None:
    torch.set_num_threads(1)
    from art_explorer.scene import twin

    twin.render_params(schema.default_params(), 32)


def _refine_job(
    start: dict[str, Any], wide_s: float, fine_s: float, target: np.ndarray
) -> tuple[dict[str, Any], int]:
    """twin_refine in a worker; also how many pictures the twin refused there."""
    refusals = descent.Refusals()
    found = descent.twin_refine(
        None, start, wide_s, fine_s, None, target, refusals=refusals
    )
    return found, refusals.count


def _result_or_start(
    future: concurrent.futures.Future[tuple[dict[str, Any], int]],
    job: tuple[dict[str, Any], float, float],
    log: Log | None,
) -> tuple[dict[str, Any], int]:
    """A worker's descent, or its start when the descent failed (logged): one
    failing descent does not end the search."""
    try:
        return future.result()
    except concurrent.futures.process.BrokenProcessPool:
        raise
    except Exception as e:  # any failure of one descent
        if log is not None:
            log(f"    twin: a descent failed ({type(e).__name__}); its start is kept")
        return job[0], 0


class TwinPool:
    """`workers` processes for side-by-side twin descents, started on first need (in
    the background: each imports torch and draws one small picture, about 3 s) and
    stopped by `close` or at the end of a `with` block. With one worker, or when the
    processes cannot be started or fail, the descents run in this process, one after
    another (the failure is logged). `refusals` counts the pictures the twin refused
    as too big in its descents, here and in the workers."""

    def __init__(self, workers: int, log: Log | None = None) -> None:
        self.workers, self.log = workers, log
        self.refusals = descent.Refusals()
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._failed = False

    @property
    def refused(self) -> int:
        """Pictures the twin refused as too big in this pool's descents."""
        return self.refusals.count

    def __enter__(self) -> TwinPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops the worker processes (waits for them)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _processes(self) -> concurrent.futures.ProcessPoolExecutor | None:
        if self._executor is None and self.workers > 1 and not self._failed:
            try:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_start,
                )
            except (OSError, ValueError) as e:
                self._failed = True
                self._say(f"    twin: descents run one after another ({e})")
        return self._executor

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def start(self) -> None:
        """Starts the worker processes now, so that they are ready by the first
        side-by-side descents (nothing with one worker)."""
        ex = self._processes()
        if ex is not None:
            for _ in range(self.workers):
                ex.submit(time.sleep, 0)

    def refine_many(
        self,
        jobs: Sequence[tuple[dict[str, Any], float, float]],
        target: np.ndarray,
        log: Log | None = None,
    ) -> list[dict[str, Any]]:
        """twin_refine(start, wide_s, fine_s) on `target` of each job, side by side
        on the workers (here, one after another, with one job). Each descent keeps
        its own seconds, so n jobs of s seconds take about ⌈n / workers⌉ · s."""
        ex = self._processes() if len(jobs) > 1 else None
        if ex is not None:
            try:
                futures = [ex.submit(_refine_job, *job, target) for job in jobs]
                done = [
                    _result_or_start(f, job, log)
                    for f, job in zip(futures, jobs, strict=True)
                ]
            except concurrent.futures.process.BrokenProcessPool as e:
                if log is not None:
                    log(f"    twin: worker processes failed ({e}); descents run here")
                ex.shutdown(wait=False, cancel_futures=True)
                self._executor = None
            else:
                self.refusals.count += sum(n for _, n in done)
                return [p for p, _ in done]
        return [
            descent.twin_refine(None, s, w, f, log, target, refusals=self.refusals)
            for s, w, f in jobs
        ]
