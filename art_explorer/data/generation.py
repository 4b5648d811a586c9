"""Generating training data: (image, params) pairs drawn by a seeded sampler and
rendered by the renderer, written in index order into a data folder or shards.

Sample i is drawn from its own RNG seeded by (seed, i), so a run that was stopped and
resumed continues the very same sequence. `GenerateArgs.n` is how many complete
pairs the folder holds when the run ends: a run adds only the missing ones. Each
file is written atomically, params first, so a pair is complete when its image
exists; orphans left by a killed run are removed at the start.
"""

from __future__ import annotations

import random
import shlex
import signal
import threading
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from art_explorer import atomic, config, utils
from art_explorer.data import dataset, refs_io
from art_explorer.data.preview import SHEET_COLS, SHEET_ROWS, Preview, write_sheet
from art_explorer.progress import progress
from art_explorer.scene import rendering, sampling
from art_explorer.stop import Stop, Stopped


@dataclass
class GenerateArgs:
    """Generate (image, params) pairs with the renderer: the models' training data."""

    n: int = 200
    """complete pairs OUT holds when done: only the missing ones are added, so a rerun
    carries on"""
    out: str = "data"
    """output folder (images/, params/)"""
    size: int | None = None
    """render size in px, square (None: the profile's size)"""
    profile: Literal["cpu", "gpu"] | None = None
    """settings profile for the default size (None: gpu with CUDA, else cpu)"""
    seed: int = 0
    """sample i is drawn from an RNG seeded by (seed, i)"""
    refs: str = "references/refs.jsonl"
    """references to breed from"""
    ref_share: float | None = None
    """share of samples bred from refs, 0-1 (None: 0.3; 0.9 with --scored)"""
    scored: bool = False
    """quality data: breed from --scored-refs weighting parents by score"""
    scored_refs: str = "references/refs-scored.jsonl"
    """scored refs for --scored"""
    elites: str | None = None
    """also breed from the elites of this explore archive (a folder such as
    output/archive; each weighted by its score), when it holds one"""
    elite_share: float = 0.3
    """with --elites: the share of the breeding weight the elites get together"""
    renderer_url: str | None = None
    """POST /api/raster URL (None: $RENDERER_URL, else
    http://localhost:3000/api/raster)"""
    workers: int = 2
    """concurrent render requests"""
    autostart: bool = True
    """start the bundled renderer when nothing answers locally"""
    ray: str | None = field(default=None, metadata={"const": "local"})
    """render on Ray actors: alone (or 'local') starts Ray here; 'auto', HOST:6379 or
    ray://HOST:10001 joins a cluster. Each actor uses one of the comma-separated
    --renderer-url / $RENDERER_URL, else starts its own bundled renderer"""
    ray_workers: int = 2
    """render actors with --ray"""
    ray_cpus: float = 1.0
    """CPUs per render actor; its bundled renderer gets as many processes"""
    shards: bool = False
    """write tar shards (OUT/shard-NNNNNN.tar + index.json, shards.py) instead of
    images/ + params/; implied when OUT already holds shards"""
    per_shard: int = 1000
    """samples per shard"""
    preview: bool = False
    """show samples as they arrive: a window when a display is available, else
    refresh --preview-path"""
    preview_path: str = "output/preview.png"
    """contact sheet of the latest samples without a display"""
    sheet: bool = True
    """write OUT/sheet.png (a contact sheet of the run's first 32 samples)"""

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("--n must be >= 0")
        if self.workers < 1:
            raise ValueError("--workers must be >= 1")
        if self.ref_share is not None and not 0.0 <= self.ref_share <= 1.0:
            raise ValueError("--ref-share must be in [0, 1]")
        if not 0.0 <= self.elite_share < 1.0:
            raise ValueError("--elite-share must be in [0, 1)")
        if self.size is not None and self.size < 1:
            raise ValueError("--size must be >= 1")
        if self.ray_workers < 1 or self.ray_cpus <= 0 or self.per_shard < 1:
            raise ValueError(
                "--ray-workers, --ray-cpus and --per-shard must be positive"
            )


