"""Registration: the scene's outer transform (Scene.rotation / scale / position) fitted on pixels.

It is a similarity transform of the picture about the world origin, so the best one can
be found without rendering and written back into the params.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer.predict.loss import ImageLoss
from art_explorer.scene import schema
from art_explorer.scene.view import VIEW_HALF
from art_explorer.scoring import metrics


def warp(
    images: torch.Tensor, a: torch.Tensor, k: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Images (B, C, R, R) as the renderer would draw them after the world map
    q = t + R(a)·k·p (a radians counter-clockwise, k > 0, t (B, 2) world units;
    +y up). a, k: (B,). Differentiable in a, k, t."""
    c, s = torch.cos(a), torch.sin(a)
    # output normalised coords (x right, y down) → input: D R(-a) D = R(a), / k
    m = (
        torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
        / k[:, None, None]
    )
    tw = torch.stack([t[:, 0], -t[:, 1]], -1) / VIEW_HALF  # world → normalised (y down)
    shift = -(m @ tw[:, :, None])
    theta = torch.cat([m, shift], dim=2)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )


MIN_SCENE_SCALE = 0.05  # registration never shrinks a scene below this


def apply_similarity(
    params: dict[str, Any], a: float, k: float, t: Sequence[float]
) -> dict[str, Any]:
    """Params whose picture is the old one mapped by q = t + R(a)·k·p (see `warp`).

    Scene.rotation turns by a and Scene.scale grows by k (clamped to its range);
    the shift t, which no scene parameter holds (Scene.position moves the base chain
    only, inside the scene's rotation and scale: docs/scene.md), is added to every
    chain's group translation as δ = R(−θ')·t/s' in scene units: Scene.position
    and each layer's position."""
    sp = schema.PARAM["scale"]
    scale = float(min(sp.clamp_hi, max(sp.clamp_lo, params["scale"] * k)))
    rotation = schema.wrap_angle(params["rotation"] + a)
    c, s = math.cos(-rotation), math.sin(-rotation)
    tx, ty = (float(v) for v in t)
    inv = 1.0 / max(scale, 1e-6)
    dx, dy = (c * tx - s * ty) * inv, (s * tx + c * ty) * inv

    def moved(p: dict[str, float]) -> dict[str, float]:
        return {"x": float(p["x"] + dx), "y": float(p["y"] + dy)}

    return {
        **params,
        "position": moved(params["position"]),
        "rotation": rotation,
        "scale": scale,
        "layers": [
            {**la, "position": moved(la["position"])} for la in params["layers"]
        ],
    }


