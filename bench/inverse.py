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
import math
import platform
import random
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import cli, utils
from art_explorer.data import refs_io
from art_explorer.predict.budget import Candidate, Evaluator
from art_explorer.predict.cmaes import cma_search, random_search
from art_explorer.predict.colour import color_error, hue_error
from art_explorer.predict.descent import twin_descent
from art_explorer.predict.evolution import evolve
from art_explorer.predict.loss import (
    PIPELINE_PICTURE_WEIGHT,
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
from bench.lib.inverse_options import (
    ABLATIONS as ABLATIONS,
)
from bench.lib.inverse_options import (
    METHODS as METHODS,
)
from bench.lib.inverse_options import (
    Args,
    gather_set,
    parse_by_eye,
    pipeline_overrides,
)
from bench.lib.inverse_report import (
    append_row,
    format_table,
    report,
    write_examples,
    write_results,
)
from bench.lib.inverse_report import (
    runner_up_lines as runner_up_lines,
)


def parse_args(argv: list[str] | None = None) -> Args:
    argv = sys.argv[1:] if argv is None else list(argv)
    description = (__doc__ or "").split("\n\n")[0]
    try:
        return cli.parse(Args, gather_set(argv), description=description)
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
    table = format_table(rows, methods, budgets, parse_by_eye(args.by_eye))
    print(table)
    write_results(args, table, notes, len(targets))
    if args.examples:
        write_examples(args.examples, examples[:6])
    if args.sheet:
        write_examples(args.sheet, examples, cell=128)
    return {"rows": rows}


if __name__ == "__main__":
    main(parse_args())
