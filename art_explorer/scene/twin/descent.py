"""Descent through the twin: Adam on every continuous value, coarse to fine, on a
target picture's NCC or on any differentiable loss of the pictures."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from art_explorer.scene import schema
from art_explorer.scene.tensors import to_tensor
from art_explorer.scene.twin.canvas import TooBig, render
from art_explorer.scene.twin.values import Structure
from art_explorer.scoring import metrics

# ----------------------------------------------------------------------------------
# Descent: Adam on every continuous value, coarse to fine

# (picture side in px, splat blur in px at that side, share of the time): the blur
# gives lines that do not overlap their target yet a slope towards it. Used when a
# descent has only a loss function, no target picture.
COARSE_TO_FINE = ((64, 2.0, 0.3), (96, 1.0, 0.3), (128, 0.0, 0.4))
# With a target picture: (picture side, blur σ of √grey in px at 128², share of the
# time); the loss is 1 − NCC of blurred √grey (the metric's own form), its blur
# halved stage by stage down to the metric's (σ 1 px at 256²). A side is capped at
# the target's: the last stage draws at 256² when the target has that many pixels,
# because faint thin lines are where the twin and the renderer part at 128² (on 8
# faint draws twin vs renderer NCC 0.90-0.98 at 128², 0.98-0.99 at 256²), so a
# descent that ends at 128² fits the twin's error (bench/results/inverse-twin.md).
NCC_SCHEDULE = (
    (64, 8.0, 0.15),
    (64, 4.0, 0.15),
    (96, 2.0, 0.2),
    (128, 1.0, 0.25),
    (256, 0.5, 0.25),
)
# Adam's step in the first NCC stage, in units of each value's span (× NCC_LR_DECAY
# per stage): the start is within ~10% of the truth, a few % of a span; larger
# steps wander off (measured: 0.02 ends at NCC 0.70 where 0.003 ends at 0.996).
NCC_LR = 0.003
NCC_LR_DECAY = 0.5  # ... × this per stage (0.7: the same 80% ≥ 0.95 on 20 draws)
# A wide descent for a start that is not near the truth (a search's fit of the right
# structure with its chain in the wrong place): blur from σ 16 px at 128² and steps
# of WIDE_LR (× NCC_LR_DECAY per stage), ending at 128²; the fine descent
# (NCC_SCHEDULE) follows it. Measured from the pipeline's results on 14 draws of the
# 2026-12-05 bench (7 fits at NCC 0.52-0.67 with the right structure, 7 good ones),
# 8 s wide + 5 s fine: mean NCC 0.762 → 0.851, the bad 7 0.58 → 0.75 (the fine one
# alone, 10 s: 0.63); WIDE_LR 0.03: 0.808, 0.006: 0.812; 16 s + 8 s: 0.836 (a descent
# is not smooth in its time: t31 0.75 at 8 s, 0.57 at 16 s). The good 7 lose nothing.
WIDE_SCHEDULE = (
    (64, 16.0, 0.2),
    (64, 8.0, 0.2),
    (64, 4.0, 0.2),
    (96, 2.0, 0.2),
    (128, 1.0, 0.2),
)
WIDE_LR = 0.01


def ncc_features(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, 3, R, R) → (B, R·R): metrics.ncc_features with a finite gradient at black."""
    return metrics.ncc_features(images, sigma, metrics.SQRT_EPS)


def _param_of(name: str) -> schema.Param:
    """The schema entry of a value name ('layers.0.scale.x' → the layer's scale)."""
    parts = name.split(".")
    if parts[0] == "layers":
        return schema.LAYER_PARAM[parts[2]]
    return schema.PARAM[parts[0]]


def value_span(name: str) -> float:
    """The width of a value's range (colours: 1), the unit of a descent's steps."""
    p = _param_of(name)
    return 1.0 if p.kind == "color" else float(p.hi - p.lo)


def value_bounds(name: str) -> tuple[float | None, float | None]:
    """Where a descent clamps a value: the renderer's clamp range, none for angles
    and unclamped values, [0, 1] for colours."""
    p = _param_of(name)
    if p.kind == "color":
        return 0.0, 1.0
    if p.periodic or not p.clamp:
        return None, None
    return p.clamp_lo, p.clamp_hi


