"""Benchmark: predict's inverse pipeline against blind search, at equal numbers of
real renders.

    python bench/inverse.py            # 30 held-out targets + the starter refs
    python bench/inverse.py --quick    # 3 targets + 2 refs, small budgets (CI)

Targets: params drawn like the pipeline draws them (sampling.sample_params from a seeded
RNG of its own, so not in data/), plus references/refs.jsonl. Methods, each given
the same number of renders of the real renderer:

- pipeline:   invert (inverse model, nearest training images, screening,
              discrete moves, gradient descent through the forward model, a polish
              by evolution with sparse mutations).
- cma:        CMA-ES alone from a random start: every continuous value, σ0 0.3 in
              [0, 1]-normalised space, discrete choices random, minimising 1 − NCC
              at the search size (evaluation.md's bar).
- cma-given:  the same with the true discrete choices given (a reference line).
- inverse:    the inverse model's guess alone (1 render).
- random:     random search (sampling.sample_params).
- polish-near-truth (an ablation): the pipeline's polish (evolve) alone,
              started from the true params with every number ×U(0.95, 1.05).
- near-truth: not a search: the true params with every number ×U(0.98, 1.02)
              (3 draws, mean score), the yardstick behind the NCC ≥ 0.85 mark.
- pipeline-twin (an ablation): the pipeline with its gradient stage through the
              differentiable twin (pipeline.invert use_twin, as predict does on the
              bundled renderer) in place of the forward model's.

    python bench/inverse.py --twin-near-truth --n-targets 20   # the twin's row

- twin-near-truth (its own run, --twin-near-truth): gradient descent through the
              differentiable twin (descent.twin_descent, --twin-seconds each) from
              the true discrete choices with every number ×U(0.9, 1.1); held-out
              draws without noise, dither or CRT (the twin draws none), drawn
              in-process by renderer.scene; NCC (σ = 1 px) at 256² before and after.
              Writes bench/results/inverse-twin.md.

Scores at 256² against the target: NCC and line F1 (evaluation.md), SSIM and PSNR
(reported, never optimised), the share of targets with NCC ≥ 0.85, renders and
seconds per target. Writes bench/results/inverse.md and an example sheet.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import platform
import random
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import atomic, cli, utils
from art_explorer.data import refs_io
from art_explorer.predict.budget import Candidate, Evaluator
from art_explorer.predict.cmaes import cma_search, random_search
from art_explorer.predict.colour import color_error, hue_error
from art_explorer.predict.descent import twin_descent
from art_explorer.predict.evolution import evolve
from art_explorer.predict.loss import (
    PIPELINE_BRIGHTNESS_WEIGHT,
    PIPELINE_F1_WEIGHT,
    PIPELINE_PICTURE_WEIGHT,
    PIPELINE_SIGMAS,
    ImageLoss,
    pipeline_loss,
)
from art_explorer.predict.models import load_models
from art_explorer.predict.options import PipelineOptions
from art_explorer.predict.pipeline import invert
from art_explorer.predict.pool import TwinPool, twin_workers
from art_explorer.predict.retrieval import RetrievalBank
from art_explorer.predict.space import SearchSpace
from art_explorer.predict.starts import inverse_candidates
from art_explorer.scene import encoding, rendering, sampling, structure
from art_explorer.scoring import metrics
from art_explorer.training import pretrain

METHODS = ("pipeline", "cma", "cma-given", "inverse", "random", "near-truth")
ABLATIONS = (
    "pipeline-today",
    "pipeline-no-retrieval",
    "pipeline-no-register",
    "pipeline-no-moves",
    "pipeline-no-gd",
    "polish-near-truth",
    "pipeline-twin",
)


DEFAULT_ROWS = "bench/results/inverse-rows.jsonl"


@dataclass
class Args:
    """Options of bench/inverse.py (--quick: 3 targets + 2 refs, budgets 30 100)."""

    quick: bool = False
    """3 targets + 2 refs, budgets 30/100"""
    n_targets: int = 30
    """held-out targets"""
    refs: str = "references/refs.jsonl"
    """refs added as targets ('' for none)"""
    max_refs: int = 16
    """at most this many refs"""
    seed: int = 20240611
    """target RNG seed"""
    target_set: Literal["refs-like", "coverage"] = "refs-like"
    """held-out draws: refs-like (sampling.sample_refs_like, what curated refs look
    like) or coverage (sampling.sample_params)"""
    budgets: list[int] = field(default_factory=list)
    """real-render budgets (none given: 50 200 500; --quick: 30 100)"""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """methods to run (ablations: pipeline-today pipeline-no-retrieval
    pipeline-no-register pipeline-no-moves pipeline-no-gd polish-near-truth
    pipeline-twin)"""
    size: int = 128
    """search render size"""
    data: list[str] = field(default_factory=lambda: ["data", "data/quality"])
    """training data folders for retrieval"""
    bank_res: int = 32
    """retrieval feature size, px"""
    forward: str | None = None
    """forward checkpoint (None: the default)"""
    inverse: str | None = None
    """inverse checkpoint (None: the default)"""
    gd_steps: int = 300
    """pipeline GD steps"""
    sigmas: list[float] = field(default_factory=lambda: list(PIPELINE_SIGMAS))
    """pipeline loss: NCC blur scales in px at 256²"""
    f1_weight: float = PIPELINE_F1_WEIGHT
    """pipeline loss: weight of line F1 beside the NCC terms"""
    brightness_weight: float = PIPELINE_BRIGHTNESS_WEIGHT
    """pipeline loss: weight of the mean-brightness gap"""
    set: list[str] = field(default_factory=list)
    """override a PipelineOptions field, KEY=VALUE, e.g. --set n_retrieve=16 (several
    after one --set, or --set repeated)"""
    twin_near_truth: bool = False
    """run only the twin's descent from the truth ±10%% (see above)"""
    twin_seconds: float = 10.0
    """twin descent time, s"""
    twin_jitter: float = 0.1
    """relative perturbation"""
    twin_target_size: int = 256
    """side of the target the descent is given (256, the side it is judged at; 128,
    the search size, as before 2026-12-05)"""
    twin_threads: int = 0
    """torch threads (0: torch's default; 1 is faster than 2 on a loaded 2-core
    machine)"""
    renderer: Literal["local", "http"] = "local"
    """local: the bundled renderer in-process; http: --renderer-url"""
    renderer_url: str | None = None
    """POST /api/raster URL"""
    rows: str = DEFAULT_ROWS
    """every (target, method, budget) result, appended (one JSON a line; --quick:
    none unless given)"""
    report_only: bool = False
    """no searches: tables and sheet from --rows (runs done in parts)"""
    sheet: str = "bench/results/inverse-sheet.png"
    """target | result of each method at the largest budget, every target"""
    workers: int = 4
    """render requests in flight"""
    out: str = "bench/results/inverse.md"
    """markdown results file"""
    examples: str = "bench/results/inverse-examples.png"
    """side-by-side example sheet ('' for none)"""

    def __post_init__(self) -> None:
        if not self.budgets:
            self.budgets = [30, 100] if self.quick else [50, 200, 500]
        if self.quick:
            self.n_targets, self.max_refs = (
                min(self.n_targets, 3),
                min(self.max_refs, 2),
            )
            if self.rows == DEFAULT_ROWS:
                self.rows = ""  # a CI-size run leaves the full run's rows alone
        unknown = [m for m in self.methods if m not in METHODS + ABLATIONS]
        if unknown:
            raise ValueError(
                f"--methods: unknown {' '.join(unknown)} (one of "
                f"{' '.join(METHODS + ABLATIONS)})"
            )


