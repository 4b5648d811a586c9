"""Splats onto pictures: each splat integrated over the pixels of a small window
(or, for wide ones, a matrix product), the chains' canvases added up in their
colours; `render` draws a structure's values, `render_params` flat params."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from art_explorer.scene.twin.colour import (
    _grey_and_hue,
    chain_color,
    gradient_stops,
    stop_color,
)
from art_explorer.scene.twin.splats import Splats, chain_splats
from art_explorer.scene.twin.values import Structure, structure_of, values_of


def _window(
    c: torch.Tensor, sigma: torch.Tensor, lo: torch.Tensor, n: int
) -> torch.Tensor:
    """(..., n): Gaussians centred at c (px), σ, integrated over pixels lo .. lo + n
    − 1 (an erf difference per pixel, as anti-aliasing integrates coverage)."""
    edges = lo[..., None] + torch.arange(n + 1, dtype=c.dtype, device=c.device)
    cdf = torch.erf((edges - c[..., None]) / (sigma[..., None] * math.sqrt(2)))
    return 0.5 * (cdf[..., 1:] - cdf[..., :-1])


def _splat_window(
    g: torch.Tensor,
    canvas: torch.Tensor,
    size: int,
    n: int,
    shape: tuple[int, int],
    m: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Splats g (B, K, 4 + m: x, y, σx, σy, then m weights; σ ≤ (n − 1) / 4.5 px)
    through an n × n pixel window each, placed on the splat to the nearest pixel:
    the flat indices into the (B, C, side, side) canvases (splat k's weights go to
    canvases m·canvas[k] + 0 .. m − 1; side = size + 2·pad, shape = (C, pad)) and the
    values, for one index_add. A window that would leave the canvas (pad ≥ n) is
    moved to its edge: the splat is far out there and draws ~0 in it."""
    b = g.shape[0]
    nc, pad = shape
    side = size + 2 * pad
    x, y, sx, sy = g[..., :4].unbind(-1)
    w = g[..., 4:]  # (B, K, m)
    with torch.no_grad():
        x0 = torch.round(x - n / 2).clamp(-pad, size + pad - n)
        y0 = torch.round(y - n / 2).clamp(-pad, size + pad - n)
        first = torch.arange(b, device=x0.device).view(b, 1) * nc + m * canvas
        base = first * side * side + ((y0 + pad) * side + (x0 + pad)).long()
        r = torch.arange(n, device=x0.device)
        offs = (r[:, None] * side + r[None, :]).flatten()  # (n·n,)
        offs = (
            torch.arange(m, device=x0.device)[:, None] * side * side + offs
        ).flatten()
        idx = (base[..., None] + offs).flatten()
    gx = _window(x, sx, x0, n)  # (B, K, n)
    gy = _window(y, sy, y0, n)
    if m == 1:
        return idx, ((gy * w)[..., :, None] * gx[..., None, :]).flatten()
    tile = (gy[..., :, None] * gx[..., None, :]).flatten(2)  # (B, K, n·n)
    return idx, (w[..., None] * tile[:, :, None]).flatten()


def _splat_dense(sp: Splats, w: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, size, size): splats weighted by w (B, C, K) as (H × K)·(K × W)."""
    z = torch.zeros_like(sp.x)
    gy = _window(sp.y, sp.sy, z, size)  # (B, K, H)
    gx = _window(sp.x, sp.sx, z, size)  # (B, K, W)
    return (gy[:, None] * w[..., None]).transpose(-1, -2) @ gx[:, None]


# A picture's splats take memory by their count and window (the descent keeps them for
# the gradient): a wide descent that blew the elements up, five chains of 400,000
# splats in a batch of two, ran a benchmark out of 24 GiB (2026-12-05). A picture that
# would take more than this raises TooBig; a descent stops its stage there and keeps
# its best so far.
MAX_BYTES = 3 * 2**30


class TooBig(RuntimeError):
    """A picture's splats would take more than MAX_BYTES to draw."""


# Splat windows (px) by σ: a window of n px holds ±2.25σ for σ ≤ (n − 1) / 4.5 (±2.5σ
# measured the same on 200 draws, 20% more window entries).
WINDOWS = (4, 5, 6, 10)


