"""Calibrate the picture score: does it call the same picture the same, and rank the
right picture above a wrong one?

    python bench/picture_score.py            # curated-like pairs → SAME_PICTURE, sheet
    python bench/picture_score.py --targets 3 --sheet /tmp/s.png --out /tmp/s.md  # smoke
    python bench/picture_score.py --mode refs   # refs-like: near truth vs wrong fits

Mode `curated` (issue 30): pairs of a target and a result that are the same picture
by construction (the curated-like draw's params with every number ×U(0.99, 1.01) or
×U(0.98, 1.02); golden2's `refs-like-NN`: the original's picture against ours of the
same params) or different (the layers redrawn or moved, another geometry, another
draw; a near miss that draws the target's picture pixel for pixel is dropped). For
each measure, the threshold that best separates them (balanced accuracy) and the
picture score's verdicts at structure.SAME_PICTURE; a sheet of 12 pairs it calls the
same and 12 it calls different, to count by eye (`--by-eye` writes the count).

Mode `refs`: for each target (a refs-like draw, pretrain.draw_target):

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

import copy
import datetime
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import atomic, cli, utils
from art_explorer.predict.cmaes import cma_search
from art_explorer.predict.loss import ImageLoss
from art_explorer.predict.space import SearchSpace
from art_explorer.scene import sampling, schema, structure
from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics
from art_explorer.training import pretrain

GOLDEN2 = utils.ROOT.parent / "shared" / "golden2"
Measure = Callable[[np.ndarray, np.ndarray], float]
MEASURES: dict[str, Measure] = {
    "ncc √ σ2 (today)": lambda a, b: metrics.ncc(a, b),
    "ncc √ σ0.5": lambda a, b: metrics.ncc(a, b, 0.5),
    "sharp ncc σ0.5": structure.sharp_ncc,
    "orientation σ1": lambda a, b: structure.orientation_ncc(a, b, 1.0),
    "orientation σ1.5": lambda a, b: structure.orientation_ncc(a, b, 1.5),
    "orientation σ2": lambda a, b: structure.orientation_ncc(a, b, 2.0),
    "line F1": lambda a, b: metrics.line_f1(a, b),
    "picture score": structure.picture_score,
    "mean(sharp, orient σ2, F1) (before)": lambda a, b: float(
        np.mean(
            [
                structure.sharp_ncc(a, b),
                structure.orientation_ncc(a, b, 2.0),
                metrics.line_f1(a, b),
            ]
        )
    ),
}

# The measures the curated mode compares (the rest add little and cost time).
CURATED_MEASURES = (
    "ncc √ σ2 (today)",
    "sharp ncc σ0.5",
    "orientation σ1.5",
    "orientation σ2",
    "line F1",
    "picture score",
    "mean(sharp, orient σ2, F1) (before)",
)


@dataclass
class Args:
    """Options of bench/picture_score.py."""

    mode: Literal["curated", "refs"] = "curated"
    """curated: same/different curated-like pairs; refs: near truth vs wrong fits"""
    targets: int = 40
    """curated-like targets"""
    golden: str = str(GOLDEN2)
    """golden set 2 folder"""
    sheet: str = "bench/results/picture-score-sheet.png"
    """curated mode: the sheet of verdicts"""
    by_eye: str = ""
    """curated mode: the by-eye count"""
    quick: bool = False
    """3 targets, 1 wrong geometry, 8 renders"""
    n: int = 12
    """refs-like targets"""
    wrong: int = 2
    """wrong geometries per target (hardest)"""
    near: int = 2
    """near-truth draws per target"""
    fit_renders: int = 24
    """CMA-ES renders per fit"""
    keep: int = 4
    """best fit candidates scored"""
    seed: int = 7
    """target seed"""
    rows: str = ""
    """bench/inverse.py rows: their wrong-geometry results as the wrong fits"""
    out: str = ""
    """results file ('': bench/results/picture-score.md; -refs.md in mode refs)"""

    def __post_init__(self) -> None:
        if not self.out:
            suffix = "" if self.mode == "curated" else "-refs"
            self.out = f"bench/results/picture-score{suffix}.md"
        if self.quick:
            self.n, self.wrong, self.fit_renders, self.keep = 3, 1, 8, 2


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


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
    args: Args,
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


def main(args: Args) -> dict[str, Any]:
    if args.mode == "curated":
        return main_curated(args)
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
        truth, _ = pretrain.draw_target(rng, 128)
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
    args: Args,
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
- picture score = √(max(orientation NCC σ 2, 0) · line F1) (structure.py); same
  picture when ≥ {structure.SAME_PICTURE}. Before issue 30 it was the mean of sharp
  NCC σ 0.5 linear, orientation NCC σ 2 and line F1 (the row marked "before").

{table}
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic.atomic_write_text(args.out, text)
    print(table)
    return {"wins": {m: float(np.mean(w)) for m, w in wins.items()}}


# ----------------------------------------------------------------------------------
# Curated-like pairs: is it the same picture? (issue 30, deliverable 5)


@dataclass
class Pair:
    """A target picture, a result picture, and whether they are the same picture by
    construction (`same`) and how the result was made (`how`)."""

    name: str
    how: str
    same: bool
    target: np.ndarray  # (256, 256, 3) in [0, 1]
    result: np.ndarray  # (256, 256, 3) in [0, 1]


def draw_curated(rng: random.Random, r: structure.LocalRenderer) -> dict[str, Any]:
    """A curated-like draw whose picture shows something and is not a wash."""
    while True:
        p = schema.validate_params(sampling.sample_curated_like(rng))
        img = r.render(p, 128)
        lit = float((img.max(-1) >= pretrain.LIT_LEVEL / 255).mean())
        if pretrain.MIN_LIT <= lit <= pretrain.MAX_LIT:
            return p


def layers_redrawn(p: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A predict-like near miss: the same chain (geometry, factors, progressions,
    overrides), each layer placed by another rotation, position and scale (a scene
    without layers gets one)."""
    out = copy.deepcopy(p)
    if not out["layers"]:
        out["layers"] = [sampling.curated_layer(rng)]
    for layer in out["layers"]:
        fresh = sampling.curated_layer(rng)
        for key in schema.LAYER_REQUIRED:
            layer[key] = fresh[key]
    return out