def _gather_set(argv: list[str]) -> list[str]:
    """argv with every `--set A [B ...]` gathered into one trailing --set, so the
    flag may be repeated as it was under argparse's append."""
    rest: list[str] = []
    values: list[str] = []
    taking = False
    for a in argv:
        if a == "--set":
            taking = True
        elif a.startswith("--set="):
            taking = False
            values.append(a.removeprefix("--set="))
        elif taking and not a.startswith("-"):
            values.append(a)
        else:
            taking = False
            rest.append(a)
    return [*rest, "--set", *values] if values else rest


def parse_args(argv: list[str] | None = None) -> Args:
    argv = sys.argv[1:] if argv is None else list(argv)
    description = (__doc__ or "").split("\n\n")[0]
    try:
        return cli.parse(Args, _gather_set(argv), description=description)
    except ValueError as e:
        cli.parser(Args, description).error(str(e))


# ----------------------------------------------------------------------------------
# Metrics at 256²


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the grey images (Gaussian window σ 1.5 px, 11 px), in [-1, 1]."""
    x = torch.from_numpy(a.mean(-1, dtype=np.float32))[None, None]
    y = torch.from_numpy(b.mean(-1, dtype=np.float32))[None, None]
    k = metrics.gauss_kernel(1.5)
    w = (k[:, None] * k[None, :])[None, None]
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mu_x**2
    syy = F.conv2d(y * y, w) - mu_y**2
    sxy = F.conv2d(x * y, w) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    )
    return float(m.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse < 1e-10 else 10 * math.log10(1.0 / mse)


def scores(img: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """img, target: (256, 256, 3) in [0, 1] → ncc, f1, ssim, psnr, colour error
    (colour.color_error: the hue the grey scores do not see), hue error
    (colour.hue_error: the hue where both pictures are lit), the picture score
    (structure.py) and its parts, same (picture ≥ structure.SAME_PICTURE)."""
    parts = structure.picture_parts(img, target)
    return {
        "ncc": metrics.ncc(img, target),
        "f1": metrics.line_f1(img, target),
        "ssim": ssim(img, target),
        "psnr": psnr(img, target),
        "color": color_error(img, target),
        "hue": hue_error(img, target),
        "picture": parts["score"],
        "sharp": parts["sharp"],
        "orient": parts["orient"],
        "same": float(parts["score"] >= structure.SAME_PICTURE),
    }


def structure_scores(
    truth: dict[str, Any], pred: dict[str, Any], client: Any, t128: np.ndarray
) -> dict[str, float]:
    """structure.structure_hits as 0/1 floats under s_KEY (equivalences by the table
    and by drawing the same picture at 128²)."""
    hits = structure.structure_hits(
        truth, pred, render=lambda p: client.render(p, 128), truth_image=t128
    )
    return {f"s_{k}": float(v) for k, v in hits.items()}


# ----------------------------------------------------------------------------------
# Targets and methods


def make_targets(args: Args) -> list[tuple[str, dict[str, Any]]]:
    """Held-out draws (refs-like: draw i from random.Random(seed + i), redrawn while
    nearly empty or washed out, as pretrain.draw_target; never the seeds the
    pretraining draws) and the first --max-refs starter refs."""
    if args.target_set == "refs-like":
        out = [
            (
                f"t{i:02d}",
                pretrain.draw_target(random.Random(args.seed + i), 128)[0],
            )
            for i in range(args.n_targets)
        ]
    else:
        rng = random.Random(args.seed)
        out = [
            (f"t{i:02d}", sampling.sample_params(rng)) for i in range(args.n_targets)
        ]
    if args.refs and Path(args.refs).exists():
        refs = refs_io.load_refs(args.refs)[: args.max_refs]
        out += [(f"ref{i + 1}", p) for i, p in enumerate(refs)]
    return out


def jittered_scores(
    client: rendering.RendererClient,
    truth: dict[str, Any],
    t256: np.ndarray,
    rng: random.Random,
    rel: float = 0.02,
    draws: int = 3,
) -> dict[str, float]:
    """Mean scores of `draws` renders of the true params with every number
    ×U(1 − rel, 1 + rel) and the discrete choices kept: how close "params within
    ±2%" is in pictures."""
    jit = (1.0 - rel, 1.0 + rel)
    runs = [
        scores(
            client.render(
                sampling.breed([truth], rng, p_two=0, p_copy=1, jitter=jit), 256
            ),
            t256,
        )
        for _ in range(draws)
    ]
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def random_config_start(truth: dict[str, Any] | None, rng: random.Random) -> Any:
    """A random start; with `truth`, its discrete choices are the true ones."""
    start = sampling.sample_params(rng)
    if truth is None:
        return start
    enc = encoding.encode_params(truth).as_dict()
    rnd = encoding.encode_params(start)
    enc["cont"] = rnd.cont
    enc["layer_cont"] = np.random.default_rng(rng.randrange(2**31)).random(
        enc["layer_cont"].shape, dtype=np.float32
    )
    return encoding.decode_params(enc)


