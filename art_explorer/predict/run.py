"""One predict run: a picture file in; params, the final render and a sheet out.

`PredictArgs` holds predict's options, the search's knobs (PipelineOptions) included;
`PredictArgs()` is the one set of defaults that `make predict`, the gallery and the
benches run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from art_explorer import atomic, utils
from art_explorer.data import dataset
from art_explorer.predict.budget import Evaluator, Log
from art_explorer.predict.loss import pipeline_loss
from art_explorer.predict.models import load_models
from art_explorer.predict.options import InverseResult, PipelineOptions
from art_explorer.predict.output import png_bytes, write_result
from art_explorer.predict.pipeline import invert
from art_explorer.predict.pool import TwinPool, twin_workers
from art_explorer.predict.retrieval import RetrievalBank
from art_explorer.predict.target import image_at, load_target
from art_explorer.scene import rendering
from art_explorer.scoring import metrics


@dataclass
class PredictArgs(PipelineOptions):
    """Image → params: the inverse model's starts, the nearest training images, a
    search against the real renderer, gradient descent (docs/pipeline.md)."""

    target: str = ""
    """image to match: PNG/JPEG/WebP, any size"""
    fevals: int = 500
    """real renders for the search (screening, moves, polish)"""
    size: int = 128
    """render size during the search, px"""
    descent: Literal["auto", "twin", "forward"] = "auto"
    """gradient descent through the differentiable twin (exact, when the renderer
    draws the bundled scene) or the forward model; auto: the twin when the renderer's
    /api/schema matches this checkout's"""
    data: list[str] = field(default_factory=lambda: ["data", "data/quality"])
    """rendered training data to take starting points from (none: no retrieval)"""
    forward: str | None = None
    """forward checkpoint (None: checkpoints/forward)"""
    inverse: str | None = None
    """inverse checkpoint (None: checkpoints/inverse, else the bundled pretrained one)"""
    renderer_url: str | None = None
    """POST /api/raster URL (None: $RENDERER_URL, else localhost:3000; a local one is
    started when nothing answers)"""
    workers: int = 4
    """render requests in flight"""
    final_size: int = 1024
    """size of the saved renders, px"""
    out: str = "output"
    """output folder"""
    seed: int = 0
    """random seed"""

    def pipeline(self) -> PipelineOptions:
        """The search's knobs alone."""
        names = [f.name for f in dataclasses.fields(PipelineOptions)]
        return PipelineOptions(**{n: getattr(self, n) for n in names})


def scores_256(img: np.ndarray, t256: np.ndarray) -> str:
    """NCC, line F1 and the picture score of a 256² render against the target."""
    from art_explorer.scene import structure

    pic = structure.picture_score(img, t256)
    ncc, f1 = metrics.ncc(img, t256), metrics.line_f1(img, t256)
    return f"NCC {ncc:.2f} F1 {f1:.2f} pic {pic:.2f}"


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


def retrieval_note(bank: RetrievalBank | None, data: list[str], inverse: Any) -> str:
    if bank:
        return f"retrieval: {len(bank)} training images in {' '.join(data)}"
    if inverse is None:
        return "retrieval: no training images (random starts)"
    return "retrieval: no training images"


def uses_twin(args: PredictArgs, url: str) -> bool:
    """Whether the gradient descent goes through the differentiable twin."""
    from art_explorer.scene import twin

    return args.gd_steps > 0 and (
        args.descent == "twin"
        or (args.descent == "auto" and twin.speaks_bundled_schema(url))
    )


def write_sheet(
    client: rendering.RendererClient,
    res: InverseResult,
    t256: np.ndarray,
    guess_label: str,
    path: Path,
) -> np.ndarray:
    """target | start | after GD | final at 256², each with its scores; returns the
    final's 256² render."""
    panels = [(t256, "target")]
    for label, p in ((guess_label, res.guess), ("after GD", res.after_gd)):
        if p is None:
            panels.append((np.zeros_like(t256), f"{label}: skipped"))
        else:
            im = client.render(p, 256)
            panels.append((im, f"{label} {scores_256(im, t256)}"))
    final256 = client.render(res.best.params, 256)
    panels.append((final256, f"final {scores_256(final256, t256)}"))
    sheet = utils.contact_sheet([p for p, _ in panels], [t for _, t in panels], cols=4)
    atomic.atomic_write_bytes(path, png_bytes(sheet))
    return final256


def run_inverse(
    args: PredictArgs, log: Log = print, pool: TwinPool | None = None
) -> dict[str, Any]:
    """Predict one picture (see the module docstring); returns what was written (id,
    params, scores at 256², renders, stages, paths). `pool`: the twin's worker
    processes, when the caller keeps them between runs (None: started for this one).
    Raises UserError for what the user can fix."""
    from art_explorer.scene import structure

    square = load_target(args.target, side=max(args.size, 256))
    target, t256 = image_at(square, args.size), image_at(square, 256)
    forward, inverse, notes = load_models(args.forward, args.inverse)
    bank = RetrievalBank.load(args.data) if args.data else None
    notes.append(retrieval_note(bank, args.data, inverse))
    log(f"target: {args.target} ({square.size[0]}² after letterboxing)")
    for n in notes:
        log(n)
    out = Path(args.out)
    with rendering.ensure_renderer(args.renderer_url, log=log) as url:
        use_twin = uses_twin(args, url)
        log(gradient_note(use_twin, forward, args.gd_steps))
        if use_twin:
            n = twin_workers(args.twin_workers)
            log(
                f"twin descents of different structures: {n} at a time"
                + (" (worker processes)" if n > 1 else " (in this process)")
            )
        client = rendering.RendererClient(url=url, pool=max(8, args.workers))
        ev = Evaluator(
            client, pipeline_loss(target), args.size, args.fevals, args.workers
        )
        t0 = time.time()
        log(f"search: {args.fevals} renders at {args.size}², seed {args.seed}")
        res = invert(
            target,
            ev,
            inverse=inverse,
            forward=forward,
            bank=bank,
            opts=args.pipeline(),
            seed=args.seed,
            log=log,
            use_twin=use_twin,
            fine_target=t256,
            pool=pool,
        )
        best = res.best.params
        idx = dataset.Layout(out).next_index()
        img_path = write_result(
            out, idx, best, client.render_png(best, args.final_size)
        )
        side_path = out / f"predict-{idx:06d}.png"
        guess_label = "inverse guess" if inverse is not None else "start"
        final256 = write_sheet(client, res, t256, guess_label, side_path)
        client.close()
    ncc, f1 = metrics.ncc(final256, t256), metrics.line_f1(final256, t256)
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