# ----------------------------------------------------------------------------------
# Sampling


@dataclass
class Sampler:
    """Draws sample i from its own RNG seeded by (seed, i).

    parents: flat params to breed from; weights: their scores (None = uniform);
    share: probability that a sample is bred (else sampling.sample_params)."""

    seed: int
    parents: list[dict[str, Any]]
    weights: list[float] | None
    share: float

    def __call__(self, index: int) -> tuple[dict[str, Any], bool]:
        """→ (flat params, bred from refs?)"""
        rng = random.Random(f"art-explorer:{self.seed}:{index}")
        if self.parents and rng.random() < self.share:
            return sampling.breed(self.parents, rng, weights=self.weights), True
        return sampling.sample_params(rng), False


def make_sampler(args: GenerateArgs, log: Any = print) -> Sampler:
    """The sampler that args ask for; says where its parents come from."""
    weights: list[float] | None = None
    parents: list[dict[str, Any]] = []
    if args.scored:
        share = 0.9 if args.ref_share is None else args.ref_share
        scored = refs_io.load_scored_refs(args.scored_refs)
        if scored:
            parents = [p for p, _ in scored]
            weights = [max(0.0, s) for _, s in scored]
            log(
                f"sampling: {share:.0%} bred from {len(parents)} scored refs in "
                f"{args.scored_refs} (weighted by score), the rest random"
            )
        else:
            parents = refs_io.load_refs(args.refs)
            log(
                f"sampling: {args.scored_refs} not found or empty (run `make "
                f"score-refs`); breeding from {args.refs} unweighted instead"
            )
    else:
        share = 0.3 if args.ref_share is None else args.ref_share
        parents = refs_io.load_refs(args.refs)
    if not parents:
        if share > 0:
            log(f"sampling: no refs in {args.refs}; every sample is random")
        share = 0.0
    elif not args.scored:
        log(
            f"sampling: {share:.0%} bred from {len(parents)} refs in {args.refs}, "
            "the rest random"
        )
    if parents:  # gallery star ratings (references/ratings.json) scale the weights
        weights = refs_io.rated_weights(parents, args.refs, weights)
    if parents and args.elites:
        parents, weights = with_elites(parents, weights, args, log)
    return Sampler(args.seed, parents, weights, share)


def with_elites(
    parents: list[dict[str, Any]],
    weights: list[float] | None,
    args: GenerateArgs,
    log: Any,
) -> tuple[list[dict[str, Any]], list[float] | None]:
    """The parents plus the elites of the archive in args.elites, weighted by score
    and scaled so that together they carry args.elite_share of the weight (the
    refs, the pictures people chose, keep the rest). An archive that is missing or
    cannot be read here leaves the parents as they are, and says why."""
    from art_explorer.explore import archive as archive_mod
    from art_explorer.explore import solution

    assert args.elites is not None
    if not (Path(args.elites) / "archive.npz").exists():
        log(f"sampling: no explore archive in {args.elites}; breeding from refs only")
        return parents, weights
    try:
        elites = archive_mod.Archive.open(args.elites).elites()
    except archive_mod.ArchiveError as e:
        log(f"sampling: the elites are left out: {e}")
        return parents, weights
    scores = np.maximum(elites["objective"].astype(np.float64), 0.0)
    if not len(scores) or scores.sum() <= 0 or args.elite_share <= 0:
        return parents, weights
    base = list(weights) if weights is not None else [1.0] * len(parents)
    scale = args.elite_share / (1 - args.elite_share) * sum(base) / scores.sum()
    kids = [solution.to_params(x) for x in elites["solution"]]
    log(
        f"sampling: and from {len(kids)} elites of {args.elites} "
        f"({args.elite_share:.0%} of the breeding weight, by score)"
    )
    return parents + kids, base + (scores * scale).tolist()


# ----------------------------------------------------------------------------------
# The output folder