def run_anytime(
    method: str,
    truth: dict[str, Any],
    evaluate: Evaluator,
    rng: random.Random,
) -> None:
    """cma / cma-given / random with the largest budget; read off at each budget."""
    if method == "random":
        random_search(evaluate, evaluate.budget, rng)
        return
    if method == "polish-near-truth":
        # the pipeline's polish alone, started from the true params ×U(0.95, 1.05):
        # how well it converges once the search is in the right basin
        start = sampling.breed([truth], rng, p_two=0, p_copy=1, jitter=(0.95, 1.05))
        lo = evaluate([start])[0]
        evolve([Candidate(lo, start)], evaluate, evaluate.left, rng)
        return
    start = random_config_start(truth if method == "cma-given" else None, rng)
    sp = SearchSpace.of(start, dims="all")
    cma_search(
        sp, evaluate, sp.encode(start), 0.3, evaluate.budget, rng.randrange(1000)
    )


def pipeline_overrides(items: list[str]) -> dict[str, Any]:
    """["n_retrieve=16", "moves=false"] → typed PipelineOptions overrides."""
    import dataclasses

    types = {f.name: f.type for f in dataclasses.fields(PipelineOptions)}
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        if key not in types:
            raise SystemExit(f"--set {item}: no PipelineOptions field {key!r}")
        kind = str(types[key])
        conv = {"bool": lambda v: v.lower() in ("1", "true", "yes"), "int": int}
        out[key] = conv.get(kind, float if kind == "float" else str)(raw)
    return out


