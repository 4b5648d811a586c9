"""Grow the archive: quality-diversity search (MAP-Elites with pyribs) over real renders.

One call (`grow`): open output/archive/ (or start one, seeded with the references),
then step until the render budget is spent: the emitters propose solutions, each is
decoded to params and rendered for real (the bundled renderer is started when none
answers), scored by the aesthetic scorer (art_explorer.scoring: the heuristic, or the VLM when
its weights are here, times the heuristic's gate so blank and blown-out renders score
0) and placed by its descriptors; pyribs' Scheduler tells the archive and the
emitters. The archive is saved after every step, so its first elites are on disk in
seconds and a kill loses at most one step. At the end the best new elites are
rendered at the final size into output/ (as today's explore: `make save-ref ID=out:N`
keeps one), with a contact sheet and the archive's map.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from art_explorer import atomic, utils
from art_explorer.data import dataset, refs_io
from art_explorer.explore import archive as archive_mod
from art_explorer.explore import descriptors, emitters, maps, solution
from art_explorer.scene import rendering, schema
from art_explorer.scoring import aesthetic, scorers

Log = Callable[[str], None]
MIN_COVERAGE = (
    0.002  # lit share outside which a render scores 0 (today's explore guard)
)
MAX_COVERAGE = 0.6


class ExploreError(RuntimeError):
    """What the user can fix: no references, an archive from another schema."""


@dataclass
class GrowArgs:
    """Grow the archive of distinct, striking pictures (quality-diversity): one elite
    per descriptor cell (lit share × symmetry × colour), each the best-scoring picture
    of its kind found so far. The archive persists in --archive and every call grows
    it; the best new elites are rendered into --out."""

    renders: int = 500
    """real renders this call may spend (a new archive's seeding by the refs included)"""
    archive: str = "output/archive"
    """the archive's folder (archive.npz, archive.json, elites.jsonl, thumbs/, map.png)"""
    out: str = "output"
    """where the best new elites go: images/ and params/ NNNNNN, explore-NNN.png"""
    n: int = field(default=8, metadata={"flags": ("-n",)})
    """best new elites to render at --final-size into --out (0: none)"""
    size: int = 128
    """px: the size candidates are rendered, scored and measured at"""
    final_size: int = 1024
    """px: the size of the renders written to --out"""
    batch: int = 32
    """solutions each emitter proposes per step"""
    emitters: list[str] = field(default_factory=lambda: list(emitters.EMITTERS))
    """the emitters, any of: breed, iso-line, gaussian, fresh, cma-me"""
    scorer: Literal["auto", "qwen2-vl", "heuristic"] = "auto"
    """aesthetic scorer (score_refs.py): the VLM when its weights are here, else the heuristic"""
    refs: str = "references/refs.jsonl"
    """references that seed a new archive"""
    renderer_url: str | None = None
    """POST /api/raster URL (default $RENDERER_URL, else localhost:3000; a local one is started when nothing answers)"""
    workers: int = 2
    """render requests in flight"""
    like: list[int] = field(default_factory=list)
    """"more like this": elite ids whose pictures (and their new children) are the only parents this call (empty: the whole archive)"""
    max_seconds: float = 0.0
    """stop after this many seconds even if renders are left (0: no limit)"""
    seed: int = 0
    """random seed (the emitters' streams also depend on the archive's render count, so a second call does not repeat the first)"""

    def __post_init__(self) -> None:
        for name in ("renders", "size", "final_size", "batch", "workers"):
            if getattr(self, name) < 1:
                raise ExploreError(f"--{name.replace('_', '-')} must be >= 1")
        if self.n < 0:
            raise ExploreError("-n must be >= 0")
        if not 32 <= self.size <= 2048 or not 32 <= self.final_size <= 2048:
            raise ExploreError("--size and --final-size must be within 32-2048")
        bad = [e for e in self.emitters if e not in emitters.KNOWN]
        if bad or not self.emitters:
            raise ExploreError(
                f"--emitters: {', '.join(bad) or 'none given'} (choose from "
                f"{', '.join(emitters.KNOWN)})"
            )


@dataclass
class Evaluator:
    """Solutions → real renders → (scores, descriptors), and the thumbnails."""

    client: rendering.RendererClient
    scorer: Any
    size: int
    workers: int

    def render(self, params: list[dict[str, Any]]) -> list[np.ndarray]:
        return rendering.render_many(
            self.client.render, params, self.size, self.workers
        )

    def evaluate(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """images (H, W, 3) in [0, 1] → scores (N,) in [0, 1], descriptors (N, A)."""
        scores, measures = [], []
        for img in images:
            f = aesthetic.aesthetic_features(img)
            s, gate, _ = aesthetic.heuristic_score(f)
            if self.scorer.name != "heuristic":
                s = self.scorer.score(img).score * gate
            if not MIN_COVERAGE <= f["coverage"] <= MAX_COVERAGE:
                s = 0.0
            scores.append(s)
            measures.append(descriptors.measure(f, img))
        return np.array(scores), np.stack(measures)


def add_batch(
    arch: archive_mod.Archive,
    ev: Evaluator,
    sols: np.ndarray,
    tell: Callable[..., None] | None = None,
) -> int:
    """Render, score and place solutions (N, D); each gets an id, those that become
    elites a thumbnail. tell: the scheduler's tell (else the archive's add). Returns
    how many became elites."""
    params = [solution.to_params(x) for x in sols]
    images = ev.render(params)
    scores, measures = ev.evaluate(images)
    ids = arch.next_id + np.arange(len(sols), dtype=np.int64)
    arch.next_id += len(sols)
    arch.renders += len(sols)
    if tell is not None:
        tell(scores, measures, elite_id=ids)
    else:
        arch.grid.add(sols, scores, measures, elite_id=ids)
    live = set(arch.grid.data("elite_id").tolist())
    added = 0
    for k, i in enumerate(ids.tolist()):
        if i in live:
            added += 1
            atomic.write_png(arch.thumb_path(i), _pil(images[k]))
    return added


def grow(args: GrowArgs, log: Log = print) -> dict[str, Any]:
    """One call of explore: grow the archive by args.renders real renders.

    Returns the archive's summary (archive.Archive.summary, without cells) plus
    "new": the ids of this call's elites, "results" (also "ids", as predict's
    explore names them): the --out ids written, "sheet" and "map": the paths of the
    contact sheet (None when nothing was written), "map" and "growth_png": the
    archive's map (maps.draw_map) and growth curve (maps.draw_growth)."""
    t0 = time.time()
    carried = np.zeros((0, solution.SOLUTION_DIM))
    try:
        arch = archive_mod.Archive.open(args.archive, args.seed)
    except archive_mod.ArchiveRedrawn as e:
        arch, carried = set_aside(Path(args.archive), e, args.seed, log)
    except archive_mod.ArchiveError as e:
        raise ExploreError(str(e)) from None
    scorer = scorers.create_scorer(args.scorer, log=log)
    start_id, start_renders = arch.next_id, arch.renders
    with rendering.ensure_renderer(args.renderer_url, log=log) as url:
        client = rendering.RendererClient(url=url, pool=max(8, args.workers))
        with contextlib.closing(client):
            ev = Evaluator(client, scorer, args.size, args.workers)
            if arch.grid.empty:
                seed_with_refs(arch, ev, args.refs, log)
            if len(carried):
                added = add_batch(arch, ev, carried)
                arch.save()
                log(f"redrew {len(carried)} elites of the old archive: {added} kept")
            _search(arch, ev, args, start_renders, t0, log)
            new = [i for i in arch.elites()["elite_id"].tolist() if i >= start_id]
            results, sheet = write_results(arch, client, args, new)
    map_path, growth_path = (
        Path(args.archive) / "map.png",
        Path(args.archive) / "growth.png",
    )
    summary = arch.summary()
    atomic.write_png(map_path, maps.draw_map(summary))
    atomic.write_png(growth_path, maps.draw_growth(summary))
    out = arch.summary(cells=False)
    out.update(new=new, results=results, ids=results, sheet=sheet)
    out.update(map=str(map_path), growth_png=str(growth_path))
    log(
        f"archive {args.archive}: {out['cells_filled']}/{out['cells_total']} cells, "
        f"QD-score {out['qd_score']:.2f}, best {out['best']:.3f}; this call: "
        f"{arch.renders - start_renders} renders, {len(new)} new elites, "
        f"{time.time() - t0:.1f} s; map {map_path}"
    )
    return out


def set_aside(
    folder: Path, old: archive_mod.ArchiveRedrawn, seed: int, log: Log
) -> tuple[archive_mod.Archive, np.ndarray]:
    """An archive of an older schema version is kept as it was, renamed
    FOLDER.vN; a new one starts in FOLDER and its elites are returned, to be
    redrawn into it (their params are the same, their pictures not)."""
    aside = utils.aside_path(folder, f"v{old.version}")
    folder.rename(aside)
    log(
        f"{folder} was made under schema v{old.version} (pictures drawn otherwise "
        f"now): kept as {aside}; a new archive starts from the refs and its "
        f"{len(old.solutions)} elites, redrawn"
    )
    return archive_mod.Archive.empty(folder, seed), old.solutions


def seed_with_refs(
    arch: archive_mod.Archive, ev: Evaluator, refs_path: str, log: Log
) -> None:
    """A new archive starts from the references (those with ≤ MAX_LAYERS layers)."""
    try:
        refs = refs_io.load_refs(refs_path)
    except refs_io.RefsError as e:
        raise ExploreError(str(e)) from None
    refs = [r for r in refs if len(r["layers"]) <= schema.MAX_LAYERS]
    if not refs:
        raise ExploreError(
            f"no references in {refs_path} to seed the archive: add some with "
            "`make save-ref ID=...`"
        )
    added = add_batch(arch, ev, np.stack([solution.to_vector(r) for r in refs]))
    arch.save()
    log(f"seeded {arch.folder} with {added} of {len(refs)} refs ({refs_path})")
    if arch.grid.empty:
        raise ExploreError(
            f"none of the {len(refs)} refs scored above {archive_mod.MIN_SCORE}: "
            "nothing to grow from"
        )


def _search(
    arch: archive_mod.Archive,
    ev: Evaluator,
    args: GrowArgs,
    start_renders: int,
    t0: float,
    log: Log,
) -> None:
    """Scheduler steps until the budget (renders, seconds) is spent; saves each."""
    from ribs.schedulers import Scheduler

    parents = focus_grid(arch, args.like) if args.like else arch.grid
    ems = emitters.create_emitters(
        parents, args.emitters, args.batch, args.seed * 7919 + arch.renders
    )
    # with --like the emitters draw from a grid of those elites and their children;
    # every result also goes to the archive itself (pyribs' result_archive)
    sched = Scheduler(parents, ems, result_archive=arch.grid if args.like else None)
    while True:
        left = args.renders - (arch.renders - start_renders)
        if left < len(ems) * args.batch or (
            args.max_seconds and time.time() - t0 > args.max_seconds
        ):
            break
        sols = sched.ask()
        added = add_batch(arch, ev, sols, tell=sched.tell)
        arch.save()
        s = arch.grid.stats
        log(
            f"renders {arch.renders - start_renders}/{args.renders}: "
            f"+{added} elites, {s.num_elites} cells, QD-score {s.qd_score:.2f}, "
            f"best {s.obj_max:.3f} ({time.time() - t0:.0f} s)"
        )


def focus_grid(arch: archive_mod.Archive, like: list[int]) -> Any:
    """A fresh grid holding only the elites `like` (ids), for "more like this"."""
    d = arch.elites()
    pos = {int(i): k for k, i in enumerate(d["elite_id"].tolist())}
    missing = [i for i in like if i not in pos]
    if missing:
        raise ExploreError(
            f"--like: no elite {', '.join(map(str, missing))} in {arch.folder} "
            "(ids: elites.jsonl)"
        )
    k = np.array([pos[i] for i in like])
    grid = archive_mod.new_grid()
    grid.add(
        d["solution"][k], d["objective"][k], d["measures"][k], elite_id=d["elite_id"][k]
    )
    return grid


def write_results(
    arch: archive_mod.Archive,
    client: rendering.RendererClient,
    args: GrowArgs,
    new: list[int],
) -> tuple[list[int], str | None]:
    """The best args.n distinct new elites at args.final_size → out/images|params,
    and a contact sheet out/explore-NNN.png. Returns (out ids, sheet path)."""
    picks = maps.best_distinct(arch.summary(), args.n, among=set(new))
    if not picks:
        return [], None
    out = Path(args.out)
    layout = dataset.Layout(out)
    idx0 = layout.next_index()
    d = arch.elites()
    sols = dict(zip(d["elite_id"].tolist(), d["solution"], strict=True))
    ids, tiles, labels = [], [], []
    for k, cell in enumerate(picks):
        params = solution.to_params(sols[cell["id"]])
        png = client.render_png(params, args.final_size)
        atomic.write_json(layout.params_path(idx0 + k), params)
        atomic.atomic_write_bytes(layout.image_path(idx0 + k), png)
        ids.append(idx0 + k)
        tiles.append(utils.png_to_array(png))
        labels.append(f"out:{idx0 + k} score {cell['score']:.2f}")
    sheet = out / f"explore-{maps.next_sheet(out):03d}.png"
    atomic.write_png(sheet, utils.contact_sheet(tiles, labels, cols=4, cell=256))
    return ids, str(sheet)


def _pil(img: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
