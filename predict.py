"""Image → params (inverse) and novel outputs from the references (explore).

    python predict.py --target picture.png            # → output/, prints save-ref
    python predict.py --target picture.jpg --fevals 200 --size 96
    python predict.py --explore -n 8                  # novel children of the refs
    python predict.py --explore --clip                # novelty by CLIP embeddings

Inverse (docs/pipeline.md, "Predict and explore"): starting points from the inverse
model and from the nearest already-rendered training images in data/ (aligned to
the target on pixels), screening of the discrete choices by short CMA-ES runs,
single discrete changes, gradient descent through the forward model, a polish
against the real renderer (evolution with sparse mutations: measured better than a
CMA-ES polish, bench/results/inverse.md), a colour and a brightness fit, then the
final render. The search machinery and the loss it minimises are in search.py.
Works without either model (says so).

Explore: children bred from the refs (uniform crossover, jitter ×U(0.7, 1.3),
categoricals re-drawn with p 0.1), rendered all at once by the forward model (or,
without one, by the renderer at a small size), ranked by novelty = the smallest
perceptual distance to the refs (or 1 − the largest CLIP cosine similarity), the top
N rendered for real. Results go to output/images|params/NNNNNN.* so that
`make save-ref ID=out:N` keeps one.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from art_explorer import atomic, utils
from art_explorer.data import dataset
from art_explorer.explore import novelty
from art_explorer.predict import search
from art_explorer.predict.errors import UserError
from art_explorer.predict.output import png_bytes, write_result
from art_explorer.scene import rendering, twin
from art_explorer.scoring import metrics

OPTS = search.PipelineOptions()  # the pipeline's defaults, shown in --help


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = ap.add_argument_group("inverse (image → params)")
    g.add_argument("--target", help="image to match: PNG/JPEG/WebP, any size")
    g.add_argument(
        "--fevals",
        type=int,
        default=500,
        help="real renders for the search (screening, moves, polish) (500)",
    )
    g.add_argument(
        "--gd-steps",
        type=int,
        default=300,
        help="Adam steps through the forward model (300; 0 = no gradient descent)",
    )
    g.add_argument(
        "--descent",
        choices=("auto", "twin", "forward"),
        default="auto",
        help="gradient descent through the differentiable twin (exact, when the "
        "renderer draws the bundled scene) or the forward model; auto: the twin when "
        "the renderer's /api/schema matches this checkout's (auto)",
    )
    g.add_argument(
        "--twin-seconds",
        type=float,
        default=OPTS.twin_seconds,
        help=f"time for the twin's fine descent, s ({OPTS.twin_seconds:g})",
    )
    g.add_argument(
        "--twin-wide-seconds",
        type=float,
        default=OPTS.twin_wide_seconds,
        help="time for the twin's wide descent before it, s "
        f"({OPTS.twin_wide_seconds:g}; 0: none)",
    )
    g.add_argument(
        "--twin-structure-seconds",
        type=float,
        default=OPTS.structure_wide_seconds,
        help="time for a wide twin descent of each structure's fit before the choice, "
        f"s ({OPTS.structure_wide_seconds:g}; 0: none)",
    )
    g.add_argument(
        "--twin-finalist-seconds",
        type=float,
        default=OPTS.finalist_seconds,
        help=f"time for a wide + fine twin descent of each of the {OPTS.finalists} "
        "structures that score best after those, before choosing again among them, "
        f"s ({OPTS.finalist_seconds:g}; 0: none)",
    )
    g.add_argument(
        "--twin-workers",
        type=int,
        default=OPTS.twin_workers,
        help="processes the twin's descents of different structures run on side by "
        "side (0: one per core, up to 4; 1: none, one after another)",
    )
    g.add_argument(
        "--twin-final-seconds",
        type=float,
        default=OPTS.final_twin_seconds,
        help="time for the twin's wide + fine descents again after the polish, s "
        f"({OPTS.final_twin_seconds:g}; 0: none)",
    )
    g.add_argument(
        "--max-seconds",
        type=float,
        default=OPTS.max_seconds,
        help="the search's wall time: the twin's main and last descents are cut to "
        "fit when the stages before them ran long, e.g. on a slower machine, s "
        f"({OPTS.max_seconds:g}; 0: no limit)",
    )
    g.add_argument(
        "--size", type=int, default=128, help="render size during the search, px (128)"
    )
    g.add_argument(
        "--data",
        nargs="*",
        default=["data", "data/quality"],
        help="rendered training data to take starting points from (data data/quality;"
        " none = no retrieval)",
    )
    x = ap.add_argument_group("explore (novel children of the refs)")
    x.add_argument("--explore", action="store_true", help="explore instead of invert")
    x.add_argument("-n", type=int, default=8, help="results to keep (8)")
    x.add_argument(
        "--candidates", type=int, default=256, help="children bred and ranked (256)"
    )
    x.add_argument(
        "--clip",
        action="store_true",
        help="novelty = 1 − max CLIP cosine similarity (default: perceptual distance)",
    )
    x.add_argument(
        "--clip-model",
        default=novelty.DEFAULT_CLIP,
        help=f"CLIP weights: hub name (from the local cache) or a folder ({novelty.DEFAULT_CLIP})",
    )
    x.add_argument(
        "--perceptual",
        default="auto",
        help="perceptual distance for novelty: auto, lpips, sqrt-ms-l1 (auto)",
    )
    x.add_argument(
        "--refs", default="references/refs.jsonl", help="references to breed from"
    )
    x.add_argument(
        "--scored-refs",
        default="references/refs-scored.jsonl",
        help="scored refs; when present, parents are drawn by score",
    )
    x.add_argument(
        "--min-coverage",
        type=float,
        default=0.002,
        help="drop candidates with fewer lit pixels than this share (0.002)",
    )
    x.add_argument(
        "--max-coverage",
        type=float,
        default=0.6,
        help="drop candidates with more lit pixels than this share (0.6)",
    )
    m = ap.add_argument_group("models, renderer, output")
    m.add_argument(
        "--forward", default=None, help="forward checkpoint (checkpoints/forward)"
    )
    m.add_argument(
        "--inverse", default=None, help="inverse checkpoint (checkpoints/inverse)"
    )
    m.add_argument(
        "--renderer-url",
        default=None,
        help="POST /api/raster URL (default $RENDERER_URL, else localhost:3000; a local"
        " one is started when nothing answers)",
    )
    m.add_argument(
        "--workers", type=int, default=4, help="render requests in flight (4)"
    )
    m.add_argument(
        "--final-size", type=int, default=1024, help="size of the saved renders (1024)"
    )
    m.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="explore: render on Ray actors (as generate.py --ray: no ADDRESS starts "
        "Ray here; each actor uses one of the comma-separated --renderer-url or "
        "starts its own bundled renderer)",
    )
    m.add_argument(
        "--ray-workers", type=int, default=2, help="render actors with --ray (2)"
    )
    m.add_argument("--out", default="output", help="output folder (output)")
    m.add_argument("--seed", type=int, default=0, help="random seed (0)")
    args = ap.parse_args(argv)
    if not args.explore and not args.target:
        ap.error("give --target IMAGE (or --explore)")
    for name in ("fevals", "size", "n", "candidates", "final_size", "ray_workers"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 32 <= args.size <= 2048 or not 32 <= args.final_size <= 2048:
        ap.error("--size and --final-size must be within 32-2048")
    return args


# ----------------------------------------------------------------------------------
# Reading any picture a person drops in


MAX_TARGET_PIXELS = 40_000_000  # a bigger picture is refused before it is decoded


def load_target(path: str | Path, side: int | None = None) -> Any:
    """Any PNG/JPEG/WebP/... → a square RGB PIL image: transparency composited on
    black, greyscale and palette expanded, 16-bit scaled, EXIF rotation applied, the
    picture letterboxed onto black. The square's side is the picture's longest side,
    or `side` (px, the largest size the caller works at) when that is smaller: the
    picture is scaled down before letterboxing, so a 20000×8 strip costs no more
    than its own pixels. A picture of more than MAX_TARGET_PIXELS pixels is refused
    from its header, before decoding (a decompression bomb is one clear line).
    Raises UserError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"cannot read {path}: no such file")
    too_big = (
        f"cannot read {path}: over the {MAX_TARGET_PIXELS:,}-pixel limit for a "
        "target (scale it down first)"
    )
    try:
        with warnings.catch_warnings():
            # PIL warns from 89 Mpx; the limit below is lower and says more
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        with im:
            w, h = im.size
            if w * h > MAX_TARGET_PIXELS:
                raise UserError(f"{too_big}: it is {w}x{h}")
            if side is not None:
                im.draft(im.mode, (side, side))  # JPEG: decode at a smaller scale
            im.load()
            im = ImageOps.exif_transpose(im) or im
            if im.mode == "1":
                im = im.convert("L")
            if im.mode in ("L", "LA", "RGB", "RGBA"):
                im = _shrink(im, side)  # resize premultiplies alpha
            rgb = _shrink(_to_rgb(im), side)
    except Image.DecompressionBombError:  # PIL's own guard, at far more pixels
        raise UserError(too_big) from None
    except UnidentifiedImageError:
        raise UserError(
            f"cannot read {path}: not an image (PNG, JPEG, WebP, ... expected)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    w, h = rgb.size
    if w < 1 or h < 1:
        raise UserError(f"cannot read {path}: empty image")
    longest = max(w, h)
    canvas = Image.new("RGB", (longest, longest), (0, 0, 0))
    canvas.paste(rgb, ((longest - w) // 2, (longest - h) // 2))
    return canvas


def _shrink(im: Any, side: int | None) -> Any:
    """Scale a PIL image down (Lanczos) so that its longest side is at most `side`
    (None: as it is); neither side goes below 1 px."""
    from PIL import Image

    w, h = im.size
    if side is None or max(w, h) <= side:
        return im
    k = side / max(w, h)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _to_rgb(im: Any) -> Any:
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, np.float32)
        top = 65535.0 if im.mode.startswith("I") and a.max() > 255 else 255.0
        a = np.clip(a / top * 255, 0, 255).astype(np.uint8)
        return Image.fromarray(a).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(im.convert("RGBA"), np.float32) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:]
        return Image.fromarray((rgb * 255 + 0.5).astype(np.uint8))
    return im.convert("RGB")


def image_at(square: Any, size: int) -> np.ndarray:
    """Square PIL image → (size, size, 3) float32 in [0, 1] (Lanczos resampling)."""
    from PIL import Image

    im = (
        square
        if square.size == (size, size)
        else square.resize((size, size), Image.Resampling.LANCZOS)
    )
    return np.asarray(im, np.float32) / 255.0


# ----------------------------------------------------------------------------------
# Output


def scores_256(img: np.ndarray, t256: np.ndarray) -> str:
    from art_explorer.scene import structure

    pic = structure.picture_score(img, t256)
    return f"NCC {metrics.ncc(img, t256):.2f} F1 {metrics.line_f1(img, t256):.2f} pic {pic:.2f}"


# ----------------------------------------------------------------------------------
# Inverse


def gradient_note(use_twin: bool, forward: Any, gd_steps: int) -> str:
    """Which gradient descent predict runs, in one line."""
    if gd_steps <= 0:
        return "gradient descent: off (--gd-steps 0)"
    if use_twin:
        return (
            "gradient descent: through the differentiable twin (the renderer draws the "
            "bundled scene: its /api/schema matches), a wide descent then a fine one"
        )
    if forward is None:
        return (
            "gradient descent: skipped (no twin: the renderer is not the bundled scene "
            "or --descent forward; no forward model); real renders only (CMA-ES "
            "screening, evolution)"
        )
    return "gradient descent: through the forward model"


def run_inverse(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    square = load_target(args.target, side=max(args.size, 256))
    target = image_at(square, args.size)
    t256 = image_at(square, 256)
    forward, inverse, notes = search.load_models(args.forward, args.inverse)
    bank = search.RetrievalBank.load(args.data) if args.data else None
    notes.append(
        f"retrieval: {len(bank)} training images in {' '.join(args.data)}"
        if bank
        else "retrieval: no training images (random starts)"
        if inverse is None
        else "retrieval: no training images"
    )
    log(f"target: {args.target} ({square.size[0]}² after letterboxing)")
    for n in notes:
        log(n)
    out = Path(args.out)
    with rendering.ensure_renderer(args.renderer_url, log=log) as url:
        use_twin = args.gd_steps > 0 and (
            args.descent == "twin"
            or (args.descent == "auto" and twin.speaks_bundled_schema(url))
        )
        log(gradient_note(use_twin, forward, args.gd_steps))
        if use_twin:
            n = search.twin_workers(args.twin_workers)
            log(
                f"twin descents of different structures: {n} at a time"
                + (" (worker processes)" if n > 1 else " (in this process)")
            )
        client = rendering.RendererClient(url=url, pool=max(8, args.workers))
        loss = search.pipeline_loss(target)
        ev = search.Evaluator(client, loss, args.size, args.fevals, args.workers)
        t0 = time.time()
        log(f"search: {args.fevals} renders at {args.size}², seed {args.seed}")
        try:
            res = search.invert(
                target,
                ev,
                inverse=inverse,
                forward=forward,
                bank=bank,
                opts=search.PipelineOptions(
                    gd_steps=args.gd_steps,
                    twin_seconds=args.twin_seconds,
                    twin_wide_seconds=args.twin_wide_seconds,
                    final_twin_seconds=args.twin_final_seconds,
                    structure_wide_seconds=args.twin_structure_seconds,
                    finalist_seconds=args.twin_finalist_seconds,
                    twin_workers=args.twin_workers,
                    max_seconds=args.max_seconds,
                ),
                seed=args.seed,
                log=log,
                use_twin=use_twin,
                fine_target=t256,
            )
        finally:
            ev.close()
        best = res.best.params
        final_png = client.render_png(best, args.final_size)
        idx = dataset.Layout(out).next_index()
        img_path = write_result(out, idx, best, final_png)
        panels = [(t256, "target")]
        guess_label = "inverse guess" if inverse is not None else "start"
        for label, p in ((guess_label, res.guess), ("after GD", res.after_gd)):
            if p is None:
                panels.append((np.zeros_like(t256), f"{label}: skipped"))
            else:
                im = client.render(p, 256)
                panels.append((im, f"{label} {scores_256(im, t256)}"))
        final256 = client.render(best, 256)
        panels.append((final256, f"final {scores_256(final256, t256)}"))
        client.close()
    sheet = utils.contact_sheet([p for p, _ in panels], [t for _, t in panels], cols=4)
    side_path = out / f"predict-{idx:06d}.png"
    atomic.atomic_write_bytes(side_path, png_bytes(sheet))
    ncc, f1 = metrics.ncc(final256, t256), metrics.line_f1(final256, t256)
    from art_explorer.scene import structure

    pic = structure.picture_score(final256, t256)
    same = "same picture" if pic >= structure.SAME_PICTURE else "not the same picture"
    log(
        f"done in {time.time() - t0:.1f} s, {ev.renders} renders: "
        f"NCC {ncc:.3f}, line F1 {f1:.3f}, picture score {pic:.3f} ({same}) at 256²"
    )
    log(f"wrote {dataset.Layout(out).params_path(idx)}, {img_path}, {side_path}")
    log(f"keep it as a reference: make save-ref ID=out:{idx}")
    return {
        "id": idx,
        "params": best,
        "ncc": ncc,
        "line_f1": f1,
        "picture": pic,
        "renders": ev.renders,
        "stages": [(s.name, s.loss, s.renders, s.seconds) for s in res.stages],
        "image": str(img_path),
        "sheet": str(side_path),
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run inverse or explore; returns what was written (ids, metrics, paths).
    Raises UserError for what the user can fix (the command line prints it)."""
    if args.explore:
        return novelty.run_explore(args)
    return run_inverse(args)


if __name__ == "__main__":
    try:
        main(parse_args())
    except (UserError, rendering.RendererError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
