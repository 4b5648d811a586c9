"""Explore as quality-diversity against today's novelty ranking, at equal real renders.

    python bench/explore.py                   # 2,000 renders each → bench/results/explore.md
    python bench/explore.py --quick           # 300 renders → explore-quick.md (make bench)
    python bench/explore.py --budgets 2000 10000

For each budget, two runs from the same references, every candidate rendered for
real at --size and scored and placed by the same evaluator (qd.Evaluator: the
heuristic aesthetic score with its gate and the coverage guard; descriptors.AXES):

- qd: qd.grow on a fresh archive (the refs seed it, their renders counted);
- today: predict.py --explore's method for the same number of renders: the refs and
  children bred from them (sampling.breed with today's settings), all rendered, ranked
  by novelty (min perceptual distance to the refs, greedy select_novel under the
  coverage guard); "today's 16" are its 16 picks, and all its renders are put in an
  archive of the same axes to measure its coverage and QD-score.

Reported: cells filled (coverage of the 560 cells), QD-score (sum of the elites'
scores), the same two on finer grids (every render of each run re-binned: lit share
and symmetry split 2× and 4×, the 7 colour classes kept), mean score of the 16 shown (qd: maps.best_distinct, no two in neighbouring
cells of one colour; today: its 16 picks), and a sheet of both 16s side by side
(bench/results/explore-sheet.png) plus the archive's map and axis sheet.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from art_explorer import atomic, cli  # noqa: E402
from art_explorer.data import refs_io  # noqa: E402
from art_explorer.explore import archive as archive_mod  # noqa: E402
from art_explorer.explore import descriptors, emitters, maps, qd, solution  # noqa: E402
from art_explorer.scene import rendering, sampling, schema  # noqa: E402
from art_explorer.scoring.aesthetic import HeuristicScorer  # noqa: E402


@dataclass
class Args:
    """QD explore vs today's novelty ranking at equal real renders."""

    budgets: list[int] = field(default_factory=lambda: [2000])
    """real renders per run (each method gets the same)"""
    quick: bool = False
    """CI size (make bench): one budget of 300 renders, report to explore-quick.md"""
    size: int = 128
    """px: render size of every candidate"""
    seed: int = 0
    """random seed of both methods"""
    workers: int = 2
    """render requests in flight"""
    out: str = "bench/results/explore.md"
    """the report (the sheets go next to it)"""
    keep: str = ""
    """keep both archives in this folder (default: a temporary one, removed)"""
    emitters: list[str] = field(default_factory=lambda: list(emitters.EMITTERS))
    """the archive's emitters (explore.py's --emitters)"""
    keepers: list[str] = field(default_factory=list)
    """keepers counted by eye on the sheets, per budget: B:QD/TODAY (e.g.
    2000:14/10), for the table's by-eye column (rewrite the report with them after
    looking: --keepers with --rows)"""
    rows: str = ""
    """write the report from this run's saved rows (RESULT.rows.json) instead of
    running: how the by-eye counts go in after the sheets were looked at"""


FINER = (2, 4)  # finer grids: lit share and symmetry cells split k ways


@contextlib.contextmanager
def recording(seen: list[tuple[np.ndarray, np.ndarray]]) -> Iterator[None]:
    """Every (scores, descriptors) qd.grow's evaluator returns, appended to `seen`
    (the bench's instrument: the archive keeps only each cell's best)."""
    original = qd.Evaluator.evaluate

    def evaluate(self: qd.Evaluator, images: list[np.ndarray]) -> Any:
        out = original(self, images)
        seen.append(out)
        return out

    qd.Evaluator.evaluate = evaluate  # type: ignore[method-assign]
    try:
        yield
    finally:
        qd.Evaluator.evaluate = original  # type: ignore[method-assign]


