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
import contextlib
import io
import random
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer import atomic, utils
from art_explorer.data import dataset, refs_io
from art_explorer.predict import search
from art_explorer.scene import rendering, sampling, schema, twin
from art_explorer.scoring import metrics

OPTS = search.PipelineOptions()  # the pipeline's defaults, shown in --help

SHEET_RE = re.compile(r"^explore-([0-9]{3,9})\.png$")
DEFAULT_CLIP = "openai/clip-vit-base-patch16"


class UserError(Exception):
    """A problem the user can fix (bad file, missing weights): one clear line."""


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
        default=DEFAULT_CLIP,
        help=f"CLIP weights: hub name (from the local cache) or a folder ({DEFAULT_CLIP})",
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


def write_result(out: Path, idx: int, params: dict[str, Any], png: bytes) -> Path:
    """out/params/NNNNNN.json (flat) then out/images/NNNNNN.png, each atomic."""
    layout = dataset.Layout(out)
    atomic.write_json(layout.params_path(idx), schema.validate_params(params))
    img = layout.image_path(idx)
    atomic.atomic_write_bytes(img, png)
    return img


def png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


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


# ----------------------------------------------------------------------------------
# Explore


def load_parents(
    args: argparse.Namespace,
) -> tuple[list[dict[str, Any]], list[float] | None, str]:
    """The refs to breed from, their scores (None when unscored) and a note."""
    try:
        scored = refs_io.load_scored_refs(args.scored_refs)
        if scored:
            parents = [p for p, _ in scored]
            weights = refs_io.rated_weights(parents, args.refs, [s for _, s in scored])
            return parents, weights, f"{args.scored_refs} (by score × rating)"
        refs = refs_io.load_refs(args.refs)
        weights = refs_io.rated_weights(refs, args.refs)  # gallery stars, if any
    except refs_io.RefsError as e:
        raise UserError(str(e)) from None
    if not refs:
        raise UserError(
            f"no references in {args.refs}: add some with `make save-ref ID=...`"
        )
    return refs, weights, f"{args.refs} ({'by rating' if weights else 'unscored'})"


@torch.no_grad()
def render_forward(forward: Any, params: list[dict[str, Any]]) -> torch.Tensor:
    """Params → (B, 3, R, R) in [0, 1] by the forward model, in batches of 64."""
    from art_explorer.nets import model

    dev = search.device_of(forward)
    out = []
    for i in range(0, len(params), 64):
        batch = model.batch_encode(params[i : i + 64], device=dev)
        out.append(forward(batch).float().clamp(0, 1).cpu())
    return torch.cat(out)


def render_real(
    client: rendering.RendererClient,
    params: list[dict[str, Any]],
    size: int,
    workers: int,
    ray_pool: Any = None,
) -> torch.Tensor:
    """Params → (B, 3, size, size) by the renderer, `workers` requests in flight
    (or all of them queued on the actors of a cluster.RayRenderPool)."""
    from tqdm import tqdm

    if ray_pool is not None:
        futures = [ray_pool.render(p, size) for p in params]
        imgs = [
            utils.png_to_array(f.result())
            for f in tqdm(futures, desc="rendering candidates", unit="img", leave=False)
        ]
        return search.to_tensor(np.stack(imgs))

    imgs = list(
        tqdm(
            rendering.render_in_order(client.render, params, size, workers),
            total=len(params),
            desc="rendering candidates",
            unit="img",
            leave=False,
        )
    )
    return search.to_tensor(np.stack(imgs))


def load_clip(name: str) -> tuple[Any, Any]:
    """(CLIPModel, CLIPImageProcessor) from a local folder or the local hub cache;
    UserError naming what to download when the weights are not here."""
    from transformers import CLIPImageProcessor, CLIPModel

    try:
        clip = CLIPModel.from_pretrained(name, local_files_only=True)
        proc = CLIPImageProcessor.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"CLIP weights not found: {name} ({first}). Download them on a machine "
            f"with internet: `huggingface-cli download {DEFAULT_CLIP}` and copy "
            "~/.cache/huggingface/hub here, or save them with CLIPModel/"
            "CLIPImageProcessor.save_pretrained(DIR) and pass --clip-model DIR"
        ) from None
    return clip.eval(), proc