@contextlib.contextmanager
def renderer_client(args: Args) -> Iterator[Any]:
    """The renderer the benchmark renders with: in-process or over HTTP."""
    if args.renderer == "local":
        yield structure.LocalRenderer()
        return
    with rendering.ensure_renderer(args.renderer_url) as url:
        client = rendering.RendererClient(url=url, pool=args.workers)
        yield client
        client.close()


def twin_near_truth(args: Args) -> dict[str, Any]:
    """The twin's descent from the true discrete choices, numbers ×U(1 ± jitter)."""
    import time

    from renderer import scene

    rng = random.Random(args.seed)
    jit = (1 - args.twin_jitter, 1 + args.twin_jitter)
    rows = []
    skipped = uniform = 0
    sheet: list[np.ndarray] = []  # target | start | result per draw, at 256²
    labels: list[str] = []
    while len(rows) < args.n_targets:
        truth = sampling.sample_params(rng)
        truth.update(noiseEnabled=False, ditherEnabled=False, crtEnabled=False)
        t256 = scene.render(truth, 256).astype(np.float64) / 255
        if t256.max() < 2 / 255:
            skipped += 1  # black: no NCC to reach
            continue
        if np.sqrt(t256.mean(-1)).std() < 1e-3:
            uniform += 1  # one flat colour (all white): NCC is undefined
            continue
        start = sampling.breed([truth], rng, p_two=0, p_copy=1, jitter=jit)
        target = scene.render(truth, args.twin_target_size).astype(np.float64) / 255
        t0 = time.perf_counter()
        found, _ = twin_descent(pipeline_loss(target), start, args.twin_seconds)
        sec = time.perf_counter() - t0
        s256 = scene.render(start, 256) / 255
        f256 = scene.render(found, 256) / 255
        before = metrics.ncc(s256, t256, 1.0)
        after = metrics.ncc(f256, t256, 1.0)
        rows.append({"before": before, "after": after, "seconds": sec})
        name = f"t{len(rows) - 1:02d}"
        sheet += [t256, s256, f256]
        labels += [f"{name} target", f"start {before:.3f}", f"twin {after:.3f}"]
        print(
            f"t{len(rows) - 1:02d} {truth['geometry']:<11} reps {truth['repetitions']:3d} "
            f"layers {len(truth['layers'])}: NCC {before:.3f} → {after:.3f} in {sec:.1f} s",
            flush=True,
        )
    a = np.array([r["after"] for r in rows])
    b = np.array([r["before"] for r in rows])
    sec = np.array([r["seconds"] for r in rows])
    load = __import__("os").getloadavg()
    cmd = "python bench/inverse.py " + " ".join(sys.argv[1:])
    out = Path(args.out)
    if out == Path("bench/results/inverse.md"):  # the default: not the main table
        out = out.with_name("inverse-twin.md")
    png = out.with_name(out.stem + "-sheet.png")
    lines = [
        "# The twin's descent from the truth ±10%",
        "",
        f"`{cmd}` ({datetime.date.today()}, {platform.node() or 'this machine'}, "
        f"torch threads {torch.get_num_threads()}, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}: the machine was shared).",
        "",
        f"{len(rows)} held-out draws (sampling.sample_params, seed {args.seed}; noise, "
        f"dither, CRT off; {skipped} black and {uniform} one-colour (all white) draws "
        "skipped: NCC is undefined on them), every number of the truth "
        f"×U({jit[0]:g}, {jit[1]:g}), discrete choices kept; descent.twin_descent for "
        f"≤ {args.twin_seconds:g} s on the target at {args.twin_target_size}² (Adam "
        "on 1 − NCC of blurred √grey, σ 8 → 0.5 px at 128², sides 64² → 256² capped "
        "at the target's: twin.NCC_SCHEDULE); NCC of √grey, "
        "σ = 1 px, at 256² against the target, drawn by renderer.scene. Target: NCC "
        "≥ 0.95 on ≥ 80% of draws in ≤ 10 s each. Sheet (target | start | result "
        f"per draw): {png.name}.",
        "",
        "| | NCC mean | NCC median | ≥ 0.95 | ≥ 0.9 | seconds (mean) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| start (truth ±{100 * args.twin_jitter:g}%) | {b.mean():.3f} | "
        f"{np.median(b):.3f} | {100 * (b >= 0.95).mean():.0f}% | "
        f"{100 * (b >= 0.9).mean():.0f}% | |",
        f"| after the twin's descent | {a.mean():.3f} | {np.median(a):.3f} | "
        f"{100 * (a >= 0.95).mean():.0f}% | {100 * (a >= 0.9).mean():.0f}% | "
        f"{sec.mean():.1f} |",
        "",
        "| draw | before | after | s |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| t{i:02d} | {r['before']:.3f} | {r['after']:.3f} | {r['seconds']:.1f} |"
        for i, r in enumerate(rows)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    utils.contact_sheet(sheet, labels, cols=6, cell=160).save(png)
    print(f"wrote {png}")
    return {"rows": rows}


@dataclass
class Target:
    """One target: its name, group, true params and its pictures at the sizes used."""

    name: str
    group: str
    truth: dict[str, Any]
    t_search: np.ndarray
    t256: np.ndarray
    t128: np.ndarray


@dataclass
class Bench:
    """What every target's searches share: the renderer, models, bank and options."""

    args: Args
    client: Any
    pool: TwinPool
    forward: Any
    inverse: Any
    bank: RetrievalBank | None
    overrides: dict[str, Any]
    budgets: list[int]


@dataclass
class Runs:
    """One method's results on one target, per budget: (budget, params, renders,
    seconds), and for the pipeline its fitted structures, the twin's refusals and
    the structure chosen, the runner-up descended beside it and whether it took
    over (indices into the fitted structures)."""

    runs: list[tuple[int, dict[str, Any], int, float]] = field(default_factory=list)
    fitted: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    refused: dict[int, int] = field(default_factory=dict)
    choice: dict[int, dict[str, Any]] = field(default_factory=dict)


def run_pipeline(
    bench: Bench, t: Target, method: str, rng: random.Random, out: Runs
) -> None:
    """The pipeline (or one of its ablations) at every budget."""
    args, client, pool = bench.args, bench.client, bench.pool
    today = method == "pipeline-today"
    for b in bench.budgets:
        loss = ImageLoss(
            t.t_search,
            args.sigmas,
            args.f1_weight,
            args.brightness_weight,
            0.0 if today else PIPELINE_PICTURE_WEIGHT,
        )
        ev = Evaluator(client, loss, args.size, b, args.workers)
        opts = PipelineOptions(
            gd_steps=args.gd_steps,
            moves=method != "pipeline-no-moves",
            register=method != "pipeline-no-register",
            **({"structures": 0} if today else {}),
            **bench.overrides,
        )
        before = pool.refused
        res = invert(
            t.t_search,
            ev,
            # today's predict on a fresh clone: no models at all
            inverse=None if today else bench.inverse,
            forward=None if method == "pipeline-no-gd" or today else bench.forward,
            bank=None if method == "pipeline-no-retrieval" else bench.bank,
            opts=opts,
            seed=rng.randrange(1000),
            log=lambda s: None,
            # the GD stage through the differentiable twin
            use_twin=method == "pipeline-twin",
            fine_target=t.t256,  # as predict gives it
            pool=pool,
        )
        secs = sum(st.seconds for st in res.stages)
        out.refused[b] = pool.refused - before
        out.runs.append((b, res.best.params, ev.renders, secs))
        ev.close()
        out.fitted[b] = [
            {"prob": pr, "score": sc, "loss": lo}
            | structure_scores(t.truth, q, client, t.t128)
            for pr, sc, lo, q in res.structures
        ]
        out.choice[b] = {
            "chosen": res.chosen,
            "runner_up": res.runner_up,
            "took_over": res.took_over,
        }


def run_method(bench: Bench, t: Target, method: str, rng: random.Random) -> Runs:
    """One method on one target at every budget (blind searches once, at the largest
    budget, read at each smaller one)."""
    args, budgets, out = bench.args, bench.budgets, Runs()
    if method.startswith("pipeline"):
        run_pipeline(bench, t, method, rng, out)
    elif method == "near-truth":
        out.runs += [(b, t.truth, 0, 0.0) for b in budgets]
    elif method == "inverse":
        p = inverse_candidates(bench.inverse, t.t_search)[0]
        out.runs += [(b, p, 1, 0.0) for b in budgets]
    else:
        loss = (
            ImageLoss(t.t_search, args.sigmas, args.f1_weight)
            if method == "polish-near-truth"
            else ImageLoss(t.t_search, sigmas=(2.0,))
        )
        ev = Evaluator(bench.client, loss, args.size, max(budgets), args.workers)
        run_anytime(method, t.truth, ev, rng)
        for b in budgets:
            cand = ev.best_at(b)
            assert cand is not None
            n = min(b, ev.renders)
            out.runs.append((b, cand.params, n, ev.seconds[n - 1]))
        ev.close()
    return out


def score_method(
    bench: Bench,
    t: Target,
    method: str,
    rng: random.Random,
    rows: dict[tuple[str, str, int], list[dict[str, Any]]],
) -> list[tuple[str, np.ndarray, float]]:
    """Run one method on one target, score each budget's result at 256², add the
    rows (to `rows` and --rows); the largest budget's picture for the sheet."""
    client, budgets = bench.client, bench.budgets
    r = run_method(bench, t, method, rng)
    near = (
        jittered_scores(client, t.truth, t.t256, rng)
        if method == "near-truth"
        else None
    )
    shown: list[tuple[str, np.ndarray, float]] = []
    for b, p, n, secs in r.runs:
        img = t.t256 if near else client.render(p, 256)
        sc = (near or scores(img, t.t256)) | {"renders": n, "seconds": secs}
        if not near:
            sc |= structure_scores(t.truth, p, client, t.t128)
        row = (
            {"target": t.name, "group": t.group, "method": method, "budget": b}
            | sc
            | {"params": p, "truth": t.truth}
            | ({"structures": r.fitted[b]} if b in r.fitted else {})
            | r.choice.get(b, {})
            | ({"twin_refused": r.refused[b]} if b in r.refused else {})
        )
        rows.setdefault((t.group, method, b), []).append(row)
        append_row(bench.args.rows, row)
        if b == budgets[-1] and not near:
            shown.append((f"{method}@{b}", img, sc["picture"]))
    return shown


def load_target(client: Any, name: str, truth: dict[str, Any], size: int) -> Target:
    """A target's pictures at the search size, 256² and 128²."""
    group = "refs" if name.startswith("ref") else "held-out"
    t_search = client.render(truth, size)
    t256 = client.render(truth, 256)
    t128 = t_search if size == 128 else client.render(truth, 128)
    return Target(name, group, truth, t_search, t256, t128)


def main(args: Args) -> dict[str, Any]:
    if args.twin_threads > 0:
        torch.set_num_threads(args.twin_threads)
    if args.twin_near_truth:
        return twin_near_truth(args)
    if args.report_only:
        return report(args)
    targets = make_targets(args)
    forward, inverse, notes = load_models(args.forward, args.inverse)
    bank = RetrievalBank.load(args.data, res=args.bank_res)
    notes.append(
        f"retrieval: {len(bank)} training images from {' '.join(args.data)}"
        if bank
        else "retrieval: no training images found"
    )
    for n in notes:
        print(n)
    methods = [m for m in args.methods if m != "inverse" or inverse is not None]
    overrides = pipeline_overrides(args.set)
    budgets = sorted(args.budgets)
    rows: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    examples: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray, float]]]] = []
    # the twin's worker processes, started once for every target
    workers = twin_workers(PipelineOptions(**overrides).twin_workers)
    with renderer_client(args) as client, TwinPool(workers) as pool:
        bench = Bench(args, client, pool, forward, inverse, bank, overrides, budgets)
        bar = tqdm(targets, desc="targets", unit="target")
        for name, truth in bar:
            t = load_target(client, name, truth, args.size)
            shown: list[tuple[str, np.ndarray, float]] = []
            for method in methods:
                rng = random.Random(zlib.crc32(f"{name}-{method}".encode()))
                shown += score_method(bench, t, method, rng, rows)
            examples.append((name, t.t256, shown))
            bar.set_postfix(
                {
                    m: f"{np.mean([r['ncc'] for r in rows[('held-out', m, budgets[-1])]]):.2f}"
                    for m in methods
                    if ("held-out", m, budgets[-1]) in rows
                }
            )
    table = format_table(rows, methods, budgets)
    print(table)
    write_results(args, table, notes, len(targets))
    if args.examples:
        write_examples(args.examples, examples[:6])
    if args.sheet:
        write_examples(args.sheet, examples, cell=128)
    return {"rows": rows}


