"""Explore by novelty: children bred from the refs, ranked by how far they are from them.

Children are bred from the refs (uniform crossover, jitter ×U(0.7, 1.3), categoricals
re-drawn with p 0.1), drawn all at once by the forward model (or, without one, by the
renderer at 64²), ranked by novelty = the smallest perceptual distance to the refs
(or 1 − the largest CLIP cosine similarity), and the top N rendered for real. Results
go to output/images|params/NNNNNN.* so that `make save-ref ID=out:N` keeps one.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer import atomic, utils
from art_explorer.data import dataset, refs_io
from art_explorer.explore import maps
from art_explorer.predict import models
from art_explorer.predict.budget import Log
from art_explorer.predict.errors import UserError
from art_explorer.predict.output import png_bytes, write_result
from art_explorer.progress import progress
from art_explorer.scene import rendering, sampling, schema
from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics

ExploreArgs = Any  # predict.py's Args: ExploreOptions and predict's run fields
DEFAULT_CLIP = "openai/clip-vit-base-patch16"
PREVIEW = 64  # side of the pictures novelty is measured on, px


@dataclass
class ExploreOptions:
    """Explore's own options (predict.py --explore); the models, renderer, output
    folder and seed are predict's (art_explorer.predict.run.PredictArgs)."""

    n: int = field(default=8, metadata={"flags": ("-n",)})
    """results to keep"""
    candidates: int = 256
    """children bred and ranked"""
    clip: bool = False
    """novelty = 1 − max CLIP cosine similarity (default: perceptual distance)"""
    clip_model: str = DEFAULT_CLIP
    """CLIP weights: hub name (from the local cache) or a folder"""
    perceptual: str = "auto"
    """perceptual distance for novelty: auto, lpips, sqrt-ms-l1"""
    refs: str = "references/refs.jsonl"
    """references to breed from"""
    scored_refs: str = "references/refs-scored.jsonl"
    """scored refs; when present, parents are drawn by score"""
    min_coverage: float = 0.002
    """drop candidates with fewer lit pixels than this share"""
    max_coverage: float = 0.6
    """drop candidates with more lit pixels than this share"""
    ray: str | None = None
    """render on Ray actors at ADDRESS (as generate.py --ray; a bare --ray starts Ray
    here; each actor uses one of the comma-separated --renderer-url or starts its own
    bundled renderer)"""
    ray_workers: int = 2
    """render actors with --ray"""


