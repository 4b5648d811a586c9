"""Calibrate the picture score: does it rank the right picture above a wrong one?

    python bench/picture_score.py            # 20 refs-like targets, 3 wrong geometries
    python bench/picture_score.py --n 4 --wrong 1 --fit-renders 12   # smoke

For each target (a refs-like draw, pretrain_inverse.draw_target):

- near-truth: the true params with every number ×U(0.99, 1.01), discrete choices
  kept (`--near` draws);
- wrong-geometry fits: the true params with each other geometry are rendered, and the
  `--wrong` that NCC(√grey, σ = 2 px) likes best (the hardest to tell apart) have
  every other value fitted by CMA-ES (σ0 0.1 from the true values, `--fit-renders`
  renders at 128²) to minimise 1 − NCC σ 2, the measure today's search optimises.
  The best `--keep` candidates are rendered at 256² and, for each measure, the one
  it likes best is that measure's wrong fit (the strongest wrong answer it is shown).

With `--rows bench/results/inverse-rows.jsonl`, the wrong fits are instead the
results of bench/inverse.py's searches (500 renders each: CMA-ES, today's pipeline,
...) whose geometry is wrong, the strongest adversaries there are, each against
near-truth draws of its own target.

A measure is right on a (near-truth, wrong fit) pair of the same target when it
scores the near-truth higher. Writes bench/results/picture-score.md: per measure the
share of pairs ranked right, and the 10th percentile of near-truth scores (where
structure.SAME_PICTURE comes from).
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pretrain_inverse
from art_explorer import atomic
from art_explorer.predict.cmaes import cma_search
from art_explorer.predict.loss import ImageLoss
from art_explorer.predict.space import SearchSpace
from art_explorer.scene import sampling, schema, structure
from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics

Measure = Callable[[np.ndarray, np.ndarray], float]
MEASURES: dict[str, Measure] = {
    "ncc √ σ2 (today)": lambda a, b: metrics.ncc(a, b),
    "ncc √ σ0.5": lambda a, b: metrics.ncc(a, b, 0.5),
    "sharp ncc σ0.5": structure.sharp_ncc,
    "orientation σ1": lambda a, b: structure.orientation_ncc(a, b, 1.0),
    "orientation σ2": structure.orientation_ncc,
    "line F1": lambda a, b: metrics.line_f1(a, b),
    "picture score": structure.picture_score,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="3 targets, 1 wrong geometry, 8 renders"
    )
    ap.add_argument("--n", type=int, default=12, help="refs-like targets")
    ap.add_argument(
        "--wrong", type=int, default=2, help="wrong geometries per target (hardest)"
    )
    ap.add_argument("--near", type=int, default=2, help="near-truth draws per target")
    ap.add_argument(
        "--fit-renders", type=int, default=24, help="CMA-ES renders per fit"
    )
    ap.add_argument("--keep", type=int, default=4, help="best fit candidates scored")
    ap.add_argument("--seed", type=int, default=7, help="target seed")
    ap.add_argument(
        "--rows",
        default="",
        help="bench/inverse.py rows: their wrong-geometry results as the wrong fits",
    )
    ap.add_argument(
        "--out", default="bench/results/picture-score.md", help="results file"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.wrong, args.fit_renders, args.keep = 3, 1, 8, 2
    return args


class Recorder:
    """A budget.Evaluator stand-in: renders in-process, records every candidate."""

    def __init__(
        self, render: Callable[[dict[str, Any]], np.ndarray], loss: Any, budget: int
    ) -> None:
        self.render, self.loss, self.budget = render, loss, budget
        self.seen: list[tuple[float, dict[str, Any]]] = []

    @property
    def left(self) -> int:
        return self.budget - len(self.seen)

    def __call__(self, params_list: list[dict[str, Any]]) -> list[float]:
        out = []
        for p in params_list:
            if self.left <= 0:
                out.append(math.inf)
                continue
            img = self.render(p)
            lo = float(self.loss(to_tensor(img[None]))[0])
            self.seen.append((lo, p))
            out.append(lo)
        return out


def wrong_fit(
    truth: dict[str, Any],
    geometry: str,
    target128: np.ndarray,
    args: argparse.Namespace,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """The best `args.keep` params with `geometry`, fitted to the target by NCC σ 2."""
    r = structure.LocalRenderer()
    start = structure.with_choice(truth, "geometry", geometry)
    for layer in start["layers"]:
        layer.pop("geometry", None)
    space = SearchSpace.of(start)
    rec = Recorder(
        lambda p: r.render(p, 128),
        ImageLoss(target128, sigmas=(2.0,)),
        args.fit_renders,
    )
    cma_search(
        space,
        rec,  # type: ignore[arg-type]
        space.encode(start),
        0.1,
        args.fit_renders,
        rng.randrange(1000),
    )
    rec([start])
    return [p for _, p in sorted(rec.seen, key=lambda t: t[0])[: args.keep]]


def cases_from_rows(
    path: str, near: int, r: structure.LocalRenderer
) -> list[tuple[str, np.ndarray, list[np.ndarray], list[list[np.ndarray]]]]:
    """(name, target 256², near-truth renders, [[wrong result]]) per target of the
    rows that has a result with a wrong geometry."""
    import json

    by_target: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "truth" not in row or row["method"] == "near-truth":
            continue
        truth, wrong = by_target.setdefault(row["target"], (row["truth"], []))
        if row["params"]["geometry"] != truth["geometry"]:
            wrong.append(row["params"])
    out = []
    for name, (truth, wrong) in sorted(by_target.items()):
        if not wrong:
            continue
        rng = random.Random(name)
        t256 = r.render(truth, 256)
        nears = [
            r.render(
                sampling.breed([truth], rng, p_two=0, p_copy=1, jitter=(0.99, 1.01)),
                256,
            )
            for _ in range(near)
        ]
        out.append((name, t256, nears, [[r.render(p, 256)] for p in wrong]))
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    r = structure.LocalRenderer()
    t0 = time.time()
    wins: dict[str, list[bool]] = {m: [] for m in MEASURES}
    near_scores: dict[str, list[float]] = {m: [] for m in MEASURES}
    wrong_scores: dict[str, list[float]] = {m: [] for m in MEASURES}
    if args.rows:
        cases = cases_from_rows(args.rows, args.near, r)
        for name, t256, near, fits in cases:
            tally(t256, near, fits, wins, near_scores, wrong_scores)
            print(f"{name}: {len(fits)} wrong-geometry results", flush=True)
        return write(args, wins, near_scores, wrong_scores, t0)
    for i in range(args.n):
        rng = random.Random(args.seed * 100_003 + i)
        truth, _ = pretrain_inverse.draw_target(rng, 128)
        t256 = r.render(truth, 256)
        t128 = r.render(truth, 128)
        near = [
            r.render(
                sampling.breed([truth], rng, p_two=0, p_copy=1, jitter=(0.99, 1.01)),
                256,
            )
            for _ in range(args.near)
        ]
        others = [g for g in schema.GEOMETRIES if g != truth["geometry"]]
        swapped = {
            g: metrics.ncc(
                r.render(structure.with_choice(truth, "geometry", g), 128), t128
            )
            for g in others
        }
        hardest = sorted(others, key=lambda g: -swapped[g])[: args.wrong]
        fits = [
            [r.render(p, 256) for p in wrong_fit(truth, g, t128, args, rng)]
            for g in hardest
        ]
        tally(t256, near, fits, wins, near_scores, wrong_scores)
        print(
            f"target {i + 1}/{args.n} ({truth['geometry']}) {time.time() - t0:.0f} s: "
            + ", ".join(f"{m} {np.mean(w):.2f}" for m, w in wins.items()),
            flush=True,
        )
    return write(args, wins, near_scores, wrong_scores, t0)


def tally(
    t256: np.ndarray,
    near: list[np.ndarray],
    fits: list[list[np.ndarray]],
    wins: dict[str, list[bool]],
    near_scores: dict[str, list[float]],
    wrong_scores: dict[str, list[float]],
) -> None:
    """Score one target's near-truth renders and wrong fits by every measure."""
    for m, f in MEASURES.items():
        ns = [f(img, t256) for img in near]
        near_scores[m] += ns
        for cands in fits:
            best = max(f(img, t256) for img in cands)
            wrong_scores[m].append(best)
            wins[m] += [n > best for n in ns]


