"""Gaussian splats of a chain: each instance's outline cut into pieces along and
strips across its band, each a splat weighted by its area × the instance's opacity."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from art_explorer.scene.twin.colour import gradient_coord
from art_explorer.scene.twin.detail import PIECE_PX, _levels
from art_explorer.scene.twin.transforms import (
    _affine,
    chain_matrix,
    instance_linear,
    stroke_radius,
)
from art_explorer.scene.twin.values import Structure, _get
from art_explorer.scene.view import VIEW_HALF
from renderer import scene
from renderer.geometry import geometry_extent
from renderer.instancing import visible_edge
from renderer.progressions import (
    alpha_progression,
    offset_progression,
    rotation_progression,
    scale_progression,
)

STRIP_PX = 1.5  # ... and their bands cut into strips at most this wide (px)
MAX_SUBDIVIDE = 256  # ... cut into at most this many pieces per outline segment
MAX_ACROSS = 64  # a band is cut into at most this many strips across
MAX_SPLATS = 400_000  # per chain: coarser cuts beyond (huge instances get blurred)
AA_SIGMA = 0.25  # px: the splat's floor (skia's anti-aliasing is not a hard box)


@dataclass
class Splats:
    """Gaussian splats, flattened: centres x, y (px), σ along x and y (px), weight
    (pixel area × opacity) and where it lies along the gradient (`gradient_coord`),
    each (B, K)."""

    x: torch.Tensor
    y: torch.Tensor
    sx: torch.Tensor
    sy: torch.Tensor
    weight: torch.Tensor
    g: torch.Tensor

    @staticmethod
    def cat(parts: list[Splats]) -> Splats:
        fields = ("x", "y", "sx", "sy", "weight", "g")
        return Splats(*(torch.cat([getattr(p, f) for p in parts], 1) for f in fields))


def _pow2(x: torch.Tensor, cap: int) -> torch.Tensor:
    """⌈x⌉ in [1, cap] (any count now: the splats are not grouped by count)."""
    return torch.ceil(x.clamp(min=1.0)).clamp(max=cap).long()


def _cuts(
    length_px: torch.Tensor, width_px: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pieces along and strips across of each segment (P,): at most PIECE_PX long
    and STRIP_PX wide, halved (largest first) until there are at most
    MAX_SPLATS splats (the largest then get blurred)."""
    along = _pow2(length_px / PIECE_PX, MAX_SUBDIVIDE)
    across = _pow2(width_px / STRIP_PX, MAX_ACROSS)
    while int((along * across).sum()) > MAX_SPLATS:
        big = along * across
        if int(big.max()) == 1:
            break
        top = big == big.max()
        halve_along = top & (along >= across)
        along = torch.where(halve_along, along // 2, along)
        across = torch.where(top & ~halve_along, across // 2, across)
    return along, across


def _progressions(
    struct: Structure, values: dict[str, torch.Tensor], chain: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each instance's scale s, rotation r (radians), opacity a, each (B, n), and
    offset (B, n, 2), from renderer/progressions.py's formulas."""
    p = struct.params
    n = struct.repetitions

    def get(name: str) -> torch.Tensor:
        return _get(values, struct, chain, name)[:, None]  # (B, 1)

    s = scale_progression(p["scaleProgression"], get("scaleFactor"), n)  # (B, n)
    r = torch.deg2rad(
        rotation_progression(p["rotationProgression"], get("rotationFactor"), n)
    )
    a = alpha_progression(p["alphaProgression"], get("alphaFactor"), n)
    off = offset_progression(
        p["positionProgression"],
        s,
        values["xStep"][:, None],
        values["yStep"][:, None],
        bool(p["positionCoupled"]),
        p["origin"],
        get("stepFactor"),
    )  # (B, n, 2)
    return s, r, a, off


def chain_splats(
    struct: Structure,
    values: dict[str, torch.Tensor],
    chain: int,
    size: int,
    blur: float = 0.0,
) -> Splats:
    """Every outline segment of chain `chain` that reaches the picture, as splats
    at size² px (see the module doc)."""
    geom = struct.geometries[chain]
    s, r, a, off = _progressions(struct, values, chain)
    m = chain_matrix(struct, values, chain, size)  # (B, 3, 3) group → px
    lin = m[:, :2, :2]
    ppu = size / (2 * VIEW_HALF)
    radius = stroke_radius(struct, values, chain)  # (B,) local units
    L, zc = instance_linear(lin, s, r, values["scale"], ppu)  # (B, n, 2, 2), (B, n)
    # instances the renderer skips: not finite, or a world extent out of bounds
    with torch.no_grad():
        sv = torch.linalg.svdvals(lin)  # (B, 2) px per group unit
        inst_sv = torch.linalg.svdvals(torch.nan_to_num(L))[..., 0]  # (B, n) px
        ext = geometry_extent(geom).r_max * inst_sv / ppu  # world units
        keep = (
            torch.isfinite(s)
            & torch.isfinite(off).all(-1)
            & torch.isfinite(L).flatten(-2).all(-1)
            & (ext >= scene.MIN_EXTENT)
            & (ext <= scene.MAX_EXTENT)
            & (sv[:, 1:] >= 1e-9 * ppu)
        )
    s = torch.where(keep, s, torch.zeros_like(s))
    off = torch.where(keep[..., None], off, torch.zeros_like(off))
    a = torch.where(keep, a, torch.zeros_like(a))
    L = torch.where(keep[..., None, None], L, torch.zeros_like(L))
    # the share of the band's half-width its edge strips keep (1: all of it)
    edge = visible_edge(zc, s, radius[:, None]) / radius[:, None].clamp(min=1e-12)
    edge = torch.where(keep, edge.clamp(0.0, 1.0), torch.ones_like(edge)).detach()
    t = (lin[:, None] @ off[..., None])[..., 0] + m[:, None, :2, 2]  # (B, n, 2)
    # the outline's segments (B, S, 2) at every level of detail: starts and
    # vectors, turned by startAngle
    starts, vectors, seg_level, fit = _levels(geom)
    seg_a = torch.tensor(starts, dtype=s.dtype, device=s.device).expand(len(s), -1, -1)
    seg_d = torch.tensor(vectors, dtype=s.dtype, device=s.device).expand(len(s), -1, -1)
    if "startAngle" in values:
        sa = _get(values, struct, chain, "startAngle")
        z = torch.zeros_like(sa)
        rt = _affine(z, z, sa, 1.0, 1.0)[:, :2, :2].transpose(1, 2)
        seg_a, seg_d = seg_a @ rt, seg_d @ rt
    with torch.no_grad():  # the (instance, segment) pairs that reach the picture
        mid = seg_a + seg_d / 2
        cx, cy = _apply(L, t, mid)  # (B, n, S)
        dx, dy = _apply(L, None, seg_d)
        rad = (
            0.5 * (dx.square() + dy.square()).sqrt()
            + radius[:, None, None] * inst_sv[..., None]
            + 3 * (AA_SIGMA + blur)
            + 1
        )
        # each instance drawn at the coarsest level whose segments are at most
        # PIECE_PX long and leave out no more than LEVEL_DEV_PX of the curve
        px = inst_sv.amax(0)  # (n,) px per local unit
        level = torch.zeros(len(px), dtype=torch.long, device=px.device)
        for j, scale_ok in enumerate(fit):
            level = torch.where(px <= scale_ok, j, level)
        same = level[:, None] == torch.as_tensor(seg_level, device=px.device)
        near = (
            (keep & (a > 0))[..., None]
            & (cx + rad > 0)
            & (cx - rad < size)
            & (cy + rad > 0)
            & (cy - rad < size)
        ).any(0) & same  # (n, S)
        inst_i, seg_i = torch.nonzero(near, as_tuple=True)
        length = (dx.square() + dy.square()).sqrt()[:, inst_i, seg_i]  # (B, P)
        det = (L[..., 0, 0] * L[..., 1, 1] - L[..., 0, 1] * L[..., 1, 0]).abs()
        dlen = seg_d.norm(dim=-1)[:, seg_i]
        width = 2 * radius[:, None] * det[:, inst_i] * dlen / length.clamp(min=1e-9)
        along, across = _cuts(length.amax(0), width.amax(0))
    f = torch.float32
    L, t, a, radius, edge = L.to(f), t.to(f), a.to(f), radius.to(f), edge.to(f)
    seg_a, seg_d = seg_a.to(f), seg_d.to(f)
    if len(inst_i) == 0:
        z = torch.zeros(len(s), 0, dtype=f, device=s.device)
        return Splats(z, z, z, z, z, z)
    return _pair_splats(
        struct,
        values,
        chain,
        (along, across),
        radius,
        (L[:, inst_i], t[:, inst_i], a[:, inst_i], edge[:, inst_i]),
        (seg_a[:, seg_i], seg_d[:, seg_i]),
        blur,
    )


def _apply(
    L: torch.Tensor, t: torch.Tensor | None, q: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y (B, n, K) of L (B, n, 2, 2) · q (B, K, 2) + t (B, n, 2)."""
    qx, qy = q[:, None, :, 0], q[:, None, :, 1]
    x = L[..., 0, 0, None] * qx + L[..., 0, 1, None] * qy
    y = L[..., 1, 0, None] * qx + L[..., 1, 1, None] * qy
    if t is not None:
        x, y = x + t[..., 0, None], y + t[..., 1, None]
    return x, y


def _pair_splats(
    struct: Structure,
    values: dict[str, torch.Tensor],
    chain: int,
    cuts: tuple[torch.Tensor, torch.Tensor],
    radius: torch.Tensor,
    inst: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    seg: tuple[torch.Tensor, torch.Tensor],
    blur: float,
) -> Splats:
    """Splats of P (instance, segment) pairs: inst = (L (B, P, 2, 2), t (B, P, 2),
    opacity (B, P), the share of the band's edges drawn (B, P)), seg = (start, vector), each (B, P, 2) in local units; pair p
    cut into cuts[0][p] pieces along and its band into cuts[1][p] strips across.
    What a splat needs is worked out per pair, then gathered once per splat."""
    along, across = cuts
    L, t, a, edge = inst
    seg_a, seg_d = seg
    dt = L.dtype
    with torch.no_grad():  # each splat's pair and its place in it (K,)
        count = along * across
        pk = torch.repeat_interleave(torch.arange(len(count), device=L.device), count)
        first = torch.cumsum(count, 0) - count
        local = torch.arange(len(pk), device=L.device) - first[pk]
        n_along, n_across = along[pk], across[pk]
        fk = ((local // n_across).to(dt) + 0.5) / n_along.to(dt)
        uk = ((local % n_across).to(dt) + 0.5) / n_across.to(dt) * 2 - 1
    nrm = torch.stack([-seg_d[..., 1], seg_d[..., 0]], -1)
    nrm = nrm / (nrm.norm(dim=-1, keepdim=True) + 1e-12) * radius[:, None, None]

    def px(q: torch.Tensor) -> torch.Tensor:  # local vectors (B, P, 2) → px
        qx, qy = q[..., 0], q[..., 1]
        return torch.stack(
            [
                L[..., 0, 0] * qx + L[..., 0, 1] * qy,
                L[..., 1, 0] * qx + L[..., 1, 1] * qy,
            ],
            -1,
        )

    d_px, n_px = px(seg_d), px(nrm)
    a_px = px(seg_a) + t
    dx, dy = d_px[..., 0], d_px[..., 1]
    length = (dx.square() + dy.square() + 1e-12).sqrt()  # (B, P) px
    # the band's width in px across this segment: its area (|det L|·length·2r in
    # local units) over its length in px
    det = (L[..., 0, 0] * L[..., 1, 1] - L[..., 0, 1] * L[..., 1, 0]).abs()
    width = 2 * radius[:, None] * det * seg_d.norm(dim=-1) / length
    na, nc = along.to(dt), across.to(dt)
    weight = a * length * width / (na * nc)
    # each splat covers its piece (px vector (dx, dy) / along) and its strip (the
    # band's normal in px, width / across long): the variance of that box along x
    # and y (×3, so that neighbours merge without ripples), the anti-aliasing floor
    # and the blur
    sw = width / nc / length  # strip per px of piece, rotated by 90°
    floor = AA_SIGMA**2 + blur**2
    vx = ((dx / na).square() + (dy * sw).square()) / 4 + floor
    vy = ((dy / na).square() + (dx * sw).square()) / 4 + floor
    per_pair = torch.cat(
        [
            a_px,
            d_px,
            n_px,
            seg_a,
            seg_d,
            nrm,
            torch.stack([vx.sqrt(), vy.sqrt(), weight], -1),
        ],
        -1,
    )  # (B, P, 15)
    g = per_pair.index_select(1, pk)  # (B, K, 15)
    f, u = fk[:, None], uk[:, None]
    # a strip whose band has its middle clipped away keeps the share of it that
    # lies within `edge` of either side (|u| ≥ 1 − edge)
    inner = 1 - edge.index_select(1, pk)  # (B, K)
    half = 1 / across[pk].to(dt)
    lo, hi = uk - half, uk + half
    shown = (hi - torch.maximum(lo, inner)).clamp(min=0) + (
        torch.minimum(hi, -inner) - lo
    ).clamp(min=0)
    weight_k = g[..., 14] * (shown / (2 * half)).clamp(max=1.0)
    xy = g[..., 0:2] + f * g[..., 2:4] + u * g[..., 4:6]
    q = g[..., 6:8] + f * g[..., 8:10] + u * g[..., 10:12]
    gk = gradient_coord(values, q)  # (B, K)
    return Splats(xy[..., 0], xy[..., 1], g[..., 12], g[..., 13], weight_k, gk)
