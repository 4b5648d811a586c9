"""A differentiable twin of the bundled scene: params → picture in torch, with exact
gradients with respect to every continuous value (transforms, factors, steps, alpha,
colour, width, start angle, gradient).

The discrete choices of a scene (geometries, progressions, origin, repetitions, the
number of layers and which values each layer overrides) are fixed in a `Structure`;
the continuous values are (B,) tensors in the parameters' own units, so B variants of
one structure render as one batch. Outlines come from renderer/geometry.py and the
progression formulas from renderer/progressions.py, the very functions the skia
renderer draws with (they work on torch tensors too).

How a picture is made: each instance's outline is taken at the coarsest level of
detail whose chords stay ≤ PIECE_PX (2 px) long and ≤ 0.1 px off the curve, its
segments cut into pieces ≤ PIECE_PX long and its band into strips ≤ STRIP_PX wide;
each piece is a Gaussian splat centred on it, weighted by its area in pixels ×
the instance's opacity × its colour (below), with the variance along x and y
of the piece's box (×3, so that neighbours merge), an anti-aliasing floor and the
requested blur σ². Axis-aligned Gaussians are separable: a splat is the outer
product of a row and a column profile, each integrated over the pixel (erf) as
anti-aliasing does, added through a small pixel window (4 to 10 px by σ; all of a
picture's splats in one index_add, a canvas per chain) or, for wide ones, as one
matrix product (H × K)·(K × W). The chains add up in their colours and clip at 1,
as the renderer's additive blending does. Noise, dither and CRT are not drawn.

Colour, as the renderer's gradient shader holds it (`gradient_stops`): at
GRADIENT_STOPS even stops along the gradient, sRGB(tone_map(rgb × brightness)),
tone_map the three.js ACES filmic curve (renderer/progressions.py, shared), each
stop rounded to 8 bits; a splat takes the colour interpolated between the two stops
around it. ACES mixes the channels and has a toe and a shoulder, so a colour is not
its hue × a grey (bright light turns white, dim light keeps its hue). By default
each chain is splatted on a grey canvas, each splat weighted by its own colour's
channel mean (grey, and so √grey, what NCC compares, is exact up to the clip at 1);
a chain whose gradient one hue fits within HUE_TOL takes that hue (its
light-weighted mean colour over its mean grey: each channel's total light exact),
any other adds a second canvas, the chroma along the one direction in which its
colours vary most (exact for colours on one hue line, as ACES's from a hue towards
white nearly are; it matters where the picture clips). `exact_color` splats a
canvas per channel instead (every splat's own colour).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from art_explorer.scene import schema
from renderer import scene
from renderer.geometry import geometry_extent
from renderer.progressions import (
    alpha_progression,
    offset_progression,
    rotation_progression,
    scale_progression,
    tone_map,
)

# The continuous values the twin draws (others, e.g. noise, do not reach it).
SCENE_KEYS = (
    "alphaFactor",
    "scaleFactor",
    "rotationFactor",
    "stepFactor",
    "xStep",
    "yStep",
    "scale",
    "rotation",
    "position",
    "geoWidth",
    "gradientAngle",
    "color",
    "startAngle",
    "gradientRange",
)
PIECE_PX = 2.0  # outline pieces are at most this long (px)
STRIP_PX = 1.5  # ... and their bands cut into strips at most this wide (px)
MAX_SUBDIVIDE = 256  # ... cut into at most this many pieces per outline segment
MAX_ACROSS = 64  # a band is cut into at most this many strips across
MAX_SPLATS = 400_000  # per chain: coarser cuts beyond (huge instances get blurred)
AA_SIGMA = 0.25  # px: the splat's floor (skia's anti-aliasing is not a hard box)
# A chain is drawn on one grey canvas of one hue when that hue gives each of its
# gradient's colours within this (sRGB); else on two (`_grey_and_hue`). The scene's
# default near-white is 9 levels off, #7D99FF over 30. On 108 lit held-out draws NCC
# is the same with one canvas everywhere (a hue shows in grey only where a channel
# clips); a blown-out saturated colour needs the second (golden random-06: 0.74
# with one, 0.90 with two, the renderer 0.91).
HUE_TOL = 16 / 255


# ----------------------------------------------------------------------------------
# Structure and values


@dataclass(frozen=True)
class Structure:
    """The discrete choices of a scene, fixed while its continuous values move.

    params: the complete flat params it came from (for `params_of`).
    geometries: the outline of each chain (base first, then one per layer).
    layer_keys: per layer, the continuous keys it sets itself (the rest fall back to
        the base's value)."""

    params: dict[str, Any]
    geometries: tuple[str, ...]
    layer_keys: tuple[tuple[str, ...], ...]

    @property
    def repetitions(self) -> int:
        return int(self.params["repetitions"])


def _kind(key: str) -> str | None:
    p = schema.PARAM.get(key)
    return p.kind if p is not None else None


def _layer_kind(key: str) -> str | None:
    p = schema.LAYER_PARAM.get(key)
    return p.kind if p is not None else None


def _components(key: str, kind: str | None) -> tuple[str, ...]:
    """The scalar names of one value: 'x', 'position.x', 'color.r', ..."""
    if kind in ("int", "float"):
        return (key,)
    if kind == "vec2":
        return (f"{key}.x", f"{key}.y")
    if kind == "color":
        return (f"{key}.r", f"{key}.g", f"{key}.b")
    if kind == "pair":
        return (f"{key}.0", f"{key}.1")
    return ()


def _scalars(key: str, kind: str | None, v: Any) -> list[float]:
    if kind == "vec2":
        return [float(v["x"]), float(v["y"])]
    if kind == "color":
        return list(schema.color_to_rgb(v))
    if kind == "pair":
        return [float(v[0]), float(v[1])]
    return [float(v)]


def _value_kind(key: str, v: Any, layer: bool = False) -> str | None:
    kind = _layer_kind(key) if layer else _kind(key)
    if kind in ("int", "float", "vec2", "color", "pair"):
        return kind
    return None


def structure_of(params: dict[str, Any]) -> Structure:
    """The discrete choices of complete flat params."""
    geoms = [params["geometry"]] + [
        layer.get("geometry", params["geometry"]) for layer in params["layers"]
    ]
    keys = tuple(
        tuple(
            k
            for k in layer
            if k in SCENE_KEYS and _value_kind(k, layer[k], layer=True) is not None
        )
        for layer in params["layers"]
    )
    return Structure(dict(params), tuple(geoms), keys)


def value_names(struct: Structure) -> list[str]:
    """Every continuous scalar of the structure: 'scaleFactor', 'position.x',
    'color.r', 'layers.0.scale.x', ..."""
    names: list[str] = []
    p = struct.params
    for k in SCENE_KEYS:
        if k in p:
            names += _components(k, _value_kind(k, p[k]))
    for j, layer in enumerate(p["layers"]):
        for k in struct.layer_keys[j]:
            kind = _value_kind(k, layer[k], layer=True)
            names += [f"layers.{j}.{c}" for c in _components(k, kind)]
    return names


def values_of(
    params_list: list[dict[str, Any]],
    struct: Structure,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """The continuous values of params sharing `struct`, each a float64 (B,) tensor."""
    cols: dict[str, list[float]] = {n: [] for n in value_names(struct)}
    for params in params_list:
        row: dict[str, float] = {}
        for k in SCENE_KEYS:
            if k in params:
                kind = _value_kind(k, params[k])
                row.update(
                    zip(
                        _components(k, kind),
                        _scalars(k, kind, params[k]),
                        strict=True,
                    )
                )
        for j, layer in enumerate(params["layers"]):
            for k in struct.layer_keys[j]:
                kind = _value_kind(k, layer[k], layer=True)
                for c, x in zip(
                    _components(k, kind), _scalars(k, kind, layer[k]), strict=True
                ):
                    row[f"layers.{j}.{c}"] = x
        for n in cols:
            cols[n].append(row[n])
    return {
        n: torch.tensor(c, dtype=torch.float64, device=device) for n, c in cols.items()
    }


def params_of(
    struct: Structure, values: dict[str, torch.Tensor], b: int = 0
) -> dict[str, Any]:
    """Complete flat params of batch item b (colours clipped to [0, 1])."""
    out = {**struct.params, "layers": [dict(x) for x in struct.params["layers"]]}

    def put(dst: dict[str, Any], key: str, prefix: str, layer: bool) -> None:
        kind = _value_kind(key, dst[key], layer)
        xs = [float(values[prefix + c][b]) for c in _components(key, kind)]
        if kind == "vec2":
            dst[key] = {"x": xs[0], "y": xs[1]}
        elif kind == "color":
            dst[key] = schema.rgb_to_color(xs)
        elif kind == "pair":
            dst[key] = xs
        else:
            dst[key] = xs[0]

    for k in SCENE_KEYS:
        if k in out:
            put(out, k, "", False)
    for j, layer in enumerate(out["layers"]):
        for k in struct.layer_keys[j]:
            put(layer, k, f"layers.{j}.", True)
    return out


def _get(
    values: dict[str, torch.Tensor], struct: Structure, chain: int, name: str
) -> torch.Tensor:
    """Value `name` (a scalar name such as 'scaleFactor' or 'color.r') of chain
    `chain` (0 = base): the layer's own when it sets it, else the base's."""
    if chain > 0:
        key = name.split(".")[0]
        if key in struct.layer_keys[chain - 1]:
            return values[f"layers.{chain - 1}.{name}"]
    return values[name]


# ----------------------------------------------------------------------------------
# Drawing


def _affine(
    tx: torch.Tensor, ty: torch.Tensor, rot: torch.Tensor, sx: Any, sy: Any
) -> torch.Tensor:
    """(B, 3, 3): T(tx, ty) · R(rot radians) · S(sx, sy), as scene._affine."""
    c, s = rot.cos(), rot.sin()
    z, o = torch.zeros_like(c), torch.ones_like(c)
    sx = sx + z
    sy = sy + z
    rows = [
        torch.stack([c * sx, -s * sy, tx + z], -1),
        torch.stack([s * sx, c * sy, ty + z], -1),
        torch.stack([z, z, o], -1),
    ]
    return torch.stack(rows, -2)


def chain_matrix(
    struct: Structure, values: dict[str, torch.Tensor], chain: int, size: int
) -> torch.Tensor:
    """(B, 3, 3): the chain's group units → pixels (view · scene · group), as
    scene.chain_instances: Scene = R(rotation)·S(scale); the base's group is
    T(Scene.position), a layer's T(position)·R(rotation)·S(scale.x, scale.y)."""
    v = values
    z = torch.zeros_like(v["scale"])
    view = torch.tensor(scene.view_matrix(size), dtype=z.dtype, device=z.device)
    m = view @ _affine(z, z, v["rotation"], v["scale"], v["scale"])
    if chain == 0:
        return m @ _affine(v["position.x"], v["position.y"], z, 1.0, 1.0)
    g = f"layers.{chain - 1}."
    group = _affine(
        v[g + "position.x"],
        v[g + "position.y"],
        v[g + "rotation"],
        v[g + "scale.x"],
        v[g + "scale.y"],
    )
    return m @ group


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


@functools.cache
def _outline(name: str) -> np.ndarray:
    """The outline as a polyline (M + 1, 2) in local units (what skia strokes)."""
    from renderer import geometry

    if hasattr(geometry, "outline_points"):
        return np.asarray(geometry.outline_points(name), np.float64)
    import skia  # an older renderer: flatten its skia path

    measure = skia.PathMeasure(geometry.geometry_path(name), False)
    pts: list[tuple[float, float]] = []
    while True:
        n = measure.getLength()
        for d in np.linspace(0.0, n, 257):
            q = measure.getPosTan(float(d))[0]
            pts.append((q.x(), q.y()))
        if not measure.nextContour():
            break
    return np.array(pts, np.float64)


LEVELS = (1, 2, 4, 8, 16)  # an outline's points kept: every m-th
LEVEL_DEV_PX = 0.1  # px: how far a level's chords may leave the curve


@functools.cache
def _levels(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """The outline at every level of detail (every m-th point of LEVELS, the ends
    kept): segment starts and vectors (S, 2) of all levels one after the other,
    each segment's level (S,), and per level the largest px per local unit at
    which it is fine (its segments at most PIECE_PX long and its chords at most
    LEVEL_DEV_PX off the points they skip; level 0 always)."""
    pts = _outline(name)
    m_seg = len(pts) - 1
    starts, vectors, level, fit = [], [], [], []
    for j, m in enumerate(LEVELS):
        if j > 0 and m >= m_seg:
            break
        idx = [*range(0, m_seg, m), m_seg]
        a, b = pts[idx[:-1]], pts[idx[1:]]
        d = b - a
        longest = float(np.linalg.norm(d, axis=1).max())
        dev = 0.0
        for i0, i1 in itertools.pairwise(idx):
            q = pts[i0 : i1 + 1] - pts[i0]
            v = pts[i1] - pts[i0]
            n = np.hypot(*v)
            if n > 0:
                dev = max(dev, float(np.abs(q[:, 0] * v[1] - q[:, 1] * v[0]).max() / n))
        starts.append(a)
        vectors.append(d)
        level += [j] * len(a)
        fit.append(
            math.inf
            if j == 0
            else min(PIECE_PX / max(longest, 1e-12), LEVEL_DEV_PX / max(dev, 1e-12))
        )
    return np.concatenate(starts), np.concatenate(vectors), np.array(level), fit


def stroke_radius(
    struct: Structure, values: dict[str, torch.Tensor], chain: int
) -> torch.Tensor:
    """(B,) half the drawn band's width in element-local units."""
    return _get(values, struct, chain, "geoWidth") * getattr(
        scene, "STROKE_RADIUS_PER_WIDTH", 1.0
    )


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


def chain_splats(
    struct: Structure,
    values: dict[str, torch.Tensor],
    chain: int,
    size: int,
    blur: float = 0.0,
) -> Splats:
    """Every outline segment of chain `chain` that reaches the picture, as splats
    at size² px (see the module doc)."""
    p = struct.params
    n = struct.repetitions
    geom = struct.geometries[chain]

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
    m = chain_matrix(struct, values, chain, size)  # (B, 3, 3) group → px
    lin = m[:, :2, :2]
    ppu = size / (2 * scene.VIEW_HALF)
    radius = stroke_radius(struct, values, chain)  # (B,) local units
    # instances the renderer skips: not finite, or a world extent out of bounds
    with torch.no_grad():
        sv = torch.linalg.svdvals(lin)  # (B, 2) px per group unit
        ext = s.abs() * geometry_extent(geom).r_max * sv[:, :1] / ppu  # world units
        keep = (
            torch.isfinite(s)
            & torch.isfinite(off).all(-1)
            & (ext >= scene.MIN_EXTENT)
            & (ext <= scene.MAX_EXTENT)
            & (sv[:, 1:] >= 1e-9 * ppu)
        )
    s = torch.where(keep, s, torch.zeros_like(s))
    off = torch.where(keep[..., None], off, torch.zeros_like(off))
    a = torch.where(keep, a, torch.zeros_like(a))
    c, sn = r.cos() * s, r.sin() * s
    inst = torch.stack([torch.stack([c, -sn], -1), torch.stack([sn, c], -1)], -2)
    L = lin[:, None] @ inst  # (B, n, 2, 2) local → px, linear part
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
            + radius[:, None, None] * sv[:, :1, None] * s.abs()[..., None]
            + 3 * (AA_SIGMA + blur)
            + 1
        )
        # each instance drawn at the coarsest level whose segments are at most
        # PIECE_PX long and leave out no more than LEVEL_DEV_PX of the curve
        px = (s.abs() * sv[:, :1]).amax(0)  # (n,) px per local unit
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
    L, t, a, radius = L.to(f), t.to(f), a.to(f), radius.to(f)
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
        (L[:, inst_i], t[:, inst_i], a[:, inst_i]),
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
    inst: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    seg: tuple[torch.Tensor, torch.Tensor],
    blur: float,
) -> Splats:
    """Splats of P (instance, segment) pairs: inst = (L (B, P, 2, 2), t (B, P, 2),
    opacity (B, P)), seg = (start, vector), each (B, P, 2) in local units; pair p
    cut into cuts[0][p] pieces along and its band into cuts[1][p] strips across.
    What a splat needs is worked out per pair, then gathered once per splat."""
    along, across = cuts
    L, t, a = inst
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
    xy = g[..., 0:2] + f * g[..., 2:4] + u * g[..., 4:6]
    q = g[..., 6:8] + f * g[..., 8:10] + u * g[..., 10:12]
    gk = gradient_coord(values, q)  # (B, K)
    return Splats(xy[..., 0], xy[..., 1], g[..., 12], g[..., 13], g[..., 14], gk)


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
refused = 0  # pictures refused as TooBig in this process (bench/inverse.py reports it)


class TooBig(RuntimeError):
    """A picture's splats would take more than MAX_BYTES to draw."""


# Splat windows (px) by σ: a window of n px holds ±2.25σ for σ ≤ (n − 1) / 4.5 (±2.5σ
# measured the same on 200 draws, 20% more window entries).
WINDOWS = (4, 5, 6, 10)


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] → linear (as scene.srgb_to_linear)."""
    hi = ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(c <= 0.04045, c / 12.92, hi)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """Linear values → sRGB-encoded, clipped to [0, 1] (as scene.linear_to_srgb)."""
    c = c.clamp(0.0, 1.0)
    hi = 1.055 * c.clamp(min=0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(c <= 0.0031308, c * 12.92, hi)


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
        global refused
        refused += 1
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


def speaks_bundled_schema(url: str, timeout: float = 5.0) -> bool:
    """Whether the renderer at `url` (its /api/raster) draws the bundled scene: its
    GET /api/schema hashes to schema.schema_hash(). Then the twin's gradients are
    its pictures' gradients; otherwise predict descends through the forward model."""
    import hashlib
    import json
    from urllib.parse import urlparse

    import requests

    try:
        r = requests.get(
            urlparse(url)._replace(path="/api/schema", query="").geturl(),
            timeout=timeout,
        )
        served = r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return False
    if not isinstance(served, dict):
        return False
    h = hashlib.sha256(json.dumps(served, sort_keys=True).encode()).hexdigest()[:16]
    return h == schema.schema_hash()


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