def write(
    args: argparse.Namespace,
    wins: dict[str, list[bool]],
    near_scores: dict[str, list[float]],
    wrong_scores: dict[str, list[float]],
    t0: float,
) -> dict[str, Any]:
    rows = [
        "| measure | pairs ranked right | near-truth p10 | near-truth mean "
        "| wrong-fit mean | wrong-fit p90 |",
        "|---|---|---|---|---|---|",
    ]
    for m in MEASURES:
        ns, ws = np.array(near_scores[m]), np.array(wrong_scores[m])
        rows.append(
            f"| {m} | {np.mean(wins[m]):.1%} ({len(wins[m])}) | {np.percentile(ns, 10):.3f} "
            f"| {ns.mean():.3f} | {ws.mean():.3f} | {np.percentile(ws, 90):.3f} |"
        )
    table = "\n".join(rows)
    cmd = " ".join(["python", "bench/picture_score.py", *sys.argv[1:]])
    text = f"""# Picture score calibration

- date: {datetime.date.today().isoformat()}
- command: `{cmd}` ({time.time() - t0:.0f} s)
- wrong fits: {("the wrong-geometry results in " + args.rows) if args.rows else "CMA-ES fits (below)"}
- {args.n} refs-like targets (seed {args.seed}); per target {args.near} near-truth
  draws (every number ×U(0.99, 1.01)) and the {args.wrong} wrong geometries NCC σ 2
  likes best, each fitted
  by CMA-ES ({args.fit_renders} renders at 128², NCC √ σ 2) with the best
  {args.keep} candidates offered to each measure; all scored at 256².
- picture score = mean(sharp NCC σ 0.5 linear, orientation NCC σ 2, line F1)
  (structure.py); same picture when ≥ {structure.SAME_PICTURE}.

{table}
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic.atomic_write_text(args.out, text)
    print(table)
    return {"wins": {m: float(np.mean(w)) for m, w in wins.items()}}


if __name__ == "__main__":
    main(parse_args())
