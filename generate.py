"""Generate (image, params) pairs with the renderer: the models' training data.

    python generate.py --n 200                        # → data/images, data/params
    python generate.py --scored --n 100 --out data/quality
    python generate.py --n 50 --preview               # watch the samples arrive
    python generate.py --n 100000 --ray --shards --out data-shards   # README: Scaling out

Sampling follows pipeline.md "Sampling": a random run is `--ref-share` (0.3) bred from
references/refs.jsonl and the rest drawn at random (sampling.sample_params); `--scored`
breeds 90% from references/refs-scored.jsonl with the scores as parent weights (the
quality data). Sample i is drawn from its own RNG seeded by (seed, i), so a run that
was stopped and resumed continues the very same sequence.

dataset.Layout: OUT/images/000123.png + OUT/params/000123.json (flat params), and
OUT/schema.json (the parameter schema they were written for: a folder of another
schema is refused, with a message to regenerate it). Each file is written
atomically, params first, so a pair is complete when its image exists.
`--n N` is how many complete pairs OUT holds when the run ends: a run adds only the
pairs missing, so the same command run again after an interruption (even kill -9)
carries on where it stopped, and one run after a finished one adds nothing; raise N
to add more. Numbering continues after the highest index present. At start, orphans (params
without an image, stray .tmp files) left by a killed run are removed. Ctrl-C or
SIGTERM stops cleanly (a second one stops at once) and says how to resume.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from art_explorer import atomic, config, utils
from art_explorer.data import dataset, refs_io
from art_explorer.scene import rendering, sampling

SHEET_COLS, SHEET_ROWS = 8, 4
PREVIEW_COUNT = 16
NON_GUI_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = ap.add_argument_group("data")
    g.add_argument(
        "--n",
        type=int,
        default=200,
        help="complete pairs OUT holds when done: only the missing ones are added, "
        "so a rerun carries on (default 200)",
    )
    g.add_argument(
        "--out", default="data", help="output folder (images/, params/) (data)"
    )
    g.add_argument(
        "--size",
        type=int,
        default=None,
        help="render size in px, square (default: the profile's size)",
    )
    g.add_argument(
        "--profile",
        choices=sorted(config.PROFILES),
        default=None,
        help="settings profile for the default size (default: gpu with CUDA, else cpu)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="sample i is drawn from an RNG seeded by (seed, i) (default 0)",
    )
    s = ap.add_argument_group("sampling")
    s.add_argument(
        "--refs",
        default="references/refs.jsonl",
        help="references to breed from (references/refs.jsonl)",
    )
    s.add_argument(
        "--ref-share",
        type=float,
        default=None,
        help="share of samples bred from refs, 0-1 (0.3; 0.9 with --scored)",
    )
    s.add_argument(
        "--scored",
        action="store_true",
        help="quality data: breed from --scored-refs weighting parents by score",
    )
    s.add_argument(
        "--scored-refs",
        default="references/refs-scored.jsonl",
        help="scored refs for --scored (references/refs-scored.jsonl)",
    )
    r = ap.add_argument_group("renderer")
    r.add_argument(
        "--renderer-url",
        default=None,
        help="POST /api/raster URL (default: $RENDERER_URL, else "
        "http://localhost:3000/api/raster)",
    )
    r.add_argument(
        "--workers", type=int, default=2, help="concurrent render requests (2)"
    )
    r.add_argument(
        "--no-autostart",
        action="store_true",
        help="do not start the bundled renderer when nothing answers locally",
    )
    c = ap.add_argument_group("scaling out (README: Scaling out)")
    c.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="render on Ray actors: no ADDRESS (or 'local') starts Ray here; 'auto', "
        "HOST:6379 or ray://HOST:10001 joins a cluster. Each actor uses one of the "
        "comma-separated --renderer-url / $RENDERER_URL, else starts its own "
        "bundled renderer",
    )
    c.add_argument(
        "--ray-workers", type=int, default=2, help="render actors with --ray (2)"
    )
    c.add_argument(
        "--ray-cpus",
        type=float,
        default=1.0,
        help="CPUs per render actor; its bundled renderer gets as many processes (1)",
    )
    c.add_argument(
        "--shards",
        action="store_true",
        help="write tar shards (OUT/shard-NNNNNN.tar + index.json, shards.py) instead "
        "of images/ + params/; implied when OUT already holds shards",
    )
    c.add_argument(
        "--per-shard", type=int, default=1000, help="samples per shard (1000)"
    )
    v = ap.add_argument_group("viewing")
    v.add_argument(
        "--preview",
        action="store_true",
        help="show samples as they arrive: a window when a display is available, "
        "else refresh --preview-path",
    )
    v.add_argument(
        "--preview-path",
        default="output/preview.png",
        help="contact sheet of the latest samples without a display "
        "(output/preview.png)",
    )
    v.add_argument(
        "--no-sheet",
        action="store_true",
        help="skip OUT/sheet.png (a contact sheet of the run's first 32 samples)",
    )
    args = ap.parse_args(argv)
    if args.n < 0:
        ap.error("--n must be >= 0")
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    if args.ref_share is not None and not 0.0 <= args.ref_share <= 1.0:
        ap.error("--ref-share must be in [0, 1]")
    if args.size is not None and args.size < 1:
        ap.error("--size must be >= 1")
    if args.ray_workers < 1 or args.ray_cpus <= 0 or args.per_shard < 1:
        ap.error("--ray-workers, --ray-cpus and --per-shard must be positive")
    return args


# ----------------------------------------------------------------------------------
# The output folder


def clean_orphans(layout: dataset.Layout) -> tuple[int, int]:
    """Remove params without an image and stray .tmp files (from a killed run).

    Returns (orphan params removed, .tmp files removed). An image without params
    cannot come from this script (params are written first) and is left alone."""
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


def make_sampler(args: argparse.Namespace, log: Any = print) -> Sampler:
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
    return Sampler(args.seed, parents, weights, share)


# ----------------------------------------------------------------------------------
# Viewing


def has_display() -> bool:
    """True where a matplotlib window can open (macOS, Windows, or X/Wayland)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Preview:
    """Shows the latest samples: a matplotlib window when a display is available,
    else a contact sheet refreshed (atomically, at most twice a second) at `path`."""

    def __init__(self, path: Path, log: Any = print) -> None:
        self.path = path
        self.latest: list[tuple[np.ndarray, str]] = []
        self.last_write = 0.0
        self.window: Any = None
        if has_display():
            try:
                import matplotlib.pyplot as plt

                backend = str(plt.get_backend()).lower()
                if backend in NON_GUI_BACKENDS:
                    raise RuntimeError(f"matplotlib has only the {backend} backend")
                plt.ion()
                fig, ax = plt.subplots(figsize=(6, 6))
                ax.set_axis_off()
                self.window = (plt, fig, ax, None)
                log("preview: showing the latest samples in a window")
            except Exception as e:  # no usable GUI backend
                log(f"preview: no window ({e}); writing {path} instead")
        if self.window is None:
            log(f"preview: the latest samples are refreshed in {path}")

    def add(self, image: np.ndarray, label: str) -> None:
        self.latest = [*self.latest, (image, label)][-PREVIEW_COUNT:]
        if self.window is not None:
            plt, _fig, ax, shown = self.window
            if shown is None:
                self.window = (plt, _fig, ax, ax.imshow(image))
            else:
                shown.set_data(image)
            ax.set_title(label)
            plt.pause(0.001)
            return
        now = time.monotonic()
        if now - self.last_write >= 0.5:
            self.flush()
            self.last_write = now

    def flush(self) -> None:
        if self.window is None and self.latest:
            write_sheet(self.path, self.latest, cols=4)


