"""The instance layout: docs/scene.md's progressions on torch, differentiable, and the
splat of the geometries' outline templates at the instances' places (the forward
model's hint)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer.scene import schema
from art_explorer.scene.view import linear_to_srgb
from renderer.geometry import outline_points
from renderer.progressions import (
    alpha_progression,
    offset_progression,
    rotation_progression,
    scale_progression,
)


def _outline_points(name: str, n: int = 400) -> torch.Tensor:
    """(n, 2) points evenly spaced along a geometry's outline in element-local units:
    the renderer's own outline (renderer/geometry.py), resampled by arc length."""
    pts = outline_points(name)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    t = np.linspace(0.0, arc[-1], n)
    xy = np.stack([np.interp(t, arc, pts[:, 0]), np.interp(t, arc, pts[:, 1])], -1)
    return torch.tensor(xy, dtype=torch.float64)


def outline_templates(size: int = 32, width_px: float = 0.8) -> torch.Tensor:
    """(10, 1, size, size) pictures of the geometries' outlines over local
    [-1, 1]² (+y up, row 0 at the top), Gaussian lines of `width_px` σ, peak ≈ 1."""
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1
    ys, xs = -c[:, None].expand(size, size), c[None, :].expand(size, size)
    px = 2 / size
    out = []
    for name in schema.GEOMETRIES:
        p = _outline_points(name)
        d2 = (xs[None] - p[:, 0, None, None]) ** 2 + (
            ys[None] - p[:, 1, None, None]
        ) ** 2
        d = d2.min(0).values.sqrt() / px
        out.append(torch.exp(-0.5 * (d / width_px) ** 2))
    return torch.stack(out)[:, None].float()


MAX_INSTANCE_SCALE = 20.0


def instance_layout(
    v: dict[str, torch.Tensor], probs: dict[str, torch.Tensor], k: int
) -> dict[str, torch.Tensor]:
    """The first k instances of M chains from docs/scene.md's progressions.

    v: (M,) tensors in the parameters' own units: repetitions, scaleFactor,
    rotationFactor, alphaFactor, stepFactor, xStep, yStep, positionCoupled (0-1).
    probs: (M, K) option probabilities of scaleProgression, rotationProgression,
    alphaProgression, positionProgression, origin (one-hot for hard choices; soft ones
    mix the progressions). Returns s, r (radians), x, y, w (opacity × presence),
    each (M, k)."""
    dev = v["scaleFactor"].device
    i = torch.arange(k, device=dev, dtype=torch.float32)[None]  # (1, k)
    n = v["repetitions"][:, None]
    # renderer/progressions.py's formulas, on torch; scale in float64 (sf^i), then
    # clamped to what the canvas can show
    sf = v["scaleFactor"][:, None].double().clamp(min=1e-4)
    s = sum(
        probs["scaleProgression"][:, j, None]
        * scale_progression(o, sf, k).clamp(max=MAX_INSTANCE_SCALE).float()
        for j, o in enumerate(schema.SCALE_PROGRESSIONS)
    )
    s = s.clamp(-MAX_INSTANCE_SCALE, MAX_INSTANCE_SCALE)  # type: ignore[union-attr]
    rf = v["rotationFactor"][:, None]
    r = sum(
        probs["rotationProgression"][:, j, None] * rotation_progression(o, rf, k)
        for j, o in enumerate(schema.ROTATION_PROGRESSIONS)
    )
    af = v["alphaFactor"][:, None]
    a = sum(
        probs["alphaProgression"][:, j, None]
        * alpha_progression(o, af, n.clamp(min=1), count=k)
        for j, o in enumerate(schema.ALPHA_PROGRESSIONS)
    )
    # offsets: every (kind, coupled, origin) mixed by its probability
    coupled = v["positionCoupled"][:, None]
    xs, ys, step = v["xStep"][:, None], v["yStep"][:, None], v["stepFactor"][:, None]
    xy = torch.zeros(*s.shape, 2, device=dev)  # type: ignore[union-attr]
    for j, kind in enumerate(schema.POSITION_PROGRESSIONS):
        for c, wc in ((True, coupled), (False, 1 - coupled)):
            if kind == "scale" and not c:
                continue  # the scale kind ignores coupling
            w_kind = probs["positionProgression"][:, j, None] * (
                wc if kind == "index" else 1.0
            )
            for o, origin in enumerate(schema.ORIGINS):
                w = (w_kind * probs["origin"][:, o, None])[..., None]
                xy = xy + w * offset_progression(kind, s, xs, ys, c, origin, step)
    x, y = xy[..., 0], xy[..., 1]
    present = torch.sigmoid(4 * (n - i - 0.5))
    return {"s": s, "r": torch.deg2rad(r), "x": x, "y": y, "w": a * present}  # type: ignore[arg-type]