class _Adam:
    """Adam (β 0.9 / 0.999, ε 1e-8, as torch.optim.Adam) on one tensor: torch's own
    imports torch._dynamo on first use, ~3 s of a 10 s descent."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.t = x, 0
        self.m, self.v = torch.zeros_like(x), torch.zeros_like(x)

    @torch.no_grad()
    def step(self, lr: float) -> None:
        g = self.x.grad
        if g is None:
            return
        self.t += 1
        self.m.mul_(0.9).add_(g, alpha=0.1)
        self.v.mul_(0.999).addcmul_(g, g, value=0.001)
        m_hat = self.m / (1 - 0.9**self.t)
        v_hat = self.v / (1 - 0.999**self.t)
        self.x.sub_(lr * m_hat / (v_hat.sqrt() + 1e-8))


class Descent(tuple[dict[str, torch.Tensor], torch.Tensor]):
    """What `descend` returns, unpacked as a pair (values, loss (B,)), and how many
    of its pictures were refused as too big to draw (`refused`, TooBig)."""

    refused: int

    def __new__(
        cls, values: dict[str, torch.Tensor], loss: torch.Tensor, refused: int = 0
    ) -> Descent:
        out = super().__new__(cls, (values, loss))
        out.refused = refused
        return out


@dataclass
class _Values:
    """The values being descended: u (B, V) in units of each value's span (the
    tensor Adam moves), with their names, spans and clamp bounds (V,)."""

    names: list[str]
    spans: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    u: torch.Tensor

    @staticmethod
    def of(start: dict[str, torch.Tensor]) -> _Values:
        names = list(start)
        spans = torch.tensor([value_span(n) for n in names], dtype=torch.float64)
        u = torch.stack(
            [start[n] / s for n, s in zip(names, spans.tolist(), strict=True)], -1
        )
        bounds = [value_bounds(n) for n in names]
        lo = torch.tensor(
            [-math.inf if b[0] is None else b[0] for b in bounds], dtype=torch.float64
        )
        hi = torch.tensor(
            [math.inf if b[1] is None else b[1] for b in bounds], dtype=torch.float64
        )
        return _Values(names, spans, lo, hi, u.clone().requires_grad_(True))

    def at(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Values by name (B,) from units of their span (B, V)."""
        return {n: x[:, j] * self.spans[j] for j, n in enumerate(self.names)}

    @torch.no_grad()
    def clamp_(self) -> None:
        """Back into each value's clamp range."""
        x = torch.maximum(torch.minimum(self.u * self.spans, self.hi), self.lo)
        self.u.copy_(x / self.spans)


@dataclass
class _Plan:
    """The stages of a descent: schedule (side, blur, share of the time), each
    stage's loss (pictures → (B,) losses) and splat blur, its step size at step k
    of n, and whether the loss is a target's NCC (then a stage ends once its loss
    stops falling, and no step may end past the stage's time)."""

    schedule: tuple[tuple[int, float, float], ...]
    stage_loss: Callable[[int], tuple[Callable[[torch.Tensor], torch.Tensor], float]]
    stage_lr: Callable[[int, int, int], float]
    on_target: bool


def _target_plan(
    target: Any, schedule: tuple[tuple[int, float, float], ...] | None, ncc_lr: float
) -> _Plan:
    """1 − NCC of blurred √grey against `target`, stage by stage (NCC_SCHEDULE; a
    side capped at the target's), steps of ncc_lr × NCC_LR_DECAY^stage cosine-
    decayed to a third per stage."""
    tgt = to_tensor(target)
    sched = tuple(
        (min(side, tgt.shape[-1]), sig, share)
        for side, sig, share in schedule or NCC_SCHEDULE
    )

    def stage_loss(stage: int) -> tuple[Any, float]:
        side, sig = sched[stage][0], sched[stage][1] * sched[stage][0] / 128
        t = tgt
        if t.shape[-1] != side:
            t = torch.nn.functional.interpolate(t, size=(side, side), mode="area")
        tf = ncc_features(t, sig)
        return (lambda img: 1 - (ncc_features(img, sig) * tf).sum(1)), 0.0

    def stage_lr(stage: int, k: int, n: int) -> float:
        base = ncc_lr * NCC_LR_DECAY**stage
        return base * (1 / 3 + (2 / 3) * 0.5 * (1 + math.cos(math.pi * k / n)))

    return _Plan(sched, stage_loss, stage_lr, True)


def _loss_plan(
    loss_fn: Any, schedule: tuple[tuple[int, float, float], ...] | None, lr: float
) -> _Plan:
    """`loss_fn` on pictures drawn with COARSE_TO_FINE's splat blur, steps of lr ×
    span decayed to lr / 10 per stage."""
    sched = schedule or COARSE_TO_FINE

    def stage_loss(stage: int) -> tuple[Any, float]:
        return loss_fn, sched[stage][1]

    def stage_lr(stage: int, k: int, n: int) -> float:
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / n)))

    return _Plan(sched, stage_loss, stage_lr, False)


@dataclass
class _Run:
    """One descent's state: the values, Adam, which values move, the best of the
    last stage (loss (B,) and where), one step's time, the pictures refused."""

    struct: Structure
    vals: _Values
    plan: _Plan
    adam: _Adam
    moving: torch.Tensor
    keep_colors: bool
    best: torch.Tensor
    best_u: torch.Tensor
    loss: Any = None  # the last step's losses (B,)
    step_s: float = 0.0
    refused: int = 0
    last_good: Any = None  # the values of the last step whose loss was finite