@torch.no_grad()
def clip_embed(clip: Any, proc: Any, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, R, R) in [0, 1] → (B, D) unit CLIP image embeddings."""
    out = []
    for i in range(0, images.shape[0], 32):
        chunk = [
            (im.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            for im in images[i : i + 32]
        ]
        pixels = proc(images=chunk, return_tensors="pt")["pixel_values"]
        feats = clip.get_image_features(pixel_values=pixels)
        if not isinstance(feats, torch.Tensor):  # transformers ≥ 5: an output object
            feats = feats.pooler_output  # the projected embedding
        out.append(F.normalize(feats, dim=-1))
    return torch.cat(out)


def select_novel(
    novelty: torch.Tensor, dist_to: Any, ok: torch.Tensor, n: int
) -> list[int]:
    """Greedy: each pick maximises min(novelty to the refs, distance to the picks
    so far), so the N results differ from the refs and from each other.
    dist_to(i) → (C,) distances of every candidate to candidate i."""
    score = torch.where(ok, novelty, torch.full_like(novelty, -torch.inf))
    picks: list[int] = []
    for _ in range(min(n, int(ok.sum()))):
        i = int(torch.argmax(score))
        picks.append(i)
        score = torch.minimum(score, dist_to(i))
        score[picks] = -torch.inf
    return picks


def run_explore(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    from art_explorer.nets import perceptual_distance

    parents, weights, source = load_parents(args)
    forward, _, notes = search.load_models(args.forward, None)
    notes = notes[:1]
    clip = proc = None
    if args.clip:
        clip, proc = load_clip(args.clip_model)
        notes.append(
            f"novelty: 1 − max cosine of CLIP image embeddings ({args.clip_model})"
        )
        dist = None
    else:
        dist = perceptual_distance.create_perceptual(args.perceptual)
        notes.append(f"novelty: min perceptual distance to the refs ({dist.name})")
    if forward is None:
        notes.append(
            f"no trained forward model: ranking the {args.candidates} candidates by "
            "rendering them for real at 64² (slower)"
        )
    log(f"refs: {len(parents)} from {source}")
    for n in notes:
        log(n)
    rng = random.Random(args.seed)
    seen: set[str] = {schema.canonical_json(p) for p in parents}
    cands: list[dict[str, Any]] = []
    for _ in range(args.candidates * 4):
        if len(cands) >= args.candidates:
            break
        child = sampling.breed(
            parents,
            rng,
            weights,
            p_two=0.7,
            p_copy=1.0,
            jitter=(0.7, 1.3),
            p_redraw_cat=0.1,
        )
        key = schema.canonical_json(child)
        if key not in seen:
            seen.add(key)
            cands.append(child)
    out = Path(args.out)
    t0 = time.time()
    ray_pool = open_ray_pool(args, log) if args.ray else None
    renderer = (
        contextlib.nullcontext(rendering.renderer_url(None))  # the actors render
        if ray_pool is not None
        else rendering.ensure_renderer(args.renderer_url, log=log)
    )
    with renderer as url, contextlib.ExitStack() as stack:
        if ray_pool is not None:
            stack.callback(ray_pool.close)
        client = rendering.RendererClient(url=url, pool=max(8, args.workers))
        if forward is not None:
            imgs = render_forward(forward, cands)
            ref_imgs = render_forward(forward, parents)
        else:
            imgs = render_real(client, cands, 64, args.workers, ray_pool)
            ref_imgs = render_real(client, parents, 64, args.workers, ray_pool)
        cov = metrics.lit_coverage(imgs)
        ok = (cov >= args.min_coverage) & (cov <= args.max_coverage)
        if int(ok.sum()) < args.n:
            log(f"only {int(ok.sum())} candidates pass the coverage guard; using all")
            ok = torch.ones_like(ok)
        if clip is not None:
            emb, ref_emb = (
                clip_embed(clip, proc, imgs),
                clip_embed(clip, proc, ref_imgs),
            )
            novelty = 1 - (emb @ ref_emb.T).max(dim=1).values

            def dist_to(i: int) -> torch.Tensor:
                return 1 - emb @ emb[i]
        else:
            assert dist is not None
            with torch.no_grad():
                d = torch.stack(
                    [dist(imgs, r[None].expand_as(imgs)) for r in ref_imgs], dim=1
                )
            novelty = d.min(dim=1).values

            def dist_to(i: int) -> torch.Tensor:
                with torch.no_grad():
                    return dist(imgs, imgs[i : i + 1].expand_as(imgs))

        picks = select_novel(novelty, dist_to, ok, args.n)
        if forward is not None:  # the model's pictures are soft: check the picks'
            # real renders against the coverage guard (a blown-out white one passes
            # as a bright blur), and pick again without the ones that fail
            checked: dict[int, float] = {}  # candidate → its real lit share
            for _ in range(4):
                new = [i for i in picks if i not in checked]
                if new:
                    real = render_real(
                        client, [cands[i] for i in new], 64, args.workers, ray_pool
                    )
                    cov_new = metrics.lit_coverage(real).tolist()
                    checked.update(zip(new, cov_new, strict=True))
                bad = [
                    i
                    for i in picks
                    if not args.min_coverage <= checked[i] <= args.max_coverage
                ]
                if not bad or int(ok.sum()) - len(bad) < args.n:
                    break
                log(f"{len(bad)} picks drawn out of the coverage guard; picking again")
                ok[bad] = False
                picks = select_novel(novelty, dist_to, ok, args.n)
        idx0 = dataset.Layout(out).next_index()
        ids, tiles, labels = [], [], []
        for k, i in enumerate(picks):
            png = (
                ray_pool.render(cands[i], args.final_size).result()
                if ray_pool is not None
                else client.render_png(cands[i], args.final_size)
            )
            write_result(out, idx0 + k, cands[i], png)
            ids.append(idx0 + k)
            tiles.append(utils.png_to_array(png))
            labels.append(f"out:{idx0 + k} novelty {float(novelty[i]):.3f}")
        client.close()
    sheet_path = out / f"explore-{next_sheet(out):03d}.png"
    sheet = utils.contact_sheet(tiles, labels, cols=4, cell=256)
    atomic.atomic_write_bytes(sheet_path, png_bytes(sheet))
    log(
        f"explored {len(cands)} candidates in {time.time() - t0:.1f} s; kept "
        f"{len(ids)}: {out / 'images'}/{ids[0]:06d}..{ids[-1]:06d}.png"
        if ids
        else "no candidates"
    )
    log(f"contact sheet: {sheet_path}")
    for i in ids:
        log(f"  make save-ref ID=out:{i}")
    return {
        "ids": ids,
        "novelty": [float(novelty[i]) for i in picks],
        "params": [cands[i] for i in picks],
        "sheet": str(sheet_path),
        "candidates": len(cands),
    }


def open_ray_pool(args: argparse.Namespace, log: Any) -> Any:
    """cluster.RayRenderPool for explore --ray (Ray is imported only here)."""
    from art_explorer.training import cluster

    return cluster.RayRenderPool(
        args.ray,
        args.ray_workers,
        None,
        64,
        urls=cluster.split_urls(args.renderer_url),
        log=log,
    )


def next_sheet(out: Path) -> int:
    top = -1
    if out.is_dir():
        for f in out.iterdir():
            m = SHEET_RE.match(f.name)
            if m:
                top = max(top, int(m.group(1)))
    return top + 1


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run inverse or explore; returns what was written (ids, metrics, paths).
    Raises UserError for what the user can fix (the command line prints it)."""
    if args.explore:
        return run_explore(args)
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