def gradient_templates(
    templates: torch.Tensor,
    angle: torch.Tensor,
    lo: torch.Tensor | float = 0.2,
    hi: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """(M, 1, T, T) outline templates over local [-1, 1]² × the gradient's brightness
    (docs/scene.md): sRGB(1 − smoothstep(lo, hi, 0.5 + 0.5·|g|)), g = q·(sin θ,
    cos θ), θ (M,) rad, (lo, hi) = gradientRange, (M,) each or numbers (sRGB of the
    brightness: the renderer encodes colour × brightness, ≈ sRGB(colour) × this)."""
    T = templates.shape[-1]
    dev = templates.device
    c = (torch.arange(T, device=dev, dtype=torch.float32) + 0.5) / T * 2 - 1
    qx, qy = c[None, None, None, :], -c[None, None, :, None]
    th = angle[:, None, None, None]
    g = qx * th.sin() + qy * th.cos()
    lo_t = torch.as_tensor(lo, device=dev, dtype=torch.float32).reshape(-1, 1, 1, 1)
    hi_t = torch.as_tensor(hi, device=dev, dtype=torch.float32).reshape(-1, 1, 1, 1)
    span = hi_t - lo_t
    span = torch.where(span.abs() < 1e-4, torch.full_like(span, 1e-4), span)
    t = ((0.5 + 0.5 * g.abs() - lo_t) / span).clamp(0, 1)
    return templates * linear_to_srgb(1 - t * t * (3 - 2 * t))


def splat_layout(
    inst: dict[str, torch.Tensor], templates: torch.Tensor, size: int, extent: float
) -> torch.Tensor:
    """Draw every instance's outline template into its chain's canvas.

    inst: instance_layout's (M, k) tensors; templates: (M, 1, T, T), one per chain
    (see gradient_templates); the canvas covers [-extent, extent]² world units at
    size² px. Returns (M, 1, size, size) ≥ 0, the sum of the instances."""
    M, k = inst["s"].shape
    s = inst["s"]
    s = torch.where(s >= 0, s.clamp(min=1e-3), s.clamp(max=-1e-3))
    cr, sr = (
        (inst["r"].cos() / s)[..., None, None],
        (inst["r"].sin() / s)[..., None, None],
    )
    x, y = inst["x"][..., None, None], inst["y"][..., None, None]
    # canvas normalised (xn, yn) → template normalised (tx, ty) = (lx, −ly) with
    # local = R(−r)(q − p) / s and q = E·(xn, −yn); each sum broadcasts (M, k, 1, W)
    # against (M, k, H, 1), so only one full-size tensor per coordinate is made
    c = (torch.arange(size, device=s.device, dtype=torch.float32) + 0.5) / size * 2 - 1
    xn, yn = c[None, None, None, :] * extent, c[None, None, :, None] * extent
    tx = (cr * xn - cr * x - sr * y) + (-sr * yn)
    ty = (sr * xn + cr * y - sr * x) + (cr * yn)
    grid = torch.stack([tx, ty], -1).reshape(M, k * size, size, 2)
    val = F.grid_sample(
        templates, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    ).reshape(M, k, size, size)
    # a template line magnified beyond a canvas pixel is dimmed to keep its energy
    line_px = 2.0 * 2 / templates.shape[-1] * inst["s"].abs() / (2 * extent / size)
    w = inst["w"] / line_px.clamp(min=1)
    return torch.einsum("mkhw,mk->mhw", val, w)[:, None]