def clean_orphans(layout: dataset.Layout) -> tuple[int, int]:
    """Remove params without an image and stray .tmp files (from a killed run).

    Returns (orphan params removed, .tmp files removed). An image without params
    cannot come from this module (params are written first) and is left alone."""
    orphans = 0
    for i in sorted(layout.indices("json") - layout.indices("png")):
        layout.params_path(i).unlink(missing_ok=True)
        orphans += 1
    tmps = 0
    for folder in (layout.images, layout.params):
        if folder.is_dir():
            for f in folder.glob("*.tmp"):
                f.unlink(missing_ok=True)
                tmps += 1
    return orphans, tmps


class PairWriter:
    """Where a run's pairs go: the folder layout (params first, then the image,
    each atomically) or, with --shards, tar shards (shards.ShardWriter)."""

    def __init__(self, args: GenerateArgs, layout: dataset.Layout, log: Any) -> None:
        from art_explorer.data import shards

        self.layout = layout
        self.shards: Any = None
        if args.shards or shards.is_shard_folder(layout.folder):
            if layout.next_index() > 0:
                raise SystemExit(
                    f"{layout.folder} holds images/ + params/; write shards to another "
                    f"folder (convert with `python shards.py pack {layout.folder} DST`)"
                )
            args.shards = True
            self.shards = shards.ShardWriter(layout.folder, args.per_shard)
            if self.shards.tmp_removed:
                log(
                    f"cleanup: removed {self.shards.tmp_removed} unfinished shard(s) "
                    f"left by a killed run in {layout.folder}"
                )

    def next_index(self) -> int:
        if self.shards is not None:
            return self.shards.next_index
        return self.layout.next_index()

    def count(self) -> int:
        """Complete samples already there (shards hold 0 .. next_index - 1)."""
        if self.shards is not None:
            return self.shards.next_index
        return self.layout.count_pairs()

    def add(self, i: int, params: dict[str, Any], png: bytes) -> None:
        if self.shards is not None:
            self.shards.add(i, params, png)
            return
        atomic.write_json(self.layout.params_path(i), params)
        atomic.atomic_write_bytes(self.layout.image_path(i), png)

    def close(self) -> None:
        if self.shards is not None:
            self.shards.close()


def resume_command(args: GenerateArgs, size: int) -> str:
    """The command line that completes this run: the same one (--n is a total)."""
    cmd = ["python", "generate.py", "--n", str(args.n), "--out", str(args.out)]
    cmd += ["--size", str(size), "--seed", str(args.seed)]
    if args.scored:
        cmd.append("--scored")
    if args.ref_share is not None:
        cmd += ["--ref-share", str(args.ref_share)]
    defaults = GenerateArgs()
    if args.refs != defaults.refs:
        cmd += ["--refs", args.refs]
    if args.scored and args.scored_refs != defaults.scored_refs:
        cmd += ["--scored-refs", args.scored_refs]
    if args.elites:
        cmd += ["--elites", args.elites]
        if args.elite_share != defaults.elite_share:
            cmd += ["--elite-share", str(args.elite_share)]
    if args.renderer_url:
        cmd += ["--renderer-url", args.renderer_url]
    return shlex.join(cmd + scale_flags(args))


def scale_flags(args: GenerateArgs) -> list[str]:
    """The --ray / --shards flags of a run, for its resume command."""
    cmd: list[str] = []
    if args.ray:
        cmd += ["--ray", args.ray, "--ray-workers", str(args.ray_workers)]
        if args.ray_cpus != 1.0:
            cmd += ["--ray-cpus", f"{args.ray_cpus:g}"]
    if args.shards:
        cmd += ["--shards", "--per-shard", str(args.per_shard)]
    return cmd


# ----------------------------------------------------------------------------------
# The run: prepare, render in index order, close, report