def layers_moved(p: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A closer near miss: each layer turned by ±U(0.3, 0.8) rad, moved by ±U(0.2,
    0.5) per axis and its scale axes ×U(0.5, 0.8) or ×U(1.25, 2) (no layers: the
    chain's rotationFactor and stepFactor moved instead)."""

    def away(lo: float, hi: float) -> float:
        return rng.choice((-1, 1)) * rng.uniform(lo, hi)

    out = copy.deepcopy(p)
    if not out["layers"]:
        out["rotationFactor"] = max(
            -1.0, min(1.0, p["rotationFactor"] + away(0.2, 0.4))
        )
        out["stepFactor"] = min(2.0, p["stepFactor"] * rng.uniform(1.5, 2.0))
        return out
    for layer in out["layers"]:
        layer["rotation"] = schema.wrap_angle(layer["rotation"] + away(0.3, 0.8))
        pos, sc = layer["position"], layer["scale"]
        layer["position"] = {
            k: max(-2.0, min(2.0, pos[k] + away(0.2, 0.5))) for k in ("x", "y")
        }
        layer["scale"] = {
            k: max(
                -2.0,
                min(
                    2.0,
                    sc[k] * rng.choice((rng.uniform(0.5, 0.8), rng.uniform(1.25, 2.0))),
                ),
            )
            for k in ("x", "y")
        }
    return out


def other_geometry(p: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The same params with another geometry for the base chain."""
    others = [g for g in schema.GEOMETRIES if g != p["geometry"]]
    return structure.with_choice(p, "geometry", rng.choice(others))


def curated_pairs(n: int, seed: int, r: structure.LocalRenderer) -> list[Pair]:
    """Per curated-like target: two "same" results (every number ×U(0.99, 1.01) and
    ×U(0.98, 1.02)) and four "different" ones (layers redrawn, layers moved, another
    geometry, the next target's picture). All at 256²."""
    rng = random.Random(seed)
    truths = [draw_curated(rng, r) for _ in range(n)]
    images = [r.render(p, 256) for p in truths]
    pairs: list[Pair] = []
    for i, (p, img) in enumerate(zip(truths, images, strict=True)):
        name = f"curated-{i:02d}"

        def add(how: str, same: bool, result: np.ndarray) -> None:
            pairs.append(Pair(name, how, same, img, result))  # noqa: B023

        for j in (0.01, 0.02):
            near = sampling.breed([p], rng, p_two=0, p_copy=1, jitter=(1 - j, 1 + j))
            add(f"jitter {j:.0%}", True, r.render(near, 256))
        add("layers redrawn", False, r.render(layers_redrawn(p, rng), 256))
        add("layers moved", False, r.render(layers_moved(p, rng), 256))
        add("other geometry", False, r.render(other_geometry(p, rng), 256))
        add("other draw", False, images[(i + 1) % n])
    return pairs


def golden2_pairs(folder: Path, r: structure.LocalRenderer) -> list[Pair]:
    """The original's picture of each golden2 `refs-like-NN` case (target) and ours
    of the same params (result): "same" by construction."""
    import json

    names = (folder / "names.txt").read_text(encoding="utf-8").splitlines()
    cases = (folder / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    out = []
    for i, (name, case) in enumerate(zip(names, cases, strict=True)):
        if not name.startswith("refs-like-"):
            continue
        target = utils.png_to_array((folder / f"{i:02d}-256.png").read_bytes())
        ours = r.render(schema.validate_params(json.loads(case)), 256)
        out.append(Pair(name, "original vs ours", True, target, ours))
    return out


def drawn_alike(a: np.ndarray, b: np.ndarray) -> bool:
    """The same picture pixel for pixel (within 2 of 255 everywhere)."""
    return float(np.abs(a - b).max()) <= 2 / 255


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(balanced accuracy, threshold) of the cut `score ≥ t` that best separates the
    same pairs from the different ones."""
    best = (0.0, 0.0)
    for t in np.unique(scores):
        ba = balanced_accuracy(scores >= t, same)
        if ba > best[0]:
            best = (ba, float(t))
    return best


def balanced_accuracy(called_same: np.ndarray, same: np.ndarray) -> float:
    """Mean of the share of same pairs called same and different ones called
    different (each 0.5 when a side is empty)."""
    hit = called_same[same].mean() if same.any() else 0.5
    reject = (~called_same[~same]).mean() if (~same).any() else 0.5
    return float((hit + reject) / 2)


def main_curated(args: Args) -> dict[str, Any]:
    """Curated mode: score every pair by every measure, write the table and the
    sheet; returns {"ba": {measure: balanced accuracy at its best threshold},
    "verdicts": [(how, same, score)]}."""
    import torch

    torch.set_num_threads(1)  # small blurs: threads cost more than they give
    t0 = time.time()
    r = structure.LocalRenderer()
    pairs = curated_pairs(args.targets, args.seed, r)
    golden = golden2_pairs(Path(args.golden), r) if Path(args.golden).is_dir() else []
    pairs += golden
    kept = [q for q in pairs if q.same or not drawn_alike(q.result, q.target)]
    dropped = len(pairs) - len(kept)
    print(f"{len(kept)} pairs ({dropped} near misses dropped) {time.time() - t0:.0f} s")
    measures = {m: f for m, f in MEASURES.items() if m in CURATED_MEASURES}
    scores = {
        m: np.array([f(q.result, q.target) for q in kept]) for m, f in measures.items()
    }
    same = np.array([q.same for q in kept])
    curated = np.array([q.name.startswith("curated") for q in kept])
    rows = [
        "| measure | best threshold (curated pairs) | balanced accuracy there "
        "| same pairs p10 | different pairs p90 |",
        "|---|---|---|---|---|",
    ]
    ba: dict[str, float] = {}
    for m, xs in scores.items():
        ba[m], t = best_threshold(xs[curated], same[curated])
        rows.append(
            f"| {m} | {t:.3f} | {ba[m]:.1%} | {np.percentile(xs[same], 10):.3f} "
            f"| {np.percentile(xs[~same], 90) if (~same).any() else math.nan:.3f} |"
        )
    pic = scores["picture score"]
    called = pic >= structure.SAME_PICTURE
    groups = [
        "| pairs | same by construction | n | picture score median | called same |"
    ]
    groups.append("|---|---|---|---|---|")
    for how in dict.fromkeys(q.how for q in kept):
        sel = np.array([q.how == how for q in kept])
        groups.append(
            f"| {how} | {'yes' if same[sel][0] else 'no'} | {int(sel.sum())} "
            f"| {np.median(pic[sel]):.3f} | {called[sel].mean():.0%} |"
        )
    write_sheet(args.sheet, kept, pic, called, args.seed)
    cmd = " ".join(["python", "bench/picture_score.py", *sys.argv[1:]])
    text = f"""# Picture score calibration on curated-like pairs

- date: {datetime.date.today().isoformat()}
- command: `{cmd}` ({time.time() - t0:.0f} s)
- {args.targets} curated-like targets (sampling.sample_curated_like, seed {args.seed},
  redrawn while nearly empty or washed out) and {len(golden)} of golden2's
  `refs-like-NN` pictures by the original against ours; {dropped} near misses that drew the target pixel for
  pixel dropped; all at 256².
- picture score = √(max(orientation NCC σ 2, 0) · line F1) (structure.py); same
  picture when ≥ {structure.SAME_PICTURE}: balanced accuracy
  {balanced_accuracy(called[curated], same[curated]):.1%} on the curated pairs,
  {balanced_accuracy(called, same):.1%} on all.
- sheet: {args.sheet} (12 pairs it calls the same, then 12 it calls different; each
  pair target | result). By eye: {args.by_eye or "not counted yet"}.

{chr(10).join(rows)}

{chr(10).join(groups)}
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic.atomic_write_text(args.out, text)
    print(text)
    verdicts = [(q.how, q.same, float(s)) for q, s in zip(kept, pic, strict=True)]
    return {"ba": ba, "verdicts": verdicts}


def write_sheet(
    path: str, pairs: list[Pair], pic: np.ndarray, called: np.ndarray, seed: int
) -> None:
    """Up to 12 pairs called the same and 12 called different (a seeded sample),
    each as target | result, captioned with its number, how it was made and score."""
    rng = random.Random(seed)
    chosen: list[int] = []
    for verdict in (True, False):
        idx = [i for i in range(len(pairs)) if bool(called[i]) == verdict]
        chosen += sorted(rng.sample(idx, min(12, len(idx))))
    images, labels = [], []
    for k, i in enumerate(chosen):
        q = pairs[i]
        verdict = "SAME" if called[i] else "DIFF"
        images += [q.target, q.result]
        labels += [f"{k + 1} target {q.name}", f"{verdict} {pic[i]:.2f} {q.how}"]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    utils.contact_sheet(images, labels, cols=8, cell=160).save(path)


if __name__ == "__main__":
    main(parse_args())