def register(
    images: torch.Tensor,
    target: torch.Tensor,
    k_range: Sequence[tuple[float, float]],
    n_angles: int = 24,
    n_scales: int = 5,
    max_shift: float = 1.5,
    refine_steps: int = 30,
    init: Sequence[tuple[float, float]] | None = None,
    refine_top: int = 8,
) -> list[tuple[float, float, float, float, float]]:
    """Best similarity transform of each image onto the target, found on pixels.

    images: (B, 3, R, R), target: (1, 3, R, R) in [0, 1]; k_range: per image the
    allowed scale factors (Scene.scale must stay in range). Coarse search over
    n_angles × n_scales with the best shift from an FFT cross-correlation of the
    coarse-blurred √grey images (shift ≤ max_shift world units), then Adam on the
    two-scale NCC for the `refine_top` best of the best two per image. `init`: per image one (angle, scale)
    to start from instead of the coarse grid (from `RetrievalBank.nearest`). Returns per image (a, k, tx, ty, ncc);
    the identity (0, 1, 0, 0, ncc) when no transform does better."""
    loss = ImageLoss(target[0].permute(1, 2, 0).numpy())
    n_img, res = images.shape[0], images.shape[-1]
    sig = metrics.scaled_sigma(metrics.COARSE_SIGMA, res)
    tgt = metrics.gaussian_blur_batch(
        torch.sqrt(target.mean(1, keepdim=True) + 1e-6), sig
    )
    tgt = tgt - tgt.mean()
    pad = (2 * res, 2 * res)
    tf = torch.fft.rfft2(tgt, s=pad)
    px = 2 * VIEW_HALF / res  # world units per pixel
    lim = int(max_shift / px)
    angles = np.linspace(-math.pi, math.pi, n_angles, endpoint=False)
    grid: list[tuple[int, float, float]] = []  # (image, angle, scale)
    for b, (lo, hi) in enumerate(k_range):
        if init is not None:
            grid.append((b, init[b][0], min(hi, max(lo, init[b][1]))))
            continue
        ks = np.exp(np.linspace(math.log(lo), math.log(hi), n_scales))
        grid += [(b, float(a), float(k)) for a in angles for k in ks]
    idx = torch.tensor([g[0] for g in grid])
    with torch.no_grad():
        w = warp(
            images[idx],
            torch.tensor([g[1] for g in grid], dtype=torch.float32),
            torch.tensor([g[2] for g in grid], dtype=torch.float32),
            torch.zeros(len(grid), 2),
        )
        g = metrics.gaussian_blur_batch(torch.sqrt(w.mean(1, keepdim=True) + 1e-6), sig)
        g = g - g.mean(dim=(2, 3), keepdim=True)
        norm = g.flatten(1).norm(dim=1) * tgt.norm() + 1e-8
        cc = torch.fft.irfft2(tf * torch.conj(torch.fft.rfft2(g, s=pad)), s=pad)
        # cc[dy, dx] = Σ tgt[y + dy, x + dx] · g[y, x]: g moved by (dy, dx) px
        cc = torch.roll(cc, shifts=(lim, lim), dims=(2, 3))
        best = cc[:, 0, : 2 * lim + 1, : 2 * lim + 1].flatten(1).max(dim=1)
        score = best.values / norm
    f32 = torch.float32
    starts: list[tuple[int, float, float, float, float]] = []
    for b in range(n_img):
        rows = (idx == b).nonzero()[:, 0]
        for j in rows[torch.argsort(score[rows], descending=True)[:2]].tolist():
            dy, dx = divmod(int(best.indices[j]), 2 * lim + 1)
            starts.append(
                (b, grid[j][1], grid[j][2], (dx - lim) * px, -(dy - lim) * px)
            )
    sidx = torch.tensor([s[0] for s in starts])
    a = torch.tensor([s[1] for s in starts], dtype=f32)
    logk = torch.tensor([math.log(s[2]) for s in starts], dtype=f32)
    t = torch.tensor([s[3:] for s in starts], dtype=f32)
    rep = images[sidx]
    with torch.no_grad():
        ncc = loss.ncc(warp(rep, a, logk.exp(), t))
        ncc0 = loss.ncc(images).tolist()
    # refine the most promising ones (gradients through grid_sample are the cost)
    top = torch.argsort(ncc, descending=True)[:refine_top]
    ra, rk, rt = (v[top].clone().requires_grad_(True) for v in (a, logk, t))
    klo = torch.tensor([math.log(k_range[starts[j][0]][0]) for j in top.tolist()])
    khi = torch.tensor([math.log(k_range[starts[j][0]][1]) for j in top.tolist()])
    opt = torch.optim.Adam([ra, rk, rt], lr=0.01)
    for _ in range(refine_steps):
        opt.zero_grad()
        loss(warp(rep[top], ra, rk.exp(), rt)).sum().backward()
        opt.step()
        with torch.no_grad():
            rk.copy_(torch.maximum(torch.minimum(rk, khi), klo))
    with torch.no_grad():
        a[top], logk[top], t[top] = ra, rk, rt
        ncc[top] = loss.ncc(warp(rep[top], ra, rk.exp(), rt))
    ncc, a_, k_, t_ = ncc.tolist(), a.tolist(), logk.exp().tolist(), t.tolist()
    out = [(0.0, 1.0, 0.0, 0.0, n0) for n0 in ncc0]
    for j, s in enumerate(starts):
        if ncc[j] > out[s[0]][4]:
            out[s[0]] = (a_[j], k_[j], t_[j][0], t_[j][1], ncc[j])
    return out
