"""The training losses: the forward model's (on √image, lit pixels weighted up) and
the inverse model's per-head parameter loss (angles compared around the circle)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from art_explorer.scene import schema
from art_explorer.scoring import metrics


@dataclass
class ForwardLossWeights:
    """Terms of the forward loss (all on √image, where thin lines are not negligible).

    lit: extra weight of pixels within 1 px of a lit target pixel in the L1 term;
    coarse: L1 of 4×-average-pooled √image; perceptual: the perceptual distance;
    ncc: 1 − NCC of blurred √gray."""

    lit: float = 4.0
    coarse: float = 1.0
    perceptual: float = 0.5
    ncc: float = 0.5


def forward_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    perceptual: torch.nn.Module,
    w: ForwardLossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """pred, target (B, 3, R, R) in [0, 1] → (scalar loss, its parts as floats)."""
    pred, target = pred.float(), target.float()
    sp, st = metrics.sqrt_image(pred), metrics.sqrt_image(target)
    lit = metrics.dilate(metrics.lit_mask(target), 1).float()  # (B, 1, R, R)
    weight = 1 + w.lit * lit
    l1 = (weight * (sp - st).abs()).mean() / weight.mean()
    parts = {"l1": float(l1.detach())}
    loss = l1
    if w.coarse:
        coarse = (F.avg_pool2d(sp, 4) - F.avg_pool2d(st, 4)).abs().mean()
        loss = loss + w.coarse * coarse
        parts["coarse"] = float(coarse.detach())
    if w.perceptual:
        perc = perceptual(pred, target).mean()
        loss = loss + w.perceptual * perc
        parts["perc"] = float(perc.detach())
    if w.ncc:
        ncc = (
            1
            - metrics.ncc_batch(
                pred,
                target,
                max(0.5, metrics.scaled_sigma(metrics.NCC_SIGMA, pred.shape[-1])),
                1e-4,
            ).mean()
        )
        loss = loss + w.ncc * ncc
        parts["1-ncc"] = float(ncc.detach())
    return loss, parts


def _periodic_mask(
    params: tuple[tuple[str, int], ...], table: dict[str, schema.Param]
) -> torch.Tensor:
    return torch.tensor([table[k].periodic for k, _ in params], dtype=torch.bool)


PERIODIC_CONT = _periodic_mask(schema.CONT_COMPONENTS, schema.PARAM)
PERIODIC_LAYER = _periodic_mask(schema.LAYER_CONT_COMPONENTS, schema.LAYER_PARAM)
# which layer_opt flag governs each layer_cont column (-1: always present)
LAYER_COL_OPT = torch.tensor(
    [
        schema.LAYER_OPTIONAL.index(k) if k in schema.LAYER_OPTIONAL else -1
        for k, _ in schema.LAYER_CONT_COMPONENTS
    ]
)


def cont_error(
    pred: torch.Tensor, true: torch.Tensor, periodic: torch.Tensor
) -> torch.Tensor:
    """Squared error in [0, 1] units; for angles the wrap-around-aware
    (1 − cos 2πd)/(2π²), equal to d² for small d."""
    d = pred - true
    circ = (1 - torch.cos(2 * math.pi * d)) / (2 * math.pi**2)
    return torch.where(periodic.to(d.device), circ, d * d)


def inverse_param_loss(
    out: dict[str, Any], enc: dict[str, torch.Tensor], cont_weight: float = 10.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Head outputs vs the true encoding → (scalar loss, parts). Continuous MSE terms
    are scaled by cont_weight so that they weigh like the cross-entropies."""
    L = schema.MAX_LAYERS
    cont = cont_error(out["cont"], enc["cont"], PERIODIC_CONT).mean()
    cat = torch.stack(
        [F.cross_entropy(lg, enc["cat"][:, i]) for i, lg in enumerate(out["cat"])]
    ).mean()
    bools = F.binary_cross_entropy_with_logits(out["bools"], enc["bools"])
    n_layers = F.cross_entropy(out["n_layers"], enc["n_layers"])
    real = (
        torch.arange(L, device=enc["n_layers"].device)[None] < enc["n_layers"][:, None]
    ).float()  # (B, 5)
    opt = enc["layer_opt"]
    col_opt = LAYER_COL_OPT.to(opt.device)
    present = torch.where(
        col_opt[None, None] >= 0,
        opt[:, :, col_opt.clamp(min=0)],
        torch.ones_like(opt[:, :, :1]),
    )
    cmask = real[:, :, None] * present  # (B, 5, NLC)
    lc_err = cont_error(out["layer_cont"], enc["layer_cont"], PERIODIC_LAYER)
    layer_cont = (lc_err * cmask).sum() / cmask.sum().clamp(min=1)
    lo = F.binary_cross_entropy_with_logits(
        out["layer_opt"], opt, reduction="none"
    ).mean(-1)
    layer_opt = (lo * real).sum() / real.sum().clamp(min=1)
    gmask = real * opt[:, :, schema.LAYER_OPTIONAL.index("geometry")]
    ge = F.cross_entropy(
        out["layer_geom"].flatten(0, 1), enc["layer_geom"].flatten(), reduction="none"
    ).view_as(gmask)
    layer_geom = (ge * gmask).sum() / gmask.sum().clamp(min=1)
    parts = dict(
        cont=cont,
        cat=cat,
        bools=bools,
        n_layers=n_layers,
        layer_cont=layer_cont,
        layer_opt=layer_opt,
        layer_geom=layer_geom,
    )
    loss = (
        cont_weight * (cont + layer_cont)
        + cat
        + bools
        + n_layers
        + layer_opt
        + layer_geom
    )
    return loss, {k: float(v.detach()) for k, v in parts.items()}
