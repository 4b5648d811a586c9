"""Predict's inverse pipeline: image → params as a sequence of stages over one `Search`.

Stages: starts (the inverse model's guess and alternatives or its top structures,
nearest training images, or random draws) → the search over structures (a short
CMA-ES fit of each, with the twin a short wide descent, then the finalists descended
longer and the choice made by the picture score) or screening (short CMA-ES runs of
the inverse model's configurations) → discrete moves → gradient descent (through the
differentiable twin when the renderer draws the bundled scene: a wide descent, then a
fine one, both again after the polish; else through the forward model) → polish
(evolution with sparse mutations, or CMA-ES) → post-passes off → colour fit → each
layer's own hue → brightness fit. A stage's result is kept only when its real render
scores better (the brightness fit: better on the loss plus the brightness gap).

Every stage asks the same two budgets before it spends: `Evaluator.left` renders and
`Clock.left()` seconds (PipelineOptions.max_seconds, less a reserve kept for the colour
stages: FINISH_WAVES waves of renders at the pace measured so far, at least
AFTER_TWIN_SECONDS). The evaluator starts no wave of renders past max_seconds itself,
so a search ends within max_seconds plus one wave (`workers` renders), however slow
the renderer (tests/test_predict_pipeline.py: test_a_slow_renderer_...).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from art_explorer.predict import colour, descent, starts
from art_explorer.predict.budget import Candidate, Clock, Evaluator, Log
from art_explorer.predict.cmaes import cma_search
from art_explorer.predict.evolution import discrete_neighbours, evolve
from art_explorer.predict.options import InverseResult, PipelineOptions, Stage
from art_explorer.predict.pool import TwinPool, twin_workers
from art_explorer.predict.retrieval import RetrievalBank, registered_starts
from art_explorer.predict.space import SearchSpace
from art_explorer.scene import sampling, schema

AFTER_TWIN_SECONDS = 1.0  # the least reserve for the stages after the twin's last
# descent (post-passes, colours, brightness: about 20 renders) in max_seconds
FINISH_WAVES = 6  # waves of renders those stages take (a wave: `workers` renders)
MIN_TWIN_SECONDS = 0.5  # a twin descent cut shorter than this is not run
POST_PASS_SLACK = 0.01  # loss a plainer picture may cost (as the colour step's)


@dataclass
class Search:
    """One inversion in progress: the target, both budgets, the best so far and the
    log, read and updated by every stage."""

    target: np.ndarray  # (S, S, 3) in [0, 1], the search size
    twin_target: np.ndarray  # the same picture at up to 256² (the twin's last stage)
    evaluate: Evaluator  # the render budget
    clock: Clock  # the wall-time budget
    opts: PipelineOptions
    rng: random.Random
    seed: int
    log: Log
    inverse: Any = None
    forward: Any = None
    bank: RetrievalBank | None = None
    pool: TwinPool | None = None  # the twin's worker processes (None: no twin)
    best: Candidate = field(default_factory=lambda: Candidate(math.inf, {}))
    seen: list[Candidate] = field(default_factory=list)  # evolution's parents
    stages: list[Stage] = field(default_factory=list)
    # the starts, their losses, how many came from the inverse model, its
    # probability of each structure
    starts: list[dict[str, Any]] = field(default_factory=list)
    start_losses: list[float] = field(default_factory=list)
    n_inverse: int = 0
    probs: list[float] = field(default_factory=list)
    runner_up: Candidate | None = None  # descended beside the best (opts.alternates)
    twin_descended: bool = False  # whether the twin's main descent ran
    result: InverseResult = field(
        default_factory=lambda: InverseResult(Candidate(0, {}), [])
    )
    _stage_began: float = 0.0  # clock.now() when the stage began
    _stage_renders: int = 0

    @property
    def by_structure(self) -> bool:
        """Whether the search goes over the inverse model's top structures."""
        return self.inverse is not None and self.opts.structures > 0

    @property
    def workers(self) -> int:
        return self.pool.workers if self.pool is not None else 1

    def done(self, name: str) -> None:
        """Logs the stage that just ended: its best loss, renders and seconds."""
        renders = self.evaluate.renders - self._stage_renders
        secs = self.clock.now() - self._stage_began
        self.stages.append(Stage(name, self.best.loss, renders, secs, self.best.params))
        self.log(
            f"  {name:<10} loss {self.best.loss:.4f}  renders {renders:4d}  {secs:6.1f} s"
        )
        self._stage_began, self._stage_renders = self.clock.now(), self.evaluate.renders
        # keep time for the colour stages at the pace the renderer shows
        wave = self.evaluate.wave_time()
        self.clock.reserve = max(AFTER_TWIN_SECONDS, FINISH_WAVES * wave)

    def offer(self, loss: float, params: dict[str, Any]) -> None:
        """Keeps (loss, params) as the best when it scores better."""
        if loss < self.best.loss:
            self.best = Candidate(loss, params)

    def picture(self, c: Candidate) -> float:
        """The picture score of a rendered candidate (-1 when its render is not kept)."""
        from art_explorer.scene import structure

        img = self.evaluate.images.get(schema.canonical_json(c.params))
        if img is None:
            return -1.0
        return structure.picture_score(img.astype(np.float32), self.target)

    def refine_many(
        self, jobs: Sequence[tuple[dict[str, Any], float, float]]
    ) -> list[dict[str, Any]]:
        """The twin's descents of `jobs` (start, wide s, fine s), side by side."""
        assert self.pool is not None
        return self.pool.refine_many(jobs, self.twin_target, self.log)