def rebinned(
    scores: np.ndarray, measures: np.ndarray, k: int
) -> tuple[int, int, float]:
    """(cells filled, cells, QD-score) of every render placed in a grid whose lit
    share and symmetry cells are split k ways (as GridArchive bins: floor, clipped;
    an elite scores above archive.MIN_SCORE)."""
    dims, idx = [], []
    for j, a in enumerate(descriptors.AXES):
        n = a.bins * (1 if a.name == "colour" else k)
        x = np.floor((measures[:, j] - a.lo) / (a.hi - a.lo) * n).astype(int)
        dims.append(n)
        idx.append(np.clip(x, 0, n - 1))
    best = np.full(int(np.prod(dims)), -np.inf)
    ok = scores > archive_mod.MIN_SCORE
    flat = np.asarray(np.ravel_multi_index(tuple(idx), dims))
    np.maximum.at(best, flat[ok], scores[ok])
    filled = np.isfinite(best)
    return int(filled.sum()), len(best), float(best[filled].sum())


def run_qd(budget: int, args: Args, folder: Path, url: str) -> archive_mod.Archive:
    g = qd.GrowArgs(
        renders=budget,
        archive=str(folder),
        n=0,
        size=args.size,
        scorer="heuristic",
        renderer_url=url,
        workers=args.workers,
        seed=args.seed,
        emitters=list(args.emitters),
    )
    qd.grow(g, log=lambda s: print("  qd:", s))
    return archive_mod.Archive.open(folder)


def run_today(
    renders: int,
    args: Args,
    folder: Path,
    ev: qd.Evaluator,
    today_seen: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[archive_mod.Archive, list[dict[str, Any]]]:
    """Today's explore for `renders` renders: refs + children, novelty-ranked; every
    render's (scores, descriptors) appended to `today_seen`."""
    import torch
    import torch.nn.functional as F

    from art_explorer.explore.novelty import select_novel
    from art_explorer.nets import perceptual_distance

    refs = [
        r
        for r in refs_io.load_refs(ROOT / "references/refs.jsonl")
        if len(r["layers"]) <= schema.MAX_LAYERS
    ]
    weights = refs_io.rated_weights(refs, ROOT / "references/refs.jsonl")
    rng = random.Random(args.seed)
    seen = {schema.canonical_json(p) for p in refs}
    kids: list[dict[str, Any]] = []
    while len(kids) < renders - len(refs):
        c = sampling.breed(
            refs,
            rng,
            weights,
            p_two=0.7,
            p_copy=1.0,
            jitter=(0.7, 1.3),
            p_redraw_cat=0.1,
        )
        if (
            len(c["layers"]) <= schema.MAX_LAYERS
            and schema.canonical_json(c) not in seen
        ):
            seen.add(schema.canonical_json(c))
            kids.append(c)
    arch = archive_mod.Archive.empty(folder)
    sols = np.stack([solution.to_vector(p) for p in refs + kids])
    params = [solution.to_params(x) for x in sols]  # what the archive would render
    images, scores, measures = [], [], []
    for i in range(0, len(params), 96):
        imgs = ev.render(params[i : i + 96])
        s, m = ev.evaluate(imgs)
        images += imgs
        scores.append(s)
        measures.append(m)
    score, meas = np.concatenate(scores), np.concatenate(measures)
    ids = np.arange(len(params), dtype=np.int64)
    arch.grid.add(sols, score, meas, elite_id=ids)
    arch.renders = arch.next_id = len(params)
    for i in set(arch.grid.data("elite_id").tolist()):
        atomic.write_png(arch.thumb_path(i), qd._pil(images[i]))
    arch.save()
    # today's ranking: novelty at 64² among the children, coverage guard, greedy picks
    t = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=64, mode="area")
    n_ref = len(refs)
    cand, ref_t = t[n_ref:], t[:n_ref]
    dist = perceptual_distance.create_perceptual("auto")
    with torch.no_grad():
        d = torch.stack([dist(cand, r[None].expand_as(cand)) for r in ref_t], dim=1)
    novelty = d.min(dim=1).values
    cov = torch.tensor([_coverage(x) for x in images[n_ref:]])
    ok = (cov >= qd.MIN_COVERAGE) & (cov <= qd.MAX_COVERAGE)

    def dist_to(i: int) -> torch.Tensor:
        with torch.no_grad():
            return dist(cand, cand[i : i + 1].expand_as(cand))

    today_seen.append((score, meas))
    picks = select_novel(novelty, dist_to, ok, 16)
    shown = []
    for i in picks:
        k = n_ref + i
        path = folder / "today" / f"{k}.png"
        atomic.write_png(path, qd._pil(images[k]))
        shown.append({"id": k, "score": float(score[k]), "thumb": str(path)})
    return arch, shown