def _stage(run: _Run, stage: int, n_steps: int, t_end: float, log: Any) -> int:
    """Steps of one stage until its time, its steps or (on a target) its progress
    run out, or a picture is refused as too big; the last stage keeps each start's
    best. Returns the steps taken."""
    size = run.plan.schedule[stage][0]
    last = stage == len(run.plan.schedule) - 1
    fn, blur = run.plan.stage_loss(stage)
    stage_best, since, k = math.inf, 0, 0
    for k in range(n_steps):
        now = time.perf_counter()
        # with a target: no step that might end past the stage's time (the whole
        # descent stays within its seconds)
        ahead = 2 * run.step_s if run.plan.on_target else 0.0
        if now + ahead > t_end and not (last and k == 0 and not run.plan.on_target):
            break
        run.vals.u.grad = None
        try:
            loss = fn(render(run.struct, run.vals.at(run.vals.u), size, blur))
        except TooBig as e:
            run.refused += 1
            if log is not None:
                log(f"    twin: stage stopped: {e}")
            break
        except torch.linalg.LinAlgError:  # a transform gone non-finite
            loss = torch.full((run.vals.u.shape[0],), math.nan)
        if not torch.isfinite(loss.detach()).all():
            # a step that blew the values up: back to the last finite ones, and
            # this stage ends there (the next starts from them)
            with torch.no_grad():
                run.vals.u.copy_(run.last_good)
            if log is not None:
                log("    twin: stage stopped: non-finite values")
            break
        run.last_good = run.vals.u.detach().clone()
        run.loss = loss
        if last:
            with torch.no_grad():
                better = loss.detach().double() < run.best
                run.best = torch.where(better, loss.detach().double(), run.best)
                run.best_u[better] = run.vals.u.detach()[better]
        if not loss.requires_grad:
            break  # nothing drawn that the values move
        total = float(loss.detach().sum())
        if run.plan.on_target:  # the stage is done once its loss stops falling
            if total < stage_best - 1e-4 * len(loss):
                stage_best, since = total, 0
            else:
                since += 1
                if since >= 12:
                    break
        loss.sum().backward()
        if run.vals.u.grad is not None and run.keep_colors:
            run.vals.u.grad.mul_(run.moving)
        run.adam.step(run.plan.stage_lr(stage, k, n_steps))
        run.vals.clamp_()
        run.step_s = time.perf_counter() - now
    return k


def descend(
    struct: Structure,
    start: dict[str, torch.Tensor],
    loss_fn: Any,
    seconds: float = 10.0,
    steps: int = 400,
    lr: float = 0.01,
    schedule: tuple[tuple[int, float, float], ...] | None = None,
    log: Any = None,
    target: Any = None,
    ncc_lr: float = NCC_LR,
    keep_colors: bool = False,
) -> Descent:
    """Adam on every continuous value of B starts (values_of), coarse to fine,
    within `seconds` and `steps` (split by the schedule's shares).

    With `target` (the picture to match: (H, W, 3) array in [0, 1] or (1, 3, H, W)
    tensor), the loss is 1 − NCC of blurred √grey, stage by stage through
    NCC_SCHEDULE (side, σ at 128², share), steps of ncc_lr × NCC_LR_DECAY^stage ×
    each value's span, cosine-decayed to a third per stage, a stage ending early once
    its loss stops falling; the best of the last stage is kept. Without, loss_fn
    ((B, 3, R, R) pictures in [0, 1] → (B,) losses, differentiable) on pictures
    drawn with the splat blur of COARSE_TO_FINE (side, blur px, share), steps of lr
    × span decayed to lr / 10 per stage.

    `keep_colors`: the colours (base and layers) stay as they start (a wide
    descent's large steps on the grey loss turned t21's green red).

    Returns the values with the lowest loss of the last stage (or the start, when
    none beats it), that loss (B,), and how many pictures were refused as too big
    (a stage stops at the first; a start too big to draw raises TooBig)."""
    t_start = time.perf_counter()
    vals = _Values.of(start)
    plan = (
        _target_plan(target, schedule, ncc_lr)
        if target is not None
        else _loss_plan(loss_fn, schedule, lr)
    )
    sched = plan.schedule
    moving = torch.tensor(
        [0.0 if keep_colors and ".color." in f".{n}" else 1.0 for n in vals.names],
        dtype=torch.float64,
    )
    last_fn, last_blur = plan.stage_loss(len(sched) - 1)
    with torch.no_grad():  # the start stays unless a step beats it
        best = last_fn(render(struct, start, sched[-1][0], last_blur)).double()
    run = _Run(
        struct, vals, plan, _Adam(vals.u), moving, keep_colors, best,
        vals.u.detach().clone(), best, last_good=vals.u.detach().clone(),
    )  # fmt: skip
    spent = time.perf_counter() - t_start
    for stage, (size, _, share) in enumerate(sched):
        n_steps = max(1, round(steps * share))
        t_end = (
            t_start
            + spent
            + (seconds - spent) * share / sum(x[2] for x in sched[stage:])
        )
        k = _stage(run, stage, n_steps, t_end, log)
        spent = time.perf_counter() - t_start
        if log is not None:
            log(
                f"    twin {size}² stage {stage}: loss "
                f"{float(run.loss.detach().min()):.4f}, {k + 1} steps, {spent:.1f} s"
            )
    return Descent(vals.at(run.best_u), run.best, run.refused)