def append_row(path: str, row: dict[str, Any]) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def report(args: Args) -> dict[str, Any]:
    """Tables from --rows (the last row of each target, method and budget)."""
    last: dict[tuple[str, str, int], dict[str, Any]] = {}
    for line in Path(args.rows).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        last[(r["target"], r["method"], int(r["budget"]))] = r
    # only the targets every method listed has results for (runs done in parts)
    have = [{t for t, m2, _ in last if m2 == m} for m in args.methods]
    common = set.intersection(*[h for h in have if h]) if any(have) else set()
    rows: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for (t, m, b), r in sorted(last.items()):
        if m in args.methods and b in args.budgets and t in common:
            rows.setdefault((r["group"], m, b), []).append(r)
    methods = [m for m in args.methods if any(k[1] == m for k in rows)]
    budgets = sorted({k[2] for k in rows})
    table = format_table(rows, methods, budgets)
    print(table)
    write_results(
        args, table, [f"rows: {args.rows}, targets: {sorted(common)}"], len(common)
    )
    if args.sheet:
        r = structure.LocalRenderer()
        top = max(budgets)
        examples = []
        for t in sorted(common):
            truth = next(v["truth"] for k, v in last.items() if k[0] == t)
            shown = [
                (
                    f"{m}@{top}",
                    r.render(last[(t, m, top)]["params"], 256),
                    float(last[(t, m, top)]["picture"]),
                )
                for m in methods
                if (t, m, top) in last and m != "near-truth"
            ]
            examples.append((t, r.render(truth, 256), shown))
        write_examples(args.sheet, examples, cell=128)
    return {"rows": rows}


