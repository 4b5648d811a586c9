"""Benchmark: the twin's descents of different starts one after another in this
process, against side by side on worker processes (TwinPool.refine_many), as predict's
search over structures runs them.

    python bench/twin_workers.py                 # 4 pictures × 8 starts, 1 and 2 workers
    python bench/twin_workers.py --workers 1 2 4 --targets 8

Each target: a refs-like picture (sampling.sample_refs_like, seed --seed; noise,
dither and CRT off) and --starts starts with its discrete choices and every number
×U(1 ± --jitter) (what a short search leaves, as predict has 8 structures' fits of
one picture); all of a target's starts get the twin's wide descent for --seconds
on the target at 256² in one call of TwinPool.refine_many, once per number of
workers. Reported: the wall time of those calls and the NCC of √grey (σ 1 px at
256², renderer.scene) of the starts and of the descents' ends. A descent is bound
by its own clock, so the same NCC in less wall time is the gain.

Writes bench/results/twin-workers.md (with the command line).
"""

from __future__ import annotations

import datetime
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from art_explorer import cli
from art_explorer.predict.pool import TwinPool
from art_explorer.scene import sampling
from art_explorer.scoring import metrics
from renderer import scene


@dataclass
class Args:
    """Options of bench/twin_workers.py."""

    targets: int = 4
    """pictures"""
    starts: int = 8
    """starts per picture"""
    seconds: float = 3.0
    """wide descent, s"""
    jitter: float = 0.3
    """start = truth ×U(1 ± this)"""
    workers: list[int] = field(default_factory=lambda: [1, 2])
    """twin worker processes: a row for each"""
    seed: int = 7
    """draw RNG seed"""
    out: str = "bench/results/twin-workers.md"
    """markdown results"""
    quick: bool = False
    """accepted for make bench (which passes it to every bench); no effect"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


def draws(
    n: int, starts: int, seed: int, jitter: float
) -> list[tuple[list[dict], np.ndarray]]:
    """(starts, target at 256²) for n refs-like pictures that are not black."""
    rng = random.Random(seed)
    jit = (1 - jitter, 1 + jitter)
    out = []
    while len(out) < n:
        truth = sampling.sample_refs_like(rng)
        truth.update(noiseEnabled=False, ditherEnabled=False, crtEnabled=False)
        target = scene.render(truth, 256).astype(np.float32) / 255
        if target.max() < 2 / 255:
            continue
        out.append(
            (
                [
                    sampling.breed([truth], rng, p_two=0, p_copy=1, jitter=jit)
                    for _ in range(starts)
                ],
                target,
            )
        )
    return out


def ncc(params: dict, target: np.ndarray) -> float:
    return metrics.ncc(scene.render(params, 256) / 255, target, 1.0)


def main(args: Args) -> list[dict[str, float]]:
    cases = draws(args.targets, args.starts, args.seed, args.jitter)
    before = statistics.mean(ncc(s, t) for ss, t in cases for s in ss)
    rows = []
    for w in args.workers:
        with TwinPool(w) as pool:
            pool.refine_many([(cases[0][0][0], 0.1, 0.0)] * w, cases[0][1])  # start
            wall, after = 0.0, []
            for starts, target in cases:
                t0 = time.perf_counter()
                ends = pool.refine_many(
                    [(s, args.seconds, 0.0) for s in starts], target
                )
                wall += time.perf_counter() - t0
                after += [ncc(p, target) for p in ends]
        rows.append(
            {"workers": w, "wall": wall / len(cases), "after": statistics.mean(after)}
        )
        print(
            f"{w} worker(s): {wall / len(cases):.1f} s per picture, NCC {before:.3f} "
            f"→ {rows[-1]['after']:.3f}",
            flush=True,
        )
    load = os.getloadavg()
    cmd = " ".join(["python bench/twin_workers.py", *sys.argv[1:]])
    lines = [
        "# Twin descents side by side (TwinPool.refine_many)",
        "",
        f"`{cmd}` ({datetime.date.today()}, {platform.node() or 'this machine'}, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}).",
        "",
        f"{args.targets} refs-like pictures (seed {args.seed}), {args.starts} starts "
        f"each ×U(1 ± {args.jitter:g}), a wide descent of {args.seconds:g} s each on "
        f"the target at 256²; NCC (σ 1 px, 256²) of the starts: {before:.3f}.",
        "",
        "| workers | wall time per picture, s | NCC after (mean) |",
        "|---|---|---|",
        *[f"| {r['workers']} | {r['wall']:.1f} | {r['after']:.3f} |" for r in rows],
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main(parse_args())