@dataclass
class Run:
    """One generation run: where it writes, what it draws, and how far it got."""

    args: GenerateArgs
    size: int
    layout: dataset.Layout
    writer: PairWriter
    sampler: Sampler
    start: int
    todo: int
    log: Any
    preview: Preview | None = None
    sheet: list[tuple[np.ndarray, str]] = field(default_factory=list)
    written: int = 0
    bred: int = 0
    stop: Stop = field(default_factory=Stop)
    error: BaseException | None = None


def generate(args: GenerateArgs, log: Any = print) -> int:
    """Top args.out up to args.n complete pairs; returns how many were written.

    Raises rendering.RendererError (renderer down or refusing), refs_io.RefsError (an
    unreadable refs line), OSError (a full disk: the error names the file) and
    Stopped (a KeyboardInterrupt) after Ctrl-C/SIGTERM, each after writing every
    pair that completed and saying how to resume."""
    run = prepare(args, log)
    if run is None:
        return 0
    url = rendering.renderer_url(args.renderer_url)
    renderer = (
        nullcontext(url)  # with --ray the actors have their renderers
        if not args.autostart or args.ray
        else rendering.ensure_renderer(url)
    )
    try:
        with renderer as live_url, run.stop.installed():
            render_all(run, live_url)
    except KeyboardInterrupt as e:  # a second signal, or Ctrl-C before the loop
        run.error = e
    finally:
        close(run)
    return report(run)


def prepare(args: GenerateArgs, log: Any) -> Run | None:
    """Check and clean the folder, count what is missing, build the sampler; None
    when nothing is missing."""
    size = args.size or config.get_profile(args.profile).size
    layout = dataset.Layout(Path(args.out))
    try:  # never append pairs of this schema to a folder of another
        dataset.check_data_schema(layout.folder)
    except dataset.DataSchemaError as e:
        raise SystemExit(str(e)) from None
    orphans, tmps = clean_orphans(layout)
    if orphans or tmps:
        log(
            f"cleanup: removed {orphans} params without an image and {tmps} .tmp "
            f"files left by an interrupted run in {layout.folder}"
        )
    writer = PairWriter(args, layout, log)
    start, have = writer.next_index(), writer.count()
    todo = max(0, args.n - have)
    sampler = make_sampler(args, log)
    if todo == 0:
        log(
            f"nothing to do: {layout.folder} holds {have} pairs, --n {args.n} "
            f"({start} is the next index; raise --n to add more)"
        )
        return None
    if not args.shards:
        layout.images.mkdir(parents=True, exist_ok=True)
        layout.params.mkdir(parents=True, exist_ok=True)
    layout.folder.mkdir(parents=True, exist_ok=True)
    dataset.write_data_schema(layout.folder)
    log(
        f"generating {todo} pairs at {size}x{size} px into {layout.folder}"
        + (f", which holds {have} (--n {args.n})" if have else "")
        + f" (from {start:06d}, seed {args.seed}, {args.workers} workers, "
        f"{rendering.renderer_url(args.renderer_url)})"
    )
    shown = Preview(Path(args.preview_path), log) if args.preview else None
    return Run(args, size, layout, writer, sampler, start, todo, log, shown)


def _render_one(
    client: rendering.RendererClient, run: Run, failed: threading.Event, i: int
) -> tuple[dict[str, Any], bool, bytes]:
    """Draw and render sample i (in a pool thread); after a failure start no more."""
    if failed.is_set():
        raise CancelledError  # the loop stops at the earlier failure
    params, is_bred = run.sampler(i)
    try:
        return params, is_bred, client.render_png(params, run.size)
    except rendering.RendererError:
        failed.set()
        raise