def runner_up_lines(
    rows: dict[tuple[str, str, int], list[dict[str, Any]]],
    group: str,
    methods: list[str],
    budgets: list[int],
) -> list[str]:
    """How often the runner-up structure was descended beside the chosen one and
    took over (PipelineOptions.alternates), and whether the whole structure was
    right before and after (rows that record it: "runner_up", "took_over")."""
    out = []
    for b in budgets:
        for m in methods:
            rs = [r for r in rows.get((group, m, b), []) if "took_over" in r]
            tried = [r for r in rs if r.get("runner_up") is not None]
            if not tried:
                continue
            over = [r for r in tried if r["took_over"]]

            def right(r: dict[str, Any], key: str) -> bool:
                return bool(r["structures"][r[key]]["s_all"])

            gained = sum(right(r, "runner_up") and not right(r, "chosen") for r in over)
            lost = sum(right(r, "chosen") and not right(r, "runner_up") for r in over)
            out.append(
                f"\n{m} at {b}: the runner-up structure was descended beside the "
                f"chosen one on {len(tried)} of {len(rs)} targets and took over on "
                f"{len(over)} (whole structure: right where it was wrong on {gained}, "
                f"wrong where it was right on {lost})"
            )
    return out


def format_table(
    rows: dict[tuple[str, str, int], list[dict[str, Any]]],
    methods: list[str],
    budgets: list[int],
) -> str:
    lines = []
    for group in ("held-out", "refs"):
        if not any(k[0] == group for k in rows):
            continue
        n = len(next(v for k, v in rows.items() if k[0] == group))
        lines += [
            f"\n**{group}** ({n} targets)\n",
            "| method | budget | NCC | line F1 | picture | same picture | NCC ≥ 0.85 "
            "| SSIM | PSNR dB | colour error | hue error | renders | s / target |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for b in budgets:
            for m in methods:
                rs = rows.get((group, m, b))
                if not rs:
                    continue

                def mean(k: str, rs: list[dict[str, Any]] = rs) -> float:
                    return float(np.mean([r[k] for r in rs]))

                share = float(np.mean([r["ncc"] >= 0.85 for r in rs]))

                def optional(k: str, rs: list[dict[str, Any]] = rs) -> str:
                    got = [r[k] for r in rs if k in r]  # rows made before the column
                    return f"{np.mean(got):.4f}" if len(got) == len(rs) else "–"

                lines.append(
                    f"| {m} | {b} | {mean('ncc'):.3f} | {mean('f1'):.3f} "
                    f"| {mean('picture'):.3f} | {mean('same'):.0%} "
                    f"| {share:.0%} | {mean('ssim'):.3f} | {mean('psnr'):.1f} "
                    f"| {optional('color')} | {optional('hue')} "
                    f"| {mean('renders'):.0f} | {mean('seconds'):.1f} |"
                )
        tb = [
            f"{m} at {b}: {sum(r['twin_refused'] for r in rs)}"
            for b in budgets
            for m in methods
            if (rs := rows.get((group, m, b), []))
            and all("twin_refused" in r for r in rs)
        ]
        if tb:
            lines.append(
                "\npictures the twin refused as too big to draw (twin.TooBig; each "
                "ends a descent stage): " + ", ".join(tb)
            )
        lines += runner_up_lines(rows, group, methods, budgets)
        keys = [f"s_{k}" for k in (*structure.STRUCTURE_KEYS, "layers", "all")]
        lines += [
            f"\nstructure recovered ({group}, up to equivalences; `all`: every one)\n",
            "| method | budget | " + " | ".join(k[2:] for k in keys) + " |",
            "|---|---|" + "---|" * len(keys),
        ]
        for b in budgets:
            for m in methods:
                rs = [r for r in rows.get((group, m, b), []) if "s_all" in r]
                if rs:
                    lines.append(
                        f"| {m} | {b} | "
                        + " | ".join(f"{np.mean([r[k] for r in rs]):.0%}" for k in keys)
                        + " |"
                    )
    return "\n".join(lines)


def write_results(args: Args, table: str, notes: list[str], n_targets: int) -> None:
    cmd = " ".join(["python", "bench/inverse.py", *sys.argv[1:]])
    o = PipelineOptions(**pipeline_overrides(args.set))
    alt = "on" if o.alternates and twin_workers(o.twin_workers) > 1 else "off"
    text = f"""# Inverse benchmark: image → params at equal real-render budgets

- date: {datetime.date.today().isoformat()}
- machine: {platform.machine()}, {platform.processor() or "cpu"}, torch {torch.__version__}, {torch.get_num_threads()} threads
- command: `{cmd}`
- targets: {n_targets} (held-out {args.target_set} draws, seed {args.seed}, never drawn in training; refN: starter refs, never trained on); search renders at {args.size}², scores at 256²
- {chr(10).join("- " + n if i else n for i, n in enumerate(notes))}

Methods: pipeline = invert with the bundled inverse model
(models/inverse-pretrained): its top 8 structures (geometry × layer count ×
progressions) each fitted by a short CMA-ES run, the best kept by the picture score,
then moves and evolution that keep the structure, minimising NCC σ 2/8 + line F1 +
the picture score's shape terms (sharp NCC, orientation NCC). pipeline-today = the
pipeline as it was, with no models (a fresh clone before this work: random starts,
NCC + line F1 loss). pipeline-twin = the pipeline with its gradient stage through
the differentiable twin, as predict runs it (twin.py; in this run, with any
`--set` of the command: a wide descent of
{o.twin_wide_seconds:g} s, then a fine one of {o.twin_seconds:g} s, both again after the polish in
{o.final_twin_seconds:g} s, a wide descent of {o.structure_wide_seconds:g} s for each structure's fit and a wide + fine
one of {o.finalist_seconds:g} s for each of the {o.finalists} that score best, chosen among again, the
runner-up carried through the main descent beside the chosen one: {alt}; the
descents of different starts side by side on {twin_workers(o.twin_workers)} worker processes; renders
counted alike, its seconds are in s / target). cma = CMA-ES alone on 1 − NCC σ 2. near-truth = the true params
with every number ×U(0.98, 1.02) (a yardstick, not a search).

colour error = color_error (blurred per-channel difference, every pixel);
hue error = hue_error (the colour over its largest channel where both
pictures are lit: the hue alone). picture = structure.picture_score (mean of sharp
NCC σ 0.5 on linear grey, orientation NCC σ 2, line F1; calibrated in
bench/results/picture-score.md); same
picture = picture ≥ {structure.SAME_PICTURE}. Structure recovered counts a choice as
right when it equals the truth's, is equivalent by structure.EQUIVALENCES, or draws
the same picture when put into the true params; layers = the exact layer count.
{table}
"""
    atomic.atomic_write_text(args.out, text)
    print(f"wrote {args.out}")


def write_examples(
    path: str,
    examples: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray, float]]]],
    cell: int | None = None,
) -> None:
    images, labels = [], []
    cols = 1 + max((len(s) for _, _, s in examples), default=0)
    for name, t256, shown in examples:
        images.append(t256)
        labels.append(f"{name} target")
        for label, img, n in shown:
            images.append(img)
            labels.append(f"{label} pic {n:.2f}")
        for _ in range(cols - 1 - len(shown)):
            images.append(np.zeros_like(t256))
            labels.append("")
    utils.contact_sheet(images, labels, cols=cols, cell=cell).save(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(parse_args())
