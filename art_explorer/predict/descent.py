"""Gradient descent on params: through the forward model, or through the differentiable twin."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from art_explorer.predict.budget import Log
from art_explorer.predict.loss import ImageLoss
from art_explorer.predict.models import device_of
from art_explorer.predict.space import SearchSpace
from art_explorer.predict.starts import ENC_KEYS
from art_explorer.scene import encoding

# The twin's descent is bound by its clock and each stage's stall rule, not by
# steps: this cap is far above what a descent of a few seconds takes
# (docs/decisions.md)
TWIN_STEPS = 1600


def gradient_descent(
    forward: Any,
    loss: ImageLoss,
    starts: Sequence[dict[str, Any]],
    steps: int = 300,
    lr: float = 0.02,
    seconds: float = math.inf,
    now: Callable[[], float] = time.monotonic,
) -> tuple[list[dict[str, Any]], list[float]]:
    """Adam on the active continuous values (SearchSpace "active") of each start,
    through the forward model, all starts in one batch, for `steps` steps or until
    `seconds` have passed (a step of a large forward model on a busy CPU can take
    seconds). Returns the params and their forward-model losses at the last step."""
    from art_explorer.nets import model

    batch = model.batch_encode(list(starts), device=device_of(forward))
    cmask = torch.zeros_like(batch["cont"])
    lmask = torch.zeros_like(batch["layer_cont"])
    for b, p in enumerate(starts):
        sp = SearchSpace.of(p)
        cmask[b, sp.cont_idx] = 1.0
        for li, j in sp.layer_idx:
            lmask[b, li, j] = 1.0
    cont = batch["cont"].clone().requires_grad_(True)
    lcont = batch["layer_cont"].clone().requires_grad_(True)
    opt = torch.optim.Adam([cont, lcont], lr=lr)
    losses = torch.zeros(len(starts))
    began = now()
    for step in range(steps):
        if step > 0 and now() - began >= seconds:
            break
        opt.zero_grad()
        out = forward({**batch, "cont": cont, "layer_cont": lcont})  # (B, 3, R, R)
        losses = loss(out.float().cpu())  # the loss's target lives on the CPU
        losses.sum().backward()
        with torch.no_grad():
            assert cont.grad is not None and lcont.grad is not None
            cont.grad *= cmask
            lcont.grad *= lmask
        opt.step()
        with torch.no_grad():
            cont.clamp_(0.0, 1.0)
            lcont.clamp_(0.0, 1.0)
    out_params = []
    for b, p in enumerate(starts):
        enc = {k: batch[k][b].detach().cpu() for k in ENC_KEYS}
        enc["cont"], enc["layer_cont"] = cont[b].detach().cpu(), lcont[b].detach().cpu()
        q = encoding.decode_params(enc)
        q["color"] = p["color"]
        for layer, pl in zip(q["layers"], p["layers"], strict=False):
            if "color" in pl:
                layer["color"] = pl["color"]
        out_params.append(q)
    return out_params, losses.detach().tolist()


@dataclass
class Refusals:
    """How many pictures the twin refused as too big to draw (twin.TooBig): the
    descents' callers carry one and the bench reports it."""

    count: int = 0


def twin_descent(
    loss: ImageLoss | None,
    start: dict[str, Any],
    seconds: float = 10.0,
    log: Log | None = None,
    target: np.ndarray | None = None,
    wide: bool = False,
    also: Sequence[dict[str, Any]] = (),
    refusals: Refusals | None = None,
) -> tuple[dict[str, Any], float]:
    """Adam on every continuous value of `start` through the differentiable twin of
    the bundled scene (twin.py), coarse to fine (twin.NCC_SCHEDULE) on `target` (the
    picture at up to 256², so the last stage can draw there; default: loss's target,
    at the search size), within `seconds`; its discrete choices stay. `wide`: the
    wide descent instead (twin.WIDE_SCHEDULE, larger steps, for a start far from
    the truth; the colours stay). `also`: more starts with the same discrete
    choices, descended in the same batch. Returns the params with the lowest of
    the twin's losses (1 − NCC) and that loss; pictures the twin refused are
    counted in `refusals`."""
    from art_explorer.scene import twin

    refusals = refusals if refusals is not None else Refusals()
    struct = twin.structure_of(start)
    try:
        result = twin.descend(
            struct,
            twin.values_of([start, *also], struct),
            loss,
            seconds=seconds,
            steps=TWIN_STEPS,
            log=log,
            target=_target_of(loss, target),
            schedule=twin.WIDE_SCHEDULE if wide else None,
            ncc_lr=twin.WIDE_LR if wide else twin.NCC_LR,
            keep_colors=wide,
        )
    except twin.TooBig as e:  # the start itself is too big to draw: left as it is
        refusals.count += 1
        if log is not None:
            log(f"    twin: not run: {e}")
        return start, math.inf
    except torch.linalg.LinAlgError:  # the start's transforms are not finite
        if log is not None:
            log("    twin: not run: the start draws non-finite transforms")
        return start, math.inf
    values, best = result
    refusals.count += result.refused
    j = int(torch.argmin(best))
    return twin.params_of(struct, values, j), float(best[j])


def twin_refine(
    loss: ImageLoss | None,
    start: dict[str, Any],
    wide_seconds: float,
    fine_seconds: float,
    log: Log | None = None,
    target: np.ndarray | None = None,
    refusals: Refusals | None = None,
) -> dict[str, Any]:
    """The twin's wide descent (the chain to its place), then its fine one (the
    details) from both the start and the wide one's end in one batch, keeping the
    better (a wide descent can leave a start that was already in the right
    valley); each skipped at 0 s; see twin_descent."""
    p, others = start, []
    if wide_seconds > 0:
        p, _ = twin_descent(
            loss, p, wide_seconds, log, target, wide=True, refusals=refusals
        )
        others = [start] if p != start else []
    if fine_seconds > 0:
        p, _ = twin_descent(
            loss, p, fine_seconds, log, target, also=others, refusals=refusals
        )
    return p


def _target_of(loss: ImageLoss | None, target: np.ndarray | None) -> Any:
    if target is not None:
        return target
    if loss is None:
        raise ValueError("a twin descent needs a loss or a target picture")
    return loss.target
