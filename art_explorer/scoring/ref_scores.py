"""Scoring the references: every ref rendered and scored (scoring.scorers), cached
by scorer, size and params, and written to refs-scored.jsonl highest first with a
contact sheet in score order.

refs-scored.jsonl holds one line a ref, ``{"params": <the refs line as written>,
"score": s, "scorer": "<name>", "line": N}`` (read back by
`refs_io.load_scored_refs`): the original pipeline's layout (its score_refs.py keys
its score map on the prefixed ref line under "params"). It is written through the
refs store (art_explorer.refs.store), under the lock every edit of references/ takes.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from art_explorer import atomic, utils
from art_explorer.data import refs_io
from art_explorer.progress import progress
from art_explorer.refs.store import RefsStore
from art_explorer.scene import rendering, schema
from art_explorer.scoring.aesthetic import Scorer
from art_explorer.scoring.scorers import Log, create_scorer
from art_explorer.scoring.vlm import DEFAULT_VLM

CACHE_VERSION = 1
SHEET_CELL = 128  # px per contact-sheet tile
SHEET_COLS = 10


@dataclass
class ScoreRefsArgs:
    """Aesthetic scoring of the references → references/refs-scored.jsonl."""

    refs: str = "references/refs.jsonl"
    """refs to score, one Leva-prefixed JSON object a line"""
    out: str = "references/refs-scored.jsonl"
    """scored refs, highest score first"""
    cache: str = "references/.score-cache.json"
    """score cache"""
    fresh: bool = False
    """ignore the cache: score every ref again (and store the new scores)"""
    sheet: str | None = None
    """contact sheet of the refs in score order; '' for none (None: --out with .png)"""
    scorer: Literal["auto", "qwen2-vl", "heuristic"] = "auto"
    """auto: qwen2-vl when its weights are on this machine, else heuristic"""
    vlm_model: str = DEFAULT_VLM
    """Qwen2-VL hub id or local folder"""
    allow_download: bool = False
    """let transformers download the VLM weights when they are not cached (needs the
    internet)"""
    device: str | None = None
    """torch device for the VLM, e.g. cuda or cpu (None: cuda when available)"""
    size: int | None = None
    """render size in px (None: the scorer's, 256 heuristic, 448 qwen2-vl)"""
    renderer_url: str | None = None
    """POST /api/raster URL (None: $RENDERER_URL or http://localhost:3000/api/raster;
    started here when nothing answers)"""
    autostart: bool = True
    """start the bundled renderer when nothing answers locally"""
    workers: int = 4
    """renders in flight at once"""

    def __post_init__(self) -> None:
        if self.sheet is None:
            self.sheet = str(Path(self.out).with_suffix(".png"))


class ScoreCache:
    """Scores by key in a JSON file {"version": 1, "scores": {key: record}}, written
    atomically. An unreadable file is ignored with a warning (it only holds scores
    that can be made again) and replaced on the next save."""

    def __init__(self, path: str | Path, log: Log = print) -> None:
        self.path = Path(path)
        self.scores: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return
        try:
            obj = json.loads(self.path.read_text(encoding="utf-8"))
            if obj.get("version") != CACHE_VERSION:
                raise ValueError(f"version {obj.get('version')!r}")
            self.scores = {
                str(k): dict(v)
                for k, v in obj["scores"].items()
                if isinstance(v, dict) and isinstance(v.get("score"), (int, float))
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log(f"warning: ignoring unreadable score cache {self.path} ({e})")

    @staticmethod
    def key(scorer: Scorer, size: int, params: dict[str, Any]) -> str:
        return f"{scorer.cache_id}@{size}|{schema.canonical_json(params)}"

    def save(self) -> None:
        atomic.write_json(self.path, {"version": CACHE_VERSION, "scores": self.scores})


def _thumbnail(img: np.ndarray) -> Any:
    """float (H, W, 3) in [0, 1] → PIL tile of at most SHEET_CELL px."""
    from PIL import Image

    u8 = (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(u8)
    if im.width > SHEET_CELL:
        im = im.resize((SHEET_CELL, SHEET_CELL), Image.Resampling.LANCZOS)
    return im


def score_refs(
    args: ScoreRefsArgs, log: Log = print
) -> list[tuple[dict[str, Any], float]]:
    """Score every ref; returns [(flat params, score)] highest first.

    Raises refs_io.RefsError (unreadable refs line), rendering.RendererError (renderer
    unreachable or refusing) and ScorerError (VLM weights not found); on Ctrl-C,
    KeyboardInterrupt after saving the scores made so far to the cache."""
    if not Path(args.refs).exists():
        # A mistyped path must not wipe the ranking that quality breeding uses.
        raise refs_io.RefsError(f"{args.refs}: no such refs file")
    refs = refs_io.load_refs_numbered(args.refs)
    store = RefsStore(args.refs, args.out)
    if not refs:
        log(f"no refs in {args.refs}: nothing to score (add some with make save-ref)")
        store.write_scored("")
        return []
    scorer = create_scorer(
        args.scorer, args.vlm_model, args.device, args.allow_download, log
    )
    size = args.size or scorer.default_size
    cache = ScoreCache(args.cache, log)
    keys = [ScoreCache.key(scorer, size, p) for _, p in refs]
    todo: list[int] = []  # indices to score: new or changed refs (once per key)
    seen: set[str] = set()
    for i, k in enumerate(keys):
        if (args.fresh or k not in cache.scores) and k not in seen:
            todo.append(i)
        seen.add(k)
    thumbs = _render_and_score(args, refs, scorer, size, cache, keys, todo, log)
    order = sorted(range(len(refs)), key=lambda i: (-cache.scores[keys[i]]["score"], i))
    records = [cache.scores[keys[i]] for i in order]
    written = refs_io.read_refs_lines(args.refs)
    lines = [
        json.dumps({"params": written[refs[i][0]], **rec, "line": refs[i][0]})
        for i, rec in zip(order, records, strict=True)
    ]
    store.write_scored("".join(x + "\n" for x in lines))
    log(
        f"scored {len(todo)} refs, {len(refs) - len(todo)} from the cache "
        f"({scorer.name}, {size}px) → {args.out}"
    )
    _print_ends(refs, [cache.scores[keys[i]] for i in order], order, scorer.name, log)
    if args.sheet:
        labels = [
            f"#{refs[i][0]} {rec['score']:.2f}"
            for i, rec in zip(order, records, strict=True)
        ]
        tiles = [thumbs[i] for i in order]
        sheet = utils.contact_sheet(tiles, labels, cols=SHEET_COLS, cell=SHEET_CELL)
        atomic.write_png(args.sheet, sheet)
        log(f"contact sheet → {args.sheet}")
    return [
        (refs[i][1], float(rec["score"])) for i, rec in zip(order, records, strict=True)
    ]


def _render_and_score(
    args: ScoreRefsArgs,
    refs: list[tuple[int, dict[str, Any]]],
    scorer: Scorer,
    size: int,
    cache: ScoreCache,
    keys: list[str],
    todo: list[int],
    log: Log,
) -> dict[int, Any]:
    """Render the refs to score (every ref when a sheet is wanted), score those in
    `todo` into the cache (saved every 10 and at the end, Ctrl-C included); returns
    the sheet's thumbnails by ref index."""
    to_render = list(range(len(refs))) if args.sheet else todo
    thumbs: dict[int, Any] = {}
    if not to_render:
        return thumbs
    renderer = (
        rendering.ensure_renderer(args.renderer_url, log=log)
        if args.autostart
        else nullcontext(rendering.renderer_url(args.renderer_url))
    )
    with renderer as url:
        client = rendering.RendererClient(url=url, pool=max(8, args.workers))
        new = 0
        try:
            renders = rendering.render_in_order(
                client.render, [refs[i][1] for i in to_render], size, args.workers
            )
            bar = progress(
                zip(to_render, renders, strict=True),
                f"scoring ({scorer.name}, {size}px)",
                total=len(to_render),
                unit="ref",
            )
            todo_set = set(todo)
            for i, img in bar:
                if i in todo_set:
                    result = scorer.score(img)
                    if result.fallback_from:
                        bar.write(
                            f"warning: {args.refs} line {refs[i][0]}: "
                            f"{result.fallback_from} replied {result.reply!r}, "
                            f"no number in it; using the heuristic's "
                            f"{result.score:.3f}"
                        )
                    cache.scores[keys[i]] = result.record()
                    new += 1
                    if new % 10 == 0:
                        cache.save()
                if args.sheet:
                    thumbs[i] = _thumbnail(img)
        except KeyboardInterrupt:
            log(
                f"stopped: the {new} new scores are kept in {cache.path}; run "
                "again to score the rest"
            )
            raise
        finally:
            client.close()
            if new:
                cache.save()
    return thumbs


def _print_ends(
    refs: list[tuple[int, dict[str, Any]]],
    records: list[dict[str, Any]],
    order: list[int],
    scorer_name: str,
    log: Log,
) -> None:
    """The top and bottom five (all of ten or fewer), one line each."""
    shown = list(range(len(order)))
    if len(order) > 10:
        shown = shown[:5] + shown[-5:]
    for k, j in enumerate(shown):
        if k == 5 and len(order) > 10:
            log("  ...")
        rec, i = records[j], order[j]
        tag = f"  ({rec['scorer']})" if rec["scorer"] != scorer_name else ""
        log(
            f"  {rec['score']:.3f}  line {refs[i][0]:>3}  "
            f"{schema.describe(refs[i][1])}{tag}"
        )