def load_parents(
    args: ExploreArgs,
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


def breed_candidates(
    parents: list[dict[str, Any]], weights: list[float] | None, n: int, seed: int
) -> list[dict[str, Any]]:
    """Up to n children of the parents, none equal to a parent or to each other."""
    rng = random.Random(seed)
    seen: set[str] = {schema.canonical_json(p) for p in parents}
    cands: list[dict[str, Any]] = []
    for _ in range(n * 4):
        if len(cands) >= n:
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
    return cands


@torch.no_grad()
def render_forward(forward: Any, params: list[dict[str, Any]]) -> torch.Tensor:
    """Params → (B, 3, R, R) in [0, 1] by the forward model, in batches of 64."""
    from art_explorer.nets import model

    dev = models.device_of(forward)
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
    if ray_pool is not None:
        futures = [ray_pool.render(p, size) for p in params]
        imgs = [
            utils.png_to_array(f.result())
            for f in progress(futures, "rendering candidates", unit="img", leave=False)
        ]
        return to_tensor(np.stack(imgs))

    imgs = list(
        progress(
            rendering.render_in_order(client.render, params, size, workers),
            "rendering candidates",
            total=len(params),
            unit="img",
            leave=False,
        )
    )
    return to_tensor(np.stack(imgs))


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


class Novelty:
    """How far pictures are from the refs and from each other: 1 − CLIP cosine
    (`clip`) or a perceptual distance (perceptual_distance.create_perceptual)."""

    def __init__(self, args: ExploreArgs) -> None:
        self.clip = self.proc = self.dist = None
        if args.clip:
            self.clip, self.proc = load_clip(args.clip_model)
            self.note = (
                f"novelty: 1 − max cosine of CLIP image embeddings ({args.clip_model})"
            )
        else:
            from art_explorer.nets import perceptual_distance

            self.dist = perceptual_distance.create_perceptual(args.perceptual)
            self.note = (
                f"novelty: min perceptual distance to the refs ({self.dist.name})"
            )

    def rank(
        self, imgs: torch.Tensor, ref_imgs: torch.Tensor
    ) -> tuple[torch.Tensor, Callable[[int], torch.Tensor]]:
        """(novelty (C,) of each candidate picture, dist_to(i) → (C,) distances of
        every candidate to candidate i); pictures (B, 3, R, R) in [0, 1]."""
        if self.clip is not None:
            emb = clip_embed(self.clip, self.proc, imgs)
            ref_emb = clip_embed(self.clip, self.proc, ref_imgs)

            def clip_to(i: int) -> torch.Tensor:
                return 1 - emb @ emb[i]

            return 1 - (emb @ ref_emb.T).max(dim=1).values, clip_to
        dist = self.dist
        assert dist is not None
        with torch.no_grad():
            d = torch.stack(
                [dist(imgs, r[None].expand_as(imgs)) for r in ref_imgs], dim=1
            )

        def dist_to(i: int) -> torch.Tensor:
            with torch.no_grad():
                return dist(imgs, imgs[i : i + 1].expand_as(imgs))

        return d.min(dim=1).values, dist_to


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


def recheck_picks(
    picks: list[int],
    real_coverage: Callable[[list[int]], list[float]],
    novelty: torch.Tensor,
    dist_to: Callable[[int], torch.Tensor],
    ok: torch.Tensor,
    args: ExploreArgs,
    log: Log,
) -> list[int]:
    """The forward model's pictures are soft: the picks' real renders are checked
    against the coverage guard (a blown-out white one passes as a bright blur), and
    the picks made again without the ones that fail (up to 4 rounds).
    real_coverage(indices) → the lit share of each one's real render."""
    checked: dict[int, float] = {}  # candidate → its real lit share
    for _ in range(4):
        new = [i for i in picks if i not in checked]
        if new:
            checked.update(zip(new, real_coverage(new), strict=True))
        bad = [
            i for i in picks if not args.min_coverage <= checked[i] <= args.max_coverage
        ]
        if not bad or int(ok.sum()) - len(bad) < args.n:
            break
        log(f"{len(bad)} picks drawn out of the coverage guard; picking again")
        ok[bad] = False
        picks = select_novel(novelty, dist_to, ok, args.n)
    return picks


def open_ray_pool(args: ExploreArgs, log: Log) -> Any:
    """cluster.RayRenderPool for explore --ray (Ray is imported only here)."""
    from art_explorer.training import cluster

    return cluster.RayRenderPool(
        args.ray,
        args.ray_workers,
        None,
        PREVIEW,
        urls=cluster.split_urls(args.renderer_url),
        log=log,
    )


def pick_novel(
    cands: list[dict[str, Any]],
    parents: list[dict[str, Any]],
    forward: Any,
    novelty: Novelty,
    draw: Callable[[list[dict[str, Any]]], torch.Tensor],
    args: ExploreArgs,
    log: Log,
) -> tuple[list[int], torch.Tensor]:
    """(the picks, the novelty of every candidate): the candidates drawn by the
    forward model (else by `draw`, the renderer at PREVIEW²), the coverage guard,
    the greedy novel picks (checked by real renders with a forward model)."""
    if forward is not None:
        imgs, ref_imgs = (
            render_forward(forward, cands),
            render_forward(forward, parents),
        )
    else:
        imgs, ref_imgs = draw(cands), draw(parents)
    cov = metrics.lit_coverage(imgs)
    ok = (cov >= args.min_coverage) & (cov <= args.max_coverage)
    if int(ok.sum()) < args.n:
        log(f"only {int(ok.sum())} candidates pass the coverage guard; using all")
        ok = torch.ones_like(ok)
    scores, dist_to = novelty.rank(imgs, ref_imgs)
    picks = select_novel(scores, dist_to, ok, args.n)
    if forward is not None:

        def real_coverage(idx: list[int]) -> list[float]:
            return metrics.lit_coverage(draw([cands[i] for i in idx])).tolist()

        picks = recheck_picks(picks, real_coverage, scores, dist_to, ok, args, log)
    return picks, scores


def run_explore(args: ExploreArgs, log: Log = print) -> dict[str, Any]:
    """Explore (see the module docstring); returns the ids written, their novelty
    and params, the contact sheet's path and how many candidates were bred.
    Raises UserError for what the user can fix."""
    parents, weights, source = load_parents(args)
    forward, _, notes = models.load_models(args.forward, None)
    novelty = Novelty(args)
    notes = [*notes[:1], novelty.note]
    if forward is None:
        notes.append(
            f"no trained forward model: ranking the {args.candidates} candidates by "
            f"rendering them for real at {PREVIEW}² (slower)"
        )
    log(f"refs: {len(parents)} from {source}")
    for n in notes:
        log(n)
    cands = breed_candidates(parents, weights, args.candidates, args.seed)
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

        def draw(ps: list[dict[str, Any]]) -> torch.Tensor:
            return render_real(client, ps, PREVIEW, args.workers, ray_pool)

        picks, scores = pick_novel(cands, parents, forward, novelty, draw, args, log)
        idx0 = dataset.Layout(out).next_index()
        tiles, labels = [], []
        for k, i in enumerate(picks):
            png = (
                ray_pool.render(cands[i], args.final_size).result()
                if ray_pool is not None
                else client.render_png(cands[i], args.final_size)
            )
            write_result(out, idx0 + k, cands[i], png)
            tiles.append(utils.png_to_array(png))
            labels.append(f"out:{idx0 + k} novelty {float(scores[i]):.3f}")
        client.close()
    ids = [idx0 + k for k in range(len(picks))]
    sheet_path = out / f"explore-{maps.next_sheet(out):03d}.png"
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
        "novelty": [float(scores[i]) for i in picks],
        "params": [cands[i] for i in picks],
        "sheet": str(sheet_path),
        "candidates": len(cands),
    }