def render_all(run: Run, live_url: str) -> None:
    """Render samples start … start+todo-1 with a small window in flight, writing
    strictly in index order (the folder never has gaps, whatever order renders
    finish in). A renderer or disk error stops it, kept in run.error."""
    args = run.args
    client = rendering.RendererClient(url=live_url, pool=max(8, args.workers))
    failed = threading.Event()
    bar = progress(total=run.todo, desc="generate", unit="img")
    pool = ThreadPoolExecutor(args.workers, thread_name_prefix="render")
    ray_pool = _open_ray_pool(run) if args.ray else None
    window = ray_pool.window if ray_pool else 2 * args.workers
    pending: dict[int, Future[tuple[dict[str, Any], bool, bytes]]] = {}
    nxt, end = run.start, run.start + run.todo
    try:
        for i in range(run.start, end):
            while not run.stop.event.is_set() and nxt < end and len(pending) < window:
                pending[nxt] = (
                    ray_pool.submit(nxt)
                    if ray_pool
                    else pool.submit(_render_one, client, run, failed, nxt)
                )
                nxt += 1
            if i not in pending:
                break  # stopping: everything in flight is written
            try:
                params, is_bred, png = pending.pop(i).result()
                run.writer.add(i, params, png)
            except rendering.RendererError as e:
                # While stopping (the renderer may have got the Ctrl-C too) an
                # in-flight render that fails is dropped, not an error.
                run.error = None if run.stop.event.is_set() else e
                break
            except OSError as e:  # a full disk: the pairs so far stay complete
                run.error = e
                break
            _keep(run, i, is_bred, png)
            bar.update(1)
    finally:
        for f in pending.values():
            f.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
        client.close()
        if ray_pool is not None:
            ray_pool.close()


def _keep(run: Run, i: int, is_bred: bool, png: bytes) -> None:
    """Count a written pair; keep its picture for the sheet and the preview."""
    run.written += 1
    run.bred += is_bred
    first = len(run.sheet) < SHEET_COLS * SHEET_ROWS
    if run.preview is None and not first:
        return
    label = f"{i:06d}{' bred' if is_bred else ''}"
    image = utils.png_to_array(png)
    if first:
        run.sheet.append((image, label))
    if run.preview is not None:
        run.preview.add(image, label)


def _open_ray_pool(run: Run) -> Any:
    """cluster.RayRenderPool for --ray (Ray is imported only here)."""
    from art_explorer.training import cluster

    args = run.args
    return cluster.RayRenderPool(
        args.ray or "local",
        args.ray_workers,
        run.sampler,
        run.size,
        urls=cluster.split_urls(args.renderer_url),
        cpus_per_worker=args.ray_cpus,
        log=run.log,
    )


def close(run: Run) -> None:
    """Close the writer (the last shard), write the preview and the sheet; a full
    disk here is a message, not a second error over the first."""
    run.writer.close()
    try:
        if run.preview is not None:
            run.preview.flush()
        if run.sheet and run.args.sheet:
            write_sheet(run.layout.folder / "sheet.png", run.sheet)
    except OSError as e:
        run.log(f"no contact sheet: {utils.os_error_line(e)}")
        run.sheet = []


def report(run: Run) -> int:
    """Say what was written and how to resume; raise what stopped the run."""
    log, folder, start, written = run.log, run.layout.folder, run.start, run.written
    span = f" ({start:06d}-{start + written - 1:06d})" if written else ""
    log(f"wrote {written} pairs to {folder}{span}, {run.bred} bred from refs")
    if run.sheet and run.args.sheet:
        log(f"contact sheet of the first samples: {folder / 'sheet.png'}")
    if run.preview is not None and run.preview.window is None and written:
        log(f"preview: {run.preview.path}")
    interrupted = run.stop.event.is_set() or isinstance(run.error, KeyboardInterrupt)
    remaining = run.todo - written
    if remaining > 0 and (interrupted or (run.error is not None and written)):
        why = run.stop.signal_name or ("Ctrl-C" if interrupted else "the error below")
        log(
            f"stopped by {why} after {written} of {run.todo}; {folder} holds only "
            f"complete pairs. Add the remaining {remaining} of the same sequence "
            f"with the same command:\n  {resume_command(run.args, run.size)}"
        )
    if interrupted:
        raise Stopped(run.stop.signum or signal.SIGINT)
    if run.error is not None:
        raise run.error
    return written
