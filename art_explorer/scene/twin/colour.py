"""The twin's colours: the gradient's brightness along the element, the renderer's
gradient stops (tone-mapped, sRGB-encoded) and a chain's colours on one or two
canvases."""

from __future__ import annotations

import torch

from art_explorer.scene.twin.values import Structure, _get
from art_explorer.scene.view import linear_to_srgb, srgb_to_linear
from renderer import scene
from renderer.progressions import tone_map

# A chain is drawn on one grey canvas of one hue when that hue gives each of its
# gradient's colours within this (sRGB); else on two (`_grey_and_hue`). The scene's
# default near-white is 9 levels off, #7D99FF over 30. On 108 lit held-out draws NCC
# is the same with one canvas everywhere (a hue shows in grey only where a channel
# clips); a blown-out saturated colour needs the second (golden random-06: 0.74
# with one, 0.90 with two, the renderer 0.91).
HUE_TOL = 16 / 255


def _smoothstep(e0: torch.Tensor, e1: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    d = e1 - e0
    d = torch.where(d.abs() < 1e-6, torch.full_like(d, 1e-6), d)
    t = ((x - e0) / d).clamp(0, 1)
    return t * t * (3 - 2 * t)


def gradient_coord(values: dict[str, torch.Tensor], q: torch.Tensor) -> torch.Tensor:
    """(B, P) where local points q (B, P, 2) lie along the gradient: q·(sin θ, cos θ),
    θ = gradientAngle, clamped to ±GRADIENT_REACH (the shader's end stops)."""
    th = values["gradientAngle"][:, None].to(q.dtype)
    g = q[..., 0] * th.sin() + q[..., 1] * th.cos()
    return g.clamp(-scene.GRADIENT_REACH, scene.GRADIENT_REACH)


def _brightness_at(
    struct: Structure, values: dict[str, torch.Tensor], chain: int, g: torch.Tensor
) -> torch.Tensor:
    """(B, P) brightness at gradient coordinates g (B, P): 1 − smoothstep(lo, hi,
    0.5 + 0.5·|g|), (lo, hi) = gradientRange."""
    if "gradientRange.0" in values:
        lo = _get(values, struct, chain, "gradientRange.0")[:, None].to(g.dtype)
        hi = _get(values, struct, chain, "gradientRange.1")[:, None].to(g.dtype)
    else:
        lo, hi = torch.full_like(g[:, :1], 0.2), torch.full_like(g[:, :1], 1.0)
    return 1 - _smoothstep(lo, hi, 0.5 + 0.5 * g.abs())


def brightness(
    struct: Structure,
    values: dict[str, torch.Tensor],
    chain: int,
    q: torch.Tensor,
) -> torch.Tensor:
    """(B, P) brightness of local points q (B, P, 2): 1 − smoothstep(lo, hi,
    0.5 + 0.5·|q·(sin θ, cos θ)|), θ = gradientAngle, (lo, hi) = gradientRange."""
    return _brightness_at(struct, values, chain, gradient_coord(values, q))


def gradient_stops(
    struct: Structure, values: dict[str, torch.Tensor], chain: int, rgb: torch.Tensor
) -> torch.Tensor:
    """(B, GRADIENT_STOPS, 3): the chain's gradient as the renderer's shader holds
    it (scene.gradient_shader): sRGB(tone_map(rgb × brightness(g))) at
    GRADIENT_STOPS even stops g over ±GRADIENT_REACH, each rounded to 8 bits (a skia
    colour; the gradient passes straight through the rounding). rgb: (B, 3) linear."""
    g = torch.linspace(
        -scene.GRADIENT_REACH,
        scene.GRADIENT_REACH,
        scene.GRADIENT_STOPS,
        dtype=rgb.dtype,
        device=rgb.device,
    ).expand(len(rgb), -1)
    b = _brightness_at(struct, values, chain, g)  # (B, S)
    col = linear_to_srgb(tone_map(rgb[:, None, :] * b[..., None]))
    return col + (torch.round(col * 255) / 255 - col).detach()


def _stop_place(g: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where gradient coordinates g (B, K) fall among n stops evenly spread over
    ±GRADIENT_REACH: the stop before (B, K) and the share of the way to the next."""
    u = (g + scene.GRADIENT_REACH) * ((n - 1) / (2 * scene.GRADIENT_REACH))
    i0 = u.detach().floor().clamp(0, n - 2).long()
    return i0, u - i0.to(u.dtype)


def stop_color(stops: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(B, K, C): the colour at gradient coordinates g (B, K) of stops (B, S, C)
    evenly spread over ±GRADIENT_REACH, linearly interpolated between the two
    nearest (as skia's linear gradient)."""
    i0, fr = _stop_place(g, stops.shape[1])
    idx = i0[..., None].expand(-1, -1, stops.shape[2])
    c0, c1 = stops.gather(1, idx), stops.gather(1, idx + 1)
    return c0 + fr[..., None] * (c1 - c0)


def chain_color(
    struct: Structure, values: dict[str, torch.Tensor], chain: int
) -> torch.Tensor:
    """(B, 3) linear colour of a chain: the base colour × its own, both linear
    (as scene.chain_color)."""
    base = torch.stack([values[f"color.{c}"] for c in "rgb"], -1)
    own = torch.stack([_get(values, struct, chain, f"color.{c}") for c in "rgb"], -1)
    return srgb_to_linear(_unit(base)) * srgb_to_linear(_unit(own))


def _unit(c: torch.Tensor) -> torch.Tensor:
    """c clipped to [0, 1], with the gradient passed through (a colour at 0xFF
    still learns to darken)."""
    return c - (c - c.clamp(0, 1)).detach()


def _grey_and_hue(
    stops: torch.Tensor, g: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A chain's colours on one or two canvases: splat weights (B, K, M) and the
    colour of each canvas (B, M, 3), their product summed over M ≈ each splat's
    colour (stops (B, S, 3) at gradient coordinates g (B, K); weight (B, K) its
    area × opacity). Canvas 0 is grey: every splat's channel mean, so grey is exact.
    Tinted by the chain's light-weighted hue (Σ weight × colour / Σ weight × grey,
    each channel's total light exact), it is all there is when that hue gives every
    stop the splats use within HUE_TOL; else canvas 1 holds the chroma along the
    direction in which the stops' colours vary most (weighted by the light at
    them), on top of the untinted grey: exact where the gradient's colours keep to
    one hue line, as ACES's run from a colour's own hue towards white does."""
    grey = stops.mean(-1)  # (B, S)
    one = torch.ones_like(stops[:, :1])  # (B, 1, 3)
    i0, fr = _stop_place(g, stops.shape[1])
    at_stop = torch.zeros_like(grey)  # (B, S) the weight at each stop
    at_stop = at_stop.scatter_add(1, i0, weight * (1 - fr))
    at_stop = at_stop.scatter_add(1, i0 + 1, weight * fr)
    light = (at_stop[..., None] * stops).sum(1)  # (B, 3)
    tint = light / light.mean(-1, keepdim=True).clamp(min=1e-12)
    chroma = stops - grey[..., None]
    with torch.no_grad():
        off = (stops - grey[..., None] * tint[:, None]).abs().amax(-1)
        one_hue = float(torch.where(at_stop > 0, off, 0).max()) <= HUE_TOL
    if one_hue:
        return stop_color(grey[..., None], g), tint[:, None]
    with torch.no_grad():
        c = chroma.detach()
        cov = (c * at_stop.detach()[..., None]).transpose(1, 2) @ c  # (B, 3, 3)
        axis = torch.linalg.eigh(cov.double())[1][..., -1].to(stops.dtype)  # (B, 3)
    along = (chroma * axis[:, None]).sum(-1)  # (B, S)
    w = stop_color(torch.stack([grey, along], -1), g)
    return w, torch.cat([one, axis[:, None]], 1)