def write_sheet(
    path: Path, samples: list[tuple[np.ndarray, str]], cols: int = SHEET_COLS
) -> None:
    """A contact sheet of (image, label) pairs, `cols` a row, at ≥ 128 px a tile."""
    sheet = utils.contact_sheet(
        [im for im, _ in samples],
        [lb for _, lb in samples],
        cols=cols,
        cell=max(128, samples[0][0].shape[1]),
    )
    atomic.write_png(path, sheet)


# ----------------------------------------------------------------------------------
# Stopping


class Stopped(KeyboardInterrupt):
    """A run stopped by SIGINT/SIGTERM after writing what it had (signum: which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


class Stop:
    """SIGINT/SIGTERM → a graceful stop (finish in-flight renders, write them);
    a second signal → KeyboardInterrupt at once. Handlers are restored on exit."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0
        self.signal_name = ""

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    @contextmanager
    def installed(self) -> Iterator[Stop]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {
            s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def resume_command(args: argparse.Namespace, size: int) -> str:
    """The command line that completes this run: the same one (--n is a total)."""
    cmd = ["python", "generate.py", "--n", str(args.n), "--out", str(args.out)]
    cmd += ["--size", str(size), "--seed", str(args.seed)]
    if args.scored:
        cmd.append("--scored")
    if args.ref_share is not None:
        cmd += ["--ref-share", str(args.ref_share)]
    defaults = parse_args([])
    if args.refs != defaults.refs:
        cmd += ["--refs", args.refs]
    if args.scored and args.scored_refs != defaults.scored_refs:
        cmd += ["--scored-refs", args.scored_refs]
    if args.renderer_url:
        cmd += ["--renderer-url", args.renderer_url]
    cmd += scale_flags(args)
    return shlex.join(cmd)


def scale_flags(args: argparse.Namespace) -> list[str]:
    """The --ray / --shards flags of a run, for its resume command."""
    cmd: list[str] = []
    if getattr(args, "ray", None):
        cmd += ["--ray", args.ray, "--ray-workers", str(args.ray_workers)]
        if args.ray_cpus != 1.0:
            cmd += ["--ray-cpus", f"{args.ray_cpus:g}"]
    if getattr(args, "shards", False):
        cmd += ["--shards", "--per-shard", str(args.per_shard)]
    return cmd


class PairWriter:
    """Where a run's pairs go: the folder layout (params first, then the image,
    each atomically) or, with --shards, tar shards (shards.ShardWriter)."""

    def __init__(
        self, args: argparse.Namespace, layout: dataset.Layout, log: Any
    ) -> None:
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


def open_ray_pool(
    args: argparse.Namespace, sampler: Sampler, size: int, log: Any
) -> Any:
    """cluster.RayRenderPool for --ray (Ray is imported only here)."""
    from art_explorer.training import cluster

    urls = cluster.split_urls(args.renderer_url)
    return cluster.RayRenderPool(
        args.ray,
        args.ray_workers,
        sampler,
        size,
        urls=urls,
        cpus_per_worker=args.ray_cpus,
        log=log,
    )


# ----------------------------------------------------------------------------------
# The run


def main(args: argparse.Namespace) -> int:
    """Top args.out up to args.n complete pairs; returns how many were written.

    Raises rendering.RendererError (renderer down or refusing) and refs_io.RefsError (an
    unreadable refs line), and Stopped (a KeyboardInterrupt) after Ctrl-C/SIGTERM,
    each after writing every pair that completed and saying how to resume."""
    log = print
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
    start = writer.next_index()
    have = writer.count()
    todo = max(0, args.n - have)
    sampler = make_sampler(args, log)
    if todo == 0:
        log(
            f"nothing to do: {layout.folder} holds {have} pairs, --n {args.n} "
            f"({start} is the next index; raise --n to add more)"
        )
        return 0
    if not args.shards:
        layout.images.mkdir(parents=True, exist_ok=True)
        layout.params.mkdir(parents=True, exist_ok=True)
    layout.folder.mkdir(parents=True, exist_ok=True)
    dataset.write_data_schema(layout.folder)
    url = rendering.renderer_url(args.renderer_url)
    log(
        f"generating {todo} pairs at {size}x{size} px into {layout.folder}"
        + (f", which holds {have} (--n {args.n})" if have else "")
        + f" (from {start:06d}, seed {args.seed}, {args.workers} workers, {url})"
    )
    preview = Preview(Path(args.preview_path), log) if args.preview else None
    sheet: list[tuple[np.ndarray, str]] = []
    written, bred = 0, 0
    stop = Stop()
    error: BaseException | None = None
    renderer = nullcontext(url) if args.no_autostart else rendering.ensure_renderer(url)
    if args.ray:  # the actors have their renderers
        renderer = nullcontext(url)
    try:
        with renderer as live_url, stop.installed():
            client = rendering.RendererClient(url=live_url, pool=max(8, args.workers))

            failed = threading.Event()  # a render gave up: start no more

            def render_one(i: int) -> tuple[dict[str, Any], bool, bytes]:
                if failed.is_set():
                    raise CancelledError  # the loop stops at the earlier failure
                params, is_bred = sampler(i)
                try:
                    return params, is_bred, client.render_png(params, size)
                except rendering.RendererError:
                    failed.set()
                    raise

            from tqdm import tqdm

            bar = tqdm(total=todo, unit="img", dynamic_ncols=True, smoothing=0.1)
            pool = ThreadPoolExecutor(args.workers, thread_name_prefix="render")
            ray_pool = open_ray_pool(args, sampler, size, log) if args.ray else None
            window = ray_pool.window if ray_pool else 2 * args.workers
            pending: dict[int, Future[tuple[dict[str, Any], bool, bytes]]] = {}
            nxt, end = start, start + todo
            try:
                for i in range(start, end):
                    # Keep a small window in flight; write strictly in index order so
                    # the folder never has gaps, whatever order renders finish in.
                    while (
                        not stop.event.is_set() and nxt < end and len(pending) < window
                    ):
                        pending[nxt] = (
                            ray_pool.submit(nxt)
                            if ray_pool
                            else pool.submit(render_one, nxt)
                        )
                        nxt += 1
                    if i not in pending:
                        break  # stopping: everything in flight is written
                    try:
                        params, is_bred, png = pending.pop(i).result()
                    except rendering.RendererError as e:
                        # While stopping (the renderer may have got the Ctrl-C too)
                        # an in-flight render that fails is dropped, not an error.
                        error = None if stop.event.is_set() else e
                        break
                    writer.add(i, params, png)
                    written += 1
                    bred += is_bred
                    bar.update(1)
                    if preview is not None or len(sheet) < SHEET_COLS * SHEET_ROWS:
                        label = f"{i:06d}{' bred' if is_bred else ''}"
                        image = utils.png_to_array(png)
                        if len(sheet) < SHEET_COLS * SHEET_ROWS:
                            sheet.append((image, label))
                        if preview is not None:
                            preview.add(image, label)
            finally:
                for f in pending.values():
                    f.cancel()
                pool.shutdown(wait=False, cancel_futures=True)
                bar.close()
                client.close()
                if ray_pool is not None:
                    ray_pool.close()
    except KeyboardInterrupt as e:  # a second signal, or Ctrl-C before the loop
        error = e
    finally:
        writer.close()
        if preview is not None:
            preview.flush()
        if sheet and not args.no_sheet:
            write_sheet(layout.folder / "sheet.png", sheet)

    span = f" ({start:06d}-{start + written - 1:06d})" if written else ""
    log(f"wrote {written} pairs to {layout.folder}{span}, {bred} bred from refs")
    if sheet and not args.no_sheet:
        log(f"contact sheet of the first samples: {layout.folder / 'sheet.png'}")
    if preview is not None and preview.window is None and written:
        log(f"preview: {preview.path}")
    interrupted = stop.event.is_set() or isinstance(error, KeyboardInterrupt)
    remaining = todo - written
    if remaining > 0 and (interrupted or (error is not None and written)):
        why = stop.signal_name or ("Ctrl-C" if interrupted else "the error below")
        log(
            f"stopped by {why} after {written} of {todo}; {layout.folder} holds only "
            f"complete pairs. Add the remaining {remaining} of the same sequence "
            f"with the same command:\n  {resume_command(args, size)}"
        )
    if interrupted:
        raise Stopped(stop.signum or signal.SIGINT)
    if error is not None:
        raise error
    return written


if __name__ == "__main__":
    try:
        main(parse_args())
    except (rendering.RendererError, refs_io.RefsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        sys.exit(128 + (e.signum if isinstance(e, Stopped) else signal.SIGINT))