@functools.cache
def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n): a Gaussian blur of σ px along one axis, reflect padding (as
    metrics.gaussian_blur), as a matrix."""
    r = max(1, math.ceil(3 * sigma))
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    m = np.zeros((n, n))
    for i in range(n):
        for j, w in zip(range(i - r, i + r + 1), k, strict=True):
            j = -j if j < 0 else (2 * (n - 1) - j if j >= n else j)
            m[i, min(max(j, 0), n - 1)] += w
    return torch.tensor(m, dtype=torch.float32)


def ncc_features(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, 3, R, R) → (B, R·R): √grey blurred by σ px, zero mean, unit norm (what
    metrics.ncc correlates)."""
    g = images.mean(1).clamp(0, 1)
    g = (g + 1e-6).sqrt()
    if sigma > 0:
        m = _blur_matrix(g.shape[-1], float(sigma)).to(g)
        g = m @ g @ m.T
    g = g.flatten(1)
    g = g - g.mean(1, keepdim=True)
    return g / (g.norm(dim=1, keepdim=True) + 1e-8)


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
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
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
    none beats it) and that loss (B,)."""
    import time

    t_start = time.perf_counter()
    names = list(start)
    spans = torch.tensor([value_span(n) for n in names], dtype=torch.float64)
    u = torch.stack(
        [start[n] / s for n, s in zip(names, spans.tolist(), strict=True)], -1
    )
    u = u.clone().requires_grad_(True)  # (B, V) values in units of their span
    lo = [value_bounds(n)[0] for n in names]
    hi = [value_bounds(n)[1] for n in names]
    lo_t = torch.tensor(
        [-math.inf if x is None else x for x in lo], dtype=torch.float64
    )
    hi_t = torch.tensor([math.inf if x is None else x for x in hi], dtype=torch.float64)

    def values_at(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: x[:, j] * spans[j] for j, n in enumerate(names)}

    if target is not None:
        from art_explorer.scene.tensors import to_tensor

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

    else:
        sched = schedule or COARSE_TO_FINE

        def stage_loss(stage: int) -> tuple[Any, float]:
            return loss_fn, sched[stage][1]

        def stage_lr(stage: int, k: int, n: int) -> float:
            return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / n)))

    adam = _Adam(u)
    moving = torch.tensor(
        [0.0 if keep_colors and ".color." in f".{n}" else 1.0 for n in names],
        dtype=torch.float64,
    )
    last_fn, last_blur = stage_loss(len(sched) - 1)
    best_u = u.detach().clone()  # the start stays unless a step beats it
    with torch.no_grad():
        best = last_fn(render(struct, start, sched[-1][0], last_blur)).double()
    spent = time.perf_counter() - t_start
    step_s = 0.0  # one step's time, once there is one
    loss = best
    for stage, (size, _, share) in enumerate(sched):
        last = stage == len(sched) - 1
        fn, blur = stage_loss(stage)
        n_steps = max(1, round(steps * share))
        t_end = (
            t_start
            + spent
            + (seconds - spent) * share / sum(x[2] for x in sched[stage:])
        )
        stage_best, since = math.inf, 0
        for k in range(n_steps):
            now = time.perf_counter()
            # with a target: no step that might end past the stage's time (the
            # whole descent stays within `seconds`)
            ahead = 2 * step_s if target is not None else 0.0
            if now + ahead > t_end and not (last and k == 0 and target is None):
                break
            u.grad = None
            try:
                loss = fn(render(struct, values_at(u), size, blur))
            except TooBig as e:
                if log is not None:
                    log(f"    twin: stage stopped: {e}")
                break
            if last:
                with torch.no_grad():
                    better = loss.detach().double() < best
                    best = torch.where(better, loss.detach().double(), best)
                    best_u[better] = u.detach()[better]
            if not loss.requires_grad:
                break  # nothing drawn that the values move
            total = float(loss.detach().sum())
            if target is not None:  # the stage is done once its loss stops falling
                if total < stage_best - 1e-4 * len(loss):
                    stage_best, since = total, 0
                else:
                    since += 1
                    if since >= 12:
                        break
            loss.sum().backward()
            if u.grad is not None and keep_colors:
                u.grad.mul_(moving)
            adam.step(stage_lr(stage, k, n_steps))
            with torch.no_grad():
                u.copy_(torch.maximum(torch.minimum(u * spans, hi_t), lo_t) / spans)
            step_s = time.perf_counter() - now
        spent = time.perf_counter() - t_start
        if log is not None:
            log(
                f"    twin {size}² stage {stage}: loss {float(loss.detach().min()):.4f}, "
                f"{k + 1} steps, {spent:.1f} s"
            )
    return values_at(best_u), best