# ----------------------------------------------------------------------------------
# The stages, in order


def gather_starts(s: Search) -> None:
    """(1) The starting points, one render each: the inverse model's top structures
    (or its guess and alternatives), the nearest training images registered onto the
    target, else random draws; at most a third of the budget."""
    found: list[dict[str, Any]] = []
    if s.by_structure:
        cands = starts.structure_candidates(s.inverse, s.target, s.opts.structures)
        s.probs = [pr for pr, _ in cands]
        found += [p for _, p in cands]
        s.evaluate.keep_images = True
    elif s.inverse is not None:
        found += starts.inverse_candidates(s.inverse, s.target)
    s.n_inverse = len(found)
    found += retrieved_starts(s)
    if not found:
        found = [sampling.sample_params(s.rng) for _ in range(s.opts.n_random)]
    s.starts = found[: max(1, s.evaluate.budget // 3)]
    s.start_losses = s.evaluate(s.starts)
    s.seen = [Candidate(lo, p) for lo, p in zip(s.start_losses, s.starts, strict=True)]
    i = int(np.argmin(s.start_losses))
    s.best = Candidate(s.start_losses[i], s.starts[i])
    s.result.guess = s.starts[0] if s.inverse is not None else s.best.params
    s.done("start")


def retrieved_starts(s: Search) -> list[dict[str, Any]]:
    """The nearest training images' params (registered onto the target: the
    n_register nearest aligned, the n_retrieve best kept); none without a bank."""
    if s.bank is None:
        return []
    n_retrieve = s.opts.n_retrieve or min(40, max(8, round(0.08 * s.evaluate.budget)))
    if not s.opts.register:
        near = s.bank.nearest(s.target, n_retrieve, transforms=False)
        return [s.bank.params(i) for _, i, _, _ in near]
    near = s.bank.nearest(s.target, s.opts.n_register or 2 * n_retrieve)
    cands = [(s.bank.params(i), s.bank.image(i, 64)) for _, i, _, _ in near]
    reg = registered_starts(cands, s.target, init=[(a, k) for _, _, a, k in near])
    return [p for _, p in reg[:n_retrieve]]


def fit_structures(s: Search) -> list[Candidate]:
    """Each of the inverse model's top structures fitted: a short CMA-ES run (and,
    with the twin, a short wide descent after it); a fit left unfitted (no renders
    or seconds left) keeps its start."""
    per = int(s.opts.structure_share * s.evaluate.budget) // max(1, s.n_inverse)
    fits: list[Candidate] = []
    for i in range(min(s.n_inverse, len(s.starts))):
        start = Candidate(s.start_losses[i], s.starts[i])
        sp = SearchSpace.of(start.params)
        c = cma_search(
            sp,
            s.evaluate,
            sp.encode(start.params),
            s.opts.sigma_screen,
            per,
            s.seed,
            s.clock,
        )
        fits.append(c if c.loss <= start.loss else start)
    wide_s = s.opts.structure_wide_seconds
    if (
        s.pool is not None
        and wide_s > 0
        and s.evaluate.left > 0
        and not s.clock.expired()
    ):
        walked = s.refine_many([(c.params, wide_s, 0.0) for c in fits])
        for i, (p, lo) in enumerate(zip(walked, s.evaluate(walked), strict=True)):
            if lo < fits[i].loss:
                fits[i] = Candidate(lo, p)
    return fits


def pick_finalists(
    order: Sequence[int], geometries: Sequence[str], n: int, other: bool = True
) -> list[int]:
    """The first n of `order` (best first); with `other`, when those n share one
    geometry, the last place goes to the first of `order` with another geometry."""
    top = list(order[:n])
    if other and len(top) > 1 and len({geometries[j] for j in top}) == 1:
        alt = next((j for j in order if geometries[j] != geometries[top[0]]), None)
        if alt is not None:
            top[-1] = alt
    return top


def search_structures(s: Search) -> None:
    """(2a) The search over structures: each structure's fit is scored by the
    picture score (structure.py), whatever the loss says (plus, with
    opts.structure_prior, that weight × the model's log-probability of it); the
    closest few (the finalists) are descended longer by the twin and scored again
    (a short fit of the true structure can score below a wrong one's, the chain not
    yet in its place), and the best of them goes on; the runner-up, with
    opts.alternates on two or more workers, gets the twin's main descent beside it."""
    per = int(s.opts.structure_share * s.evaluate.budget) // max(1, s.n_inverse)
    if not s.by_structure or per < 8:
        return
    fits = fit_structures(s)
    scores = [s.picture(c) for c in fits]

    def rank(j: int) -> float:
        return scores[j] + s.opts.structure_prior * math.log(max(s.probs[j], 1e-12))

    order = sorted(range(len(fits)), key=rank, reverse=True)
    geometries = [str(c.params.get("geometry")) for c in fits]
    top = pick_finalists(
        order, geometries, s.opts.finalists, s.opts.finalist_other_geometry
    )
    half = s.opts.finalist_seconds / 2
    if s.pool is not None and len(top) > 1 and half > 0 and s.evaluate.left > 0:
        found = s.refine_many([(fits[j].params, half, half) for j in top])
        for j, p, lo in zip(top, found, s.evaluate(found), strict=True):
            if lo < fits[j].loss:
                fits[j] = Candidate(lo, p)
                scores[j] = s.picture(fits[j])
    s.result.structures = [
        (s.probs[j], scores[j], c.loss, c.params) for j, c in enumerate(fits)
    ]
    chosen = max(top or range(len(fits)), key=rank)
    s.result.chosen, s.best = chosen, fits[chosen]
    others = sorted((j for j in top if j != chosen), key=rank, reverse=True)
    if s.opts.alternates and s.workers > 1 and others:
        s.result.runner_up, s.runner_up = others[0], fits[others[0]]
    s.seen += fits
    s.done("structures")


def screen(s: Search) -> None:
    """(2b) Without the search over structures: the inverse model's guess and the
    alternatives it was least sure of, best first, a short CMA-ES run each."""
    ranked = sorted((lo, i) for i, lo in enumerate(s.start_losses) if i < s.n_inverse)
    n = min(s.opts.n_screen, len(ranked))
    per = int(s.opts.screen_share * s.evaluate.budget) // max(1, n)
    if n <= 1 or per < 12 or s.by_structure:
        return
    for _lo, i in ranked[:n]:
        sp = SearchSpace.of(s.starts[i])
        c = cma_search(
            sp,
            s.evaluate,
            sp.encode(s.starts[i]),
            s.opts.sigma_screen,
            per,
            s.seed,
            s.clock,
        )
        s.offer(c.loss, c.params)
    s.done("screen")


def discrete_moves(s: Search) -> None:
    """(3) Every single discrete change of the best (not of its structure, once the
    structure is searched), repeated while a round finds something better."""
    for _ in range(s.opts.move_rounds if s.opts.moves else 0):
        moves = discrete_neighbours(s.best.params, keep_structure=s.by_structure)
        if s.evaluate.left < 3 * len(moves) or s.clock.expired():
            break
        before = s.best.loss
        for p, lo in zip(moves, s.evaluate(moves), strict=True):
            s.seen.append(Candidate(lo, p))
            s.offer(lo, p)
        s.done("moves")
        if s.best.loss >= before:
            break


def twin_main_descent(s: Search) -> None:
    """(4) The twin's wide then fine descent of the best (and of the runner-up
    beside it, which goes on in its place when it then draws the target better by
    the picture score). The main descent and the last one share what is left of the
    clock: both are cut to fit, and not run when cut below MIN_TWIN_SECONDS."""
    o = s.opts
    planned = o.twin_wide_seconds + o.twin_seconds
    if s.pool is None or planned <= 0:
        return
    cut = s.clock.fraction(planned + o.final_twin_seconds)
    if cut < 1.0 and planned * cut < MIN_TWIN_SECONDS:
        cut = 0.0
    if cut < 1.0:
        s.log(f"  time: the twin's descents cut to {cut:.0%} (max_seconds)")
    if cut <= 0 or s.evaluate.left <= 0:
        return
    wide_s, fine_s = o.twin_wide_seconds * cut, o.twin_seconds * cut
    jobs = [(s.best.params, wide_s, fine_s)]
    if s.runner_up is not None:
        jobs.append((s.runner_up.params, wide_s, fine_s))
    found = s.refine_many(jobs)
    s.twin_descended = True
    losses = s.evaluate(found)
    s.result.after_gd = found[0]
    s.offer(losses[0], found[0])
    if s.runner_up is not None:
        alt = Candidate(losses[1], found[1])
        alt = alt if alt.loss < s.runner_up.loss else s.runner_up
        if s.picture(alt) > s.picture(s.best):
            s.log(
                f"  the runner-up structure ({alt.params.get('geometry')}) "
                "draws the target better after its descent: it goes on"
            )
            s.best, s.result.after_gd, s.result.took_over = alt, found[1], True
    s.done("twin-gd")


def forward_descent(s: Search) -> None:
    """(4) When the twin's descent did not run: Adam through the forward model from
    the best, within opts.gd_steps steps and what is left of the clock."""
    if s.twin_descended or s.forward is None or s.opts.gd_steps <= 0:
        return
    if s.evaluate.left <= 0 or s.clock.expired():
        return
    (p,), _ = descent.gradient_descent(
        s.forward,
        s.evaluate.loss,
        [s.best.params],
        s.opts.gd_steps,
        s.opts.gd_lr,
        seconds=s.clock.left(),
        now=s.clock.now,
    )
    s.result.after_gd = p
    s.offer(s.evaluate([p])[0], p)
    s.done("gd")


def polish_reserve(s: Search) -> int:
    """Renders the stages after the polish may take."""
    o = s.opts
    return (
        (colour.color_renders(o) + 1 if o.color_fit else 0)
        + (len(s.best.params["layers"]) + 3 if o.layer_color_fit else 0)
        + (len(colour.BRIGHTNESS_FACTORS) if o.brightness_fit else 0)
        + 1  # the post-pass check
        + (1 if s.pool is not None and o.final_twin_seconds > 0 else 0)
    )


def polish(s: Search) -> None:
    """(5) The polish with the renders left but the reserve: evolution with sparse
    mutations (from every candidate seen, or the best alone once the structure is
    chosen, keeping it), or CMA-ES."""
    reserve = polish_reserve(s)
    if s.evaluate.left <= reserve + 4 or s.clock.expired():
        return
    budget = s.evaluate.left - reserve
    if s.opts.polish == "evolve":
        s.seen.append(s.best)
        parents = s.seen if not s.by_structure else [s.best]
        c = evolve(
            parents,
            s.evaluate,
            budget,
            s.rng,
            keep_structure=s.by_structure,
            clock=s.clock,
        )
        s.offer(c.loss, c.params)
        s.done("evolve")
        return
    sp = SearchSpace.of(s.best.params)
    c = cma_search(
        sp,
        s.evaluate,
        sp.encode(s.best.params),
        s.opts.sigma_polish,
        budget,
        s.seed + 1,
        s.clock,
    )
    s.offer(c.loss, c.params)
    s.done("polish")


def twin_last_descent(s: Search) -> None:
    """(5b) The twin's wide + fine descents (60/40) again from the polished fit,
    within what is left of the clock."""
    final_s = s.clock.fit(s.opts.final_twin_seconds, MIN_TWIN_SECONDS)
    if s.pool is None or final_s <= 0 or s.evaluate.left <= 0:
        return
    p = descent.twin_refine(
        s.evaluate.loss,
        s.best.params,
        final_s * 0.6,
        final_s * 0.4,
        s.log,
        s.twin_target,
        refusals=s.pool.refusals,
    )
    s.offer(s.evaluate([p])[0], p)
    s.done("twin-final")


def without_post_passes(best: Candidate, evaluate: Evaluator) -> Candidate:
    """(6) `best` with dither, noise and CRT switched off when that costs at most
    POST_PASS_SLACK of loss (one render). The blurred grey loss hardly sees their
    dots, so the search alone keeps whatever the inverse guess switched on, and
    curated pictures rarely have them."""
    if not any(best.params.get(k) for k in colour.POST_PASSES) or evaluate.left < 1:
        return best
    plain = {**best.params, **dict.fromkeys(colour.POST_PASSES, False)}
    lo = evaluate([plain])[0]
    if lo > best.loss + POST_PASS_SLACK:
        return best
    return Candidate(lo, plain, evaluate.last_images.get(schema.canonical_json(plain)))


def finish(s: Search) -> None:
    """(6-8) Post-passes off unless they pay for themselves, then the colour,
    each layer's hue and the brightness (colour.color_stages)."""
    s.best = without_post_passes(s.best, s.evaluate)

    def done(name: str, cand: Candidate) -> None:
        s.best = cand
        s.done(name)

    s.best = colour.color_stages(s.best, s.target, s.evaluate, s.opts, done)


STAGES = (
    gather_starts,
    search_structures,
    screen,
    discrete_moves,
    twin_main_descent,
    forward_descent,
    polish,
    twin_last_descent,
    finish,
)


def invert(
    target: np.ndarray,
    evaluate: Evaluator,
    *,
    inverse: Any = None,
    forward: Any = None,
    bank: RetrievalBank | None = None,
    opts: PipelineOptions | None = None,
    seed: int = 0,
    log: Log = print,
    use_twin: bool = False,
    fine_target: np.ndarray | None = None,
    pool: TwinPool | None = None,
    clock: Clock | None = None,
) -> InverseResult:
    """Image → params within evaluate.budget real renders and opts.max_seconds (see
    the module docstring).

    target: (S, S, 3) in [0, 1] at the search size; fine_target: the same picture
    at up to 256², for the twin's last stage (twin.NCC_SCHEDULE). use_twin: the
    renderer draws the bundled scene, so gradients go through the differentiable
    twin (else through the forward model); its descents run on `pool` (None: a pool
    of opts.twin_workers processes for this call). clock: the time budget (None:
    opts.max_seconds from now); `evaluate` answers to it."""
    opts = opts or PipelineOptions()
    if use_twin and pool is None:
        with TwinPool(twin_workers(opts.twin_workers), log) as own:
            return invert(
                target, evaluate, inverse=inverse, forward=forward, bank=bank,
                opts=opts, seed=seed, log=log, use_twin=True,
                fine_target=fine_target, pool=own, clock=clock,
            )  # fmt: skip
    rng = random.Random(seed)
    clock = clock or Clock(opts.max_seconds, AFTER_TWIN_SECONDS)
    evaluate.answer_to(clock)
    s = Search(
        target=target,
        twin_target=fine_target if fine_target is not None else target,
        evaluate=evaluate,
        clock=clock,
        opts=opts,
        rng=rng,
        seed=seed,
        log=log,
        inverse=inverse,
        forward=forward,
        bank=bank,
        pool=pool if use_twin else None,
        best=Candidate(math.inf, sampling.sample_params(rng)),
        _stage_began=clock.now(),
        _stage_renders=evaluate.renders,
    )
    if s.pool is not None and s.by_structure:
        s.pool.start()
    for stage in STAGES:
        stage(s)
    s.result.best, s.result.stages = s.best, s.stages
    return s.result