def _coverage(img: np.ndarray) -> float:
    lum = img @ np.array([0.2126, 0.7152, 0.0722])
    return float((lum > 0.03).mean())


def side_by_side(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> Any:
    """Two 4 × 4 sheets, qd's 16 left, today's 16 right."""
    from PIL import Image, ImageDraw

    a = maps.elites_sheet(ours, cols=4, cell=160)
    b = maps.elites_sheet(theirs, cols=4, cell=160)
    img = Image.new("RGB", (a.width + b.width + 20, max(a.height, b.height) + 18))
    img.paste(a, (0, 18))
    img.paste(b, (a.width + 20, 18))
    d = ImageDraw.Draw(img)
    d.text((4, 3), "quality-diversity archive: 16 best distinct elites", fill="white")
    d.text((a.width + 24, 3), "today's explore: its 16 novelty picks", fill="white")
    return img


def main(args: Args) -> None:
    budgets = [300] if args.quick else args.budgets
    out = ROOT / args.out
    if args.quick and args.out == Args.out:  # leave the full run's report as it is
        out = out.with_name("explore-quick.md")
    if args.rows:
        write_report(out, args, json.loads(Path(args.rows).read_text()))
        return
    rows = []
    work = (
        Path(args.keep)
        if args.keep
        else Path(tempfile.mkdtemp(prefix="bench-explore-"))
    )
    if args.keep:
        shutil.rmtree(work, ignore_errors=True)
    port = rendering.free_port()
    with rendering.ensure_renderer(f"http://127.0.0.1:{port}/api/raster") as url:
        client = rendering.RendererClient(url=url)
        ev = qd.Evaluator(client, HeuristicScorer(), args.size, args.workers)
        for b in budgets:
            t0 = time.time()
            qd_seen: list[tuple[np.ndarray, np.ndarray]] = []
            with recording(qd_seen):
                mine = run_qd(b, args, work / f"qd-{b}", url)
            t_qd = time.time() - t0
            t0 = time.time()
            today_seen: list[tuple[np.ndarray, np.ndarray]] = []
            base, shown = run_today(
                mine.renders, args, work / f"today-{b}", ev, today_seen
            )
            t_today = time.time() - t0
            ours = maps.best_distinct(mine.summary(), 16)
            base16 = maps.best_distinct(base.summary(), 16)
            rows.append(_row(b, mine, base, ours, shown, base16, t_qd, t_today))
            for k in (1, *FINER):  # k = 1 checks the re-binning against the archives
                for name, seen in (("qd", qd_seen), ("today", today_seen)):
                    sc = np.concatenate([x for x, _ in seen])
                    me = np.concatenate([m for _, m in seen])
                    rows[-1][f"{name}_grid{k}"] = rebinned(sc, me, k)
            if not args.quick:  # the sheets come from the full run
                stem = out.with_suffix("").name
                atomic.write_png(
                    out.parent / f"{stem}-sheet-{b}.png", side_by_side(ours, shown)
                )
                atomic.write_png(
                    out.parent / f"{stem}-map-{b}.png", maps.draw_map(mine.summary())
                )
                atomic.write_png(
                    out.parent / f"{stem}-map-today-{b}.png",
                    maps.draw_map(base.summary()),
                )
                atomic.write_png(
                    out.parent / f"{stem}-axes-{b}.png", maps.axis_sheet(mine.summary())
                )
                atomic.write_png(
                    out.parent / f"{stem}-growth-{b}.png",
                    maps.draw_growth(mine.summary()),
                )
            print(rows[-1])
        client.close()
    atomic.write_json(out.with_suffix(".rows.json"), rows)
    write_report(out, args, rows)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def _row(b, mine, base, ours, shown, base16, t_qd, t_today) -> dict[str, Any]:
    sm, sb = mine.summary(cells=False), base.summary(cells=False)
    return {
        "budget": b,
        "renders": mine.renders,
        "qd_cells": sm["cells_filled"],
        "today_cells": sb["cells_filled"],
        "cells_total": sm["cells_total"],
        "qd_score": sm["qd_score"],
        "today_qd_score": sb["qd_score"],
        "qd_top16": float(np.mean([c["score"] for c in ours])),
        "today_top16": float(np.mean([c["score"] for c in shown])),
        "today_archive_top16": float(np.mean([c["score"] for c in base16])),
        "t_qd": t_qd,
        "t_today": t_today,
    }


def write_report(out: Path, args: Args, rows: list[dict[str, Any]]) -> None:
    import torch

    cmd = "python bench/explore.py" + (
        " --quick" if args.quick else " --budgets " + " ".join(map(str, args.budgets))
    )
    if list(args.emitters) != list(emitters.EMITTERS):
        cmd += " --emitters " + " ".join(args.emitters)
    lines = [
        "# Explore: quality-diversity archive vs today's novelty ranking",
        "",
        f"- date: {datetime.date.today()}",
        f"- machine: {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads (a shared 2-core machine)",
        f"- command: `{cmd}`",
        f"- renders at {args.size}², heuristic aesthetic score with its gate and the "
        f"coverage guard {qd.MIN_COVERAGE}–{qd.MAX_COVERAGE}; axes: lit share × symmetry "
        f"× colour (docs/explore.md); the archive's emitters: "
        f"{', '.join(args.emitters)}",
        "",
        "| renders | cells qd | cells today | QD-score qd | QD-score today | top-16 qd | "
        "today's 16 | today's pool, best 16 distinct | s qd | s today |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    eye = dict(k.split(":", 1) for k in args.keepers)
    if eye:
        lines[-2] += " keepers by eye (qd / today's 16) |"
        lines[-1] += "---|"
    for r in rows:
        by_eye = f" {eye.get(str(r['budget']), '–')} |" if eye else ""
        lines.append(
            f"| {r['renders']} | {r['qd_cells']}/{r['cells_total']} | "
            f"{r['today_cells']}/{r['cells_total']} | {r['qd_score']:.1f} | "
            f"{r['today_qd_score']:.1f} | {r['qd_top16']:.3f} | {r['today_top16']:.3f} | "
            f"{r['today_archive_top16']:.3f} | {r['t_qd']:.0f} | {r['t_today']:.0f} |"
            + by_eye
        )
    lines += [
        "",
        "The same renders on finer grids (each run's every render re-binned; k: lit "
        "share and symmetry cells split k ways, colour's 7 classes kept; k = 1 is the "
        "archive's own grid, recomputed):",
        "",
        "| renders | k | cells | cells qd | cells today | ratio | QD-score qd | "
        "QD-score today | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for k in (1, *FINER):
            (cq, n, sq), (ct, _, st) = r[f"qd_grid{k}"], r[f"today_grid{k}"]
            lines.append(
                f"| {r['renders']} | {k} | {n} | {cq} | {ct} | {cq / max(ct, 1):.2f}× | "
                f"{sq:.1f} | {st:.1f} | {sq / max(st, 1e-9):.2f}× |"
            )
    stem = out.with_suffix("").name
    lines += [
        "",
        "cells: cells of the archive filled (qd: its own archive; today: every one of "
        "its renders, refs included, placed in an archive of the same axes, which is "
        "more than today's explore keeps: it shows 8 and remembers none). QD-score: "
        "the sum of the elites' scores. top-16 qd: mean score of maps.best_distinct's "
        "16; today's 16: of its 16 novelty picks (predict.select_novel, LPIPS or "
        "sqrt-ms-l1 novelty at 64²); today's pool: best_distinct's 16 of today's "
        "archive. s: wall seconds on the shared machine."
        + (
            " Keepers by eye: of the 16 on each side of the sheet, how many a person "
            "looking at it would keep (counted after the run, `--keepers`; "
            "docs/explore.md names them)."
            if eye
            else " Keepers by eye: not counted for this run."
        ),
        "",
        f"Pictures per budget B: {stem}-sheet-B.png (qd's 16 | today's 16), "
        f"{stem}-map-B.png and {stem}-map-today-B.png (cells coloured by score), "
        f"{stem}-axes-B.png (one elite per cell along each axis), {stem}-growth-B.png "
        "(cells and QD-score against renders).",
    ]
    atomic.atomic_write_text(out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(cli.parse(Args))
