"""art_explorer/predict/pool.py: twin descents side by side in worker processes the
caller owns."""

from __future__ import annotations

import os
import signal

import numpy as np

from art_explorer.predict.pool import TwinPool, twin_workers
from art_explorer.scene import schema
from art_explorer.scoring import metrics
from renderer import scene


def _chain_of_six() -> dict:
    """Six rounded rectangles in a row, far apart, no post-passes: a chain whose step
    a search can get wrong in length and direction."""
    truth = schema.default_params()
    truth.update(noiseEnabled=False, ditherEnabled=False, crtEnabled=False)
    truth.update(repetitions=6, stepFactor=0.5, xStep=1.4, yStep=0.0, layers=[])
    truth.update(geometry="roundedRect", scale=1.2)
    return truth


def test_descents_run_side_by_side_in_worker_processes() -> None:
    """refine_many runs each start's descent in a worker process (started once, then
    kept until the pool closes) and returns each one's end in the order given, as
    twin_refine would: the misplaced chain moved towards the target's place, the
    right start kept on it, each with its own discrete choices. With one worker it
    runs here, starting no process."""
    truth = _chain_of_six()
    misplaced = {**truth, "stepFactor": 0.35, "xStep": 1.1, "yStep": 0.4}
    squares = {**misplaced, "geometry": "square"}
    t256 = scene.render(truth, 256).astype(np.float64) / 255

    def ncc(p: dict) -> float:
        return metrics.ncc(scene.render(p, 256) / 255, t256, 1.0)

    with TwinPool(1) as one:
        here = one.refine_many([(truth, 0.0, 0.3)] * 2, t256)
        assert one._executor is None and ncc(here[0]) >= 0.97
    jobs = [(misplaced, 3.0, 1.0), (truth, 0.0, 1.0), (squares, 1.0, 0.0)]
    with TwinPool(2) as pool:
        found = pool.refine_many(jobs, t256)
        started = pool._executor
        assert started is not None
        assert pool.refine_many(jobs[1:], t256) and pool._executor is started
    assert pool._executor is None  # closed with the block
    assert ncc(found[0]) > ncc(misplaced) + 0.2, (ncc(misplaced), ncc(found[0]))
    assert ncc(found[1]) >= 0.97
    assert [p["geometry"] for p in found] == ["roundedRect"] * 2 + ["square"]


def test_descents_run_here_when_a_worker_dies() -> None:
    """A worker process that dies (killed, out of memory) breaks the pool: the
    descents run in this process instead, the failure is logged, and the next call
    starts new workers."""
    truth = _chain_of_six()
    t256 = scene.render(truth, 256).astype(np.float64) / 255
    with TwinPool(2) as pool:
        pool.refine_many([(truth, 0.0, 0.2)] * 2, t256)
        assert pool._executor is not None
        for pid in list(pool._executor._processes):
            os.kill(pid, signal.SIGKILL)
        lines: list[str] = []
        found = pool.refine_many([(truth, 0.0, 0.2)] * 2, t256, lines.append)
        assert [p["geometry"] for p in found] == ["roundedRect"] * 2
        assert any("worker processes failed" in s for s in lines), lines
        assert pool._executor is None
        pool.refine_many([(truth, 0.0, 0.2)] * 2, t256)
        assert pool._executor is not None


def test_workers_default_to_one_per_core_up_to_four() -> None:
    assert twin_workers(3) == 3
    assert twin_workers(0) == max(1, min(4, os.cpu_count() or 1))