def picture(
    chains: list[tuple[Splats, torch.Tensor]], size: int, exact_color: bool = False
) -> torch.Tensor:
    """(B, 3, size, size): the chains' light added up, Σ opacity × coverage × colour
    over each chain's splats, the colour that of the chain's gradient where the
    splat lies (sRGB(tone_map(rgb × brightness)) at the renderer's stops,
    `gradient_stops`; tone_map: its ACES filmic curve, renderer/progressions.py);
    chains = (splats, stops (B, S, 3)). Small splats go through pixel windows (one
    index_add for all), the rest (large σ: blur, huge pieces) through matrix
    products.

    With `exact_color`, a canvas per colour channel: every splat's own colour,
    exactly. Otherwise a grey canvas per chain (each splat weighted by the channel
    mean of its colour, so grey, what NCC compares, is exact up to the clip at 1),
    tinted by the chain's hue when one hue fits its gradient, else joined by a
    chroma canvas (`_grey_and_hue`): one or two canvases per chain instead of
    three. A splat's window is worked out once for all its canvases."""
    f = torch.float32
    dev = chains[0][1].device
    b = len(chains[0][1])
    weights, bases = [], []  # per chain: (B, K, M) splat weights, (B, M, 3) colours
    for sp, stops in chains:
        stops, g = stops.to(f), sp.g.to(f)
        if exact_color:  # a canvas per colour channel
            w = stop_color(stops, g)
            basis = torch.eye(3, dtype=f, device=dev).expand(b, 3, 3)
        else:
            w, basis = _grey_and_hue(stops, g, sp.weight.to(f))
        weights.append(w * sp.weight.to(f)[..., None])
        bases.append(basis)
    m = max(w.shape[-1] for w in weights)  # canvases per chain
    stacked, canvas_of = [], []  # (B, K, 4 + m) splats, the chain they belong to
    for c, (sp, w) in enumerate(zip((ch[0] for ch in chains), weights, strict=True)):
        fields = [getattr(sp, k).to(f) for k in ("x", "y", "sx", "sy")]
        w = torch.nn.functional.pad(w, (0, m - w.shape[-1]))
        stacked.append(torch.cat([torch.stack(fields, -1), w], -1))
        canvas_of.append(torch.full((w.shape[1],), c, device=dev))
    g_all = torch.cat(stacked, 1)
    canvas_all = torch.cat(canvas_of)
    nc, pad = len(chains), max(WINDOWS)
    with torch.no_grad():  # splats that reach the picture, and their window
        x, y, sx, sy = g_all[..., :4].unbind(-1)
        sig = torch.maximum(sx, sy)
        reach = 3 * sig + 1
        seen = (
            (g_all[..., 4:] != 0).any(-1)
            & (x + reach > 0)
            & (x - reach < size)
            & (y + reach > 0)
            & (y - reach < size)
        ).any(0)
        big = sig.amax(0)
        bucket = torch.full_like(big, len(WINDOWS), dtype=torch.long)
        for j in reversed(range(len(WINDOWS))):
            bucket = torch.where(big <= (WINDOWS[j] - 1) / 4.5, j, bucket)
        sels = [
            torch.nonzero(seen & (bucket == j))[:, 0] for j in range(len(WINDOWS) + 1)
        ]
        counts = [len(sel) for sel in sels]
        perm = torch.cat(sels)
    # memory of the splat windows (flat index, value and tile per window entry) and
    # of the dense product of the huge ones
    need = 24 * b * m * sum(k * n * n for k, n in zip(counts, WINDOWS, strict=False))
    need += 16 * b * nc * m * counts[-1] * size
    if need > MAX_BYTES:
        raise TooBig(
            f"the twin would need {need / 2**30:.1f} GiB to draw {sum(counts)} splats "
            f"at {size}² (at most {MAX_BYTES / 2**30:g} GiB)"
        )
    g = g_all.index_select(1, perm)
    canvas = canvas_all[perm]
    side = size + 2 * pad
    flat = torch.zeros(b * nc * m * side * side, dtype=f, device=dev)
    k0, dense = 0, None
    for j, k in enumerate(counts):
        if k == 0:
            continue
        part, cpart = g[:, k0 : k0 + k], canvas[k0 : k0 + k]
        k0 += k
        if j < len(WINDOWS):
            flat.index_add_(
                0, *_splat_window(part, cpart, size, WINDOWS[j], (nc * m, pad), m)
            )
        else:
            onehot = (cpart[None] == torch.arange(nc, device=dev)[:, None]).to(f)
            w = onehot[None, :, None] * part[..., 4:].transpose(1, 2)[:, None]
            x, y, sx, sy = part[..., 0], part[..., 1], part[..., 2], part[..., 3]
            dense = _splat_dense(Splats(x, y, sx, sy, x, x), w.flatten(1, 2), size)
    pics = flat.view(b, nc * m, side, side)[..., pad : pad + size, pad : pad + size]
    if dense is not None:
        pics = pics + dense
    pics = pics.unflatten(1, (nc, m))  # (B, C, M, H, W)
    basis = torch.stack(
        [torch.nn.functional.pad(x, (0, 0, 0, m - x.shape[1])) for x in bases], 1
    )  # (B, C, M, 3)
    return torch.einsum("bcmhw,bcmk->bkhw", pics, basis)


def render(
    struct: Structure,
    values: dict[str, torch.Tensor],
    size: int,
    blur: float = 0.0,
    exact_color: bool = False,
) -> torch.Tensor:
    """(B, 3, size, size) in [0, 1]: the pictures (as the renderer's bytes / 255,
    without noise, dither or CRT). `blur` (px) widens every splat, for a
    coarse-to-fine descent."""
    b = len(values["scale"])
    chains = []
    for chain in range(len(struct.geometries)):
        rgb = chain_color(struct, values, chain)
        if not bool((rgb > 0).any()):
            continue
        stops = gradient_stops(struct, values, chain, rgb)
        chains.append((chain_splats(struct, values, chain, size, blur), stops))
    if not chains:
        return torch.zeros(b, 3, size, size, device=values["scale"].device)
    return picture(chains, size, exact_color).clamp(max=1.0)


def render_params(params: dict[str, Any], size: int) -> np.ndarray:
    """Complete flat params → float32 (size, size, 3) in [0, 1], no gradients,
    rounded to 8 bits as the renderer's pictures are (light under half a level
    vanishes there)."""
    struct = structure_of(params)
    with torch.no_grad():
        img = render(struct, values_of([params], struct), size)[0]
    return (torch.round(img * 255) / 255).permute(1, 2, 0).numpy()
