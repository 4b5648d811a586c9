"""The scene: complete flat params → an RGB image (docs/scene.md).

One element (an outline drawn as a band 2·geoWidth wide) is drawn `repetitions`
times per chain: once for the base and once more for each layer (group). Instance i
of a chain gets a scale s_i, a rotation r_i (counter-clockwise with +y up), an offset
p_i (inside the chain's group) and an opacity a_i from the progression rules
(progressions.py). All instances add up (additive blending) on black; then the
post-passes run (postfx.py).

Transform of instance i, from element-local to world coordinates:

    Scene  = R(Scene.rotation) · S(Scene.scale)
    Group  = T(Scene.position)                          for the base chain
             T(layer.position) · R(layer.rotation) · S(layer.scale.x, layer.scale.y)
                                                        for a layer (−scale mirrors)
    Inst_i = T(p_i) · R(r_i) · S(s_i)
    W_i    = Scene · Group · Inst_i
    world  = compose(decompose(W_i)) · local

As in the original (drei's <Instances>), W_i is decomposed into a position, a
quaternion and a scale and composed back (renderer/instancing.py): a non-uniform layer
scale followed by the instance's own rotation loses its shear. An instance so large
that its tube's crest passes the camera's clip planes draws only the two edge strips
of its band (`instancing.visible_edge`).

Colour of a chain: the base colour times the chain's own (a layer's colour, else the
base's), both linear, times the gradient's brightness, tone-mapped (ACES filmic, as
three.js does per fragment: `progressions.tone_map`), then sRGB-encoded; each
instance adds that × a_i (the original blends sRGB values additively).

The camera is orthographic: world x and y in [-VIEW_HALF, VIEW_HALF] fill the
picture, +y up.
Drawing uses skia with real anti-aliasing on a float (RGBA F32) surface with
`BlendMode.kPlus`, so many faint instances sum without 8-bit rounding.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import skia
from PIL import Image

from art_explorer.scene.schema import color_to_rgb
from art_explorer.scene.view import VIEW_HALF, linear_to_srgb, srgb_to_linear
from renderer.geometry import (
    edge_path,
    geometry_bounds,
    geometry_extent,
    geometry_path,
)
from renderer.instancing import compose_decomposed, visible_edge
from renderer.png import encode_png
from renderer.postfx import apply_crt, apply_dither, apply_noise
from renderer.progressions import gradient_brightness, instance_transforms, tone_map

STROKE_RADIUS_PER_WIDTH = 1.0  # band half-width = geoWidth element-local units
# Instances whose world extent (radius) falls outside these bounds are skipped: the
# tiny ones cannot light a pixel, the huge ones (sf^499) would only blow up.
MIN_EXTENT = 1e-4
MAX_EXTENT = 1e4
# Level of detail: a scene whose estimated drawing time (`draw_cost`) exceeds the
# budget is drawn smaller, down to MIN_LOD_SCALE of the size, and scaled up.
DRAW_BUDGET_US = 300_000.0
MIN_LOD_SCALE = 0.25
EXACT_MERGE_PX = 0.1  # repeated instances closer than this are drawn once
LOOSE_MERGE_PX = 1.0  # ... and closer than this when over the budget
MAX_REPEATS = 3  # a merged run with opacity > MAX_REPEATS is drawn via a layer
LAYER_COST_US = 300.0  # estimated fixed cost of such a layer
DRAW_FIXED_US = 60.0  # estimated fixed cost of one draw (see draw_cost)
DRAW_PER_PX_US = 0.2  # ... and per pixel of outline inside the picture
# ... and per pixel the band covers (its fill): a straight band costs three times a
# curved one per pixel (fitted on bands that fill the picture, see draw_cost)
DRAW_PER_AREA_US = {"bar": 0.0035, "line": 0.0035}
DRAW_PER_AREA_US_CURVED = 0.0012
# How many picture sizes of an outline can lie inside the picture at most, however
# large it is drawn: a convex piece within the square is shorter than its perimeter
# (4 sizes); a segment shorter than its diagonal.
VISIBLE_SHEETS = {
    "ring": 4.0,
    "bar": 1.5,
    "line": 1.5,
    "arch": 4.0,
    "u": 4.0,
    "spiral": 12.0,
    "wave": 4.0,
    "infinity": 8.0,
    "square": 4.0,
    "roundedRect": 4.0,
}
SURFACE_COLOR_TYPE = skia.kRGBA_F32_ColorType
GRADIENT_STOPS = 33  # linear-gradient stops approximating the smoothstep falloff


# ----------------------------------------------------------------------------------
# Chains: the base and each layer


def chain_color(base: str, own: str) -> tuple[float, float, float]:
    """A chain's linear colour: the base colour × its own, both linear."""
    b = srgb_to_linear(np.array(color_to_rgb(base)))
    o = srgb_to_linear(np.array(color_to_rgb(own)))
    rgb = b * o
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


@dataclass(frozen=True)
class Chain:
    """One drawn chain: the base (group = T(Scene.position)) or a layer.

    group: 3×3 affine, group-local → scene-local (T · R · S(x, y)).
    rgb: linear colour (`chain_color`)."""

    geometry: str
    rgb: tuple[float, float, float]
    start_angle: float
    geo_width: float
    step_factor: float
    alpha_factor: float
    scale_factor: float
    rotation_factor: float
    group: np.ndarray


def _affine(tx: float, ty: float, rot: float, sx: float, sy: float) -> np.ndarray:
    """T(tx, ty) · R(rot radians, counter-clockwise) · S(sx, sy) as a 3×3 matrix."""
    c, s = math.cos(rot), math.sin(rot)
    return np.array(
        [[c * sx, -s * sy, tx], [s * sx, c * sy, ty], [0, 0, 1]], np.float64
    )


def chains(params: dict[str, Any]) -> list[Chain]:
    """The base chain and one chain per layer, with the layers' overrides applied
    (an override a layer does not set falls back to the base's value)."""

    def chain(src: dict[str, Any], group: np.ndarray) -> Chain:
        def get(key: str) -> Any:
            return src.get(key, params[key])

        return Chain(
            geometry=get("geometry"),
            rgb=chain_color(params["color"], get("color")),
            start_angle=float(get("startAngle")),
            geo_width=float(get("geoWidth")),
            step_factor=float(get("stepFactor")),
            alpha_factor=float(get("alphaFactor")),
            scale_factor=float(get("scaleFactor")),
            rotation_factor=float(get("rotationFactor")),
            group=group,
        )

    pos = params["position"]
    out = [chain({}, _affine(pos["x"], pos["y"], 0.0, 1.0, 1.0))]
    for layer in params["layers"]:
        pos, sc = layer["position"], layer["scale"]
        group = _affine(pos["x"], pos["y"], layer["rotation"], sc["x"], sc["y"])
        out.append(chain(layer, group))
    return out


def view_matrix(size: int) -> np.ndarray:
    """World → pixel: x, y in [-2.5, 2.5] (+y up) → [0, size] (row 0 at the top)."""
    k = size / (2 * VIEW_HALF)
    return np.array([[k, 0, size / 2], [0, -k, size / 2], [0, 0, 1]], np.float64)


def scene_matrix(params: dict[str, Any]) -> np.ndarray:
    """The outer transform of every chain: Scene.rotation (radians), Scene.scale.
    (Scene.position moves the base chain only: its group, `chains`.)"""
    s = params["scale"]
    return _affine(0.0, 0.0, params["rotation"], s, s)


@dataclass
class Instances:
    """The visible instances of one chain, in drawing order (n of them).

    matrices: (n, 6) skia affine (scaleX, skewX, transX, skewY, scaleY, transY),
        element-local → pixel. alpha: (n,) opacity a_i. cost: (n,) estimated
        drawing time in µs beyond the fixed cost of a draw (`draw_cost`).
    boxes: (n, 4) pixel bounds (left, top, right, bottom) of the stroked outline.
    reach: the outline's farthest point from the element's origin, in local units
        (for `merge_runs`).
    edge: (n,) how wide each edge strip of the band is drawn, local units (the
        band's half-width when all of it is: `instancing.visible_edge`)."""

    matrices: np.ndarray
    alpha: np.ndarray
    cost: np.ndarray
    boxes: np.ndarray
    reach: float
    edge: np.ndarray

    @staticmethod
    def empty() -> Instances:
        z = np.zeros((0, 6))
        return Instances(
            z, np.zeros(0), np.zeros(0), np.zeros((0, 4)), 0.0, np.zeros(0)
        )


def draw_cost(
    geometry: str, length_px: np.ndarray, width_px: np.ndarray, size: int
) -> np.ndarray:
    """Estimated skia time in µs to draw outlines of these pixel lengths and band
    widths, beyond the fixed DRAW_FIXED_US per draw: DRAW_PER_PX_US per pixel of
    outline inside the picture, where at most `VISIBLE_SHEETS[geometry]` picture
    sizes of it can be (the rest is clipped away), plus DRAW_PER_AREA_US per pixel
    of band, at most the whole picture per outline: bands grown wider than the
    picture (geoWidth 0.1 at scale 500) cost their fill, not their length. Fitted
    (r = 0.95) on 190 scenes, typical and dense, and the area term on 20 scenes of
    bands that fill the picture (12 chains of 500 of each geometry, additive: 0.3–1.3
    CPU-s at 1024² drawn in full), on this project's 2-core dev machine; only the
    ratio to DRAW_BUDGET_US matters."""
    length = np.minimum(length_px, VISIBLE_SHEETS[geometry] * size)
    area = np.minimum(length * width_px, float(size) * size)
    fill = DRAW_PER_AREA_US.get(geometry, DRAW_PER_AREA_US_CURVED)
    return DRAW_PER_PX_US * length + fill * area


def chain_instances(params: dict[str, Any], chain: Chain, size: int) -> Instances:
    """Progressions of one chain → pixel matrices of the instances worth drawing.

    Skips instances whose matrix is not finite, whose world extent is outside
    [MIN_EXTENT, MAX_EXTENT], whose stroked bounds miss the picture, or whose
    outline passes wholly outside it (a huge ring around the view)."""
    s, r, p, a = instance_transforms(
        int(params["repetitions"]),
        params["scaleProgression"],
        params["rotationProgression"],
        params["alphaProgression"],
        params["positionProgression"],
        chain.scale_factor,
        chain.rotation_factor,
        chain.alpha_factor,
        chain.step_factor,
        params["xStep"],
        params["yStep"],
        params["positionCoupled"],
        params["origin"],
    )
    m = view_matrix(size) @ scene_matrix(params) @ chain.group  # (3, 3) group → pixel
    g = scene_matrix(params)[:2, :2] @ chain.group[:2, :2]  # group → world, linear part
    if np.linalg.svd(g, compute_uv=False)[1] < 1e-9:
        # a zero layer (or scene) scale: three.js inverts the chain's singular world
        # matrix to the zero matrix, and the chain draws nothing
        return Instances.empty()
    ppu = size / (2 * VIEW_HALF)  # pixels per world unit
    ext = geometry_extent(chain.geometry)
    stroke = chain.geo_width * STROKE_RADIUS_PER_WIDTH  # local units
    with np.errstate(over="ignore", invalid="ignore"):
        # world linear part g · s_i·R(r_i) per instance, then as three.js draws it
        cs, sn = s * np.cos(r), s * np.sin(r)
        wa, wb, wc, wd, wz = compose_decomposed(
            g[0, 0] * cs + g[0, 1] * sn,
            -g[0, 0] * sn + g[0, 1] * cs,
            g[1, 0] * cs + g[1, 1] * sn,
            -g[1, 0] * sn + g[1, 1] * cs,
            float(params["scale"]) * s,
        )
        smax, smin = singular_values(wa, wb, wc, wd)  # world units per local unit
        sx, kx, ky, sy = ppu * wa, ppu * wb, -ppu * wc, -ppu * wd  # view: +y up
        tx = m[0, 0] * p[:, 0] + m[0, 1] * p[:, 1] + m[0, 2]
        ty = m[1, 0] * p[:, 0] + m[1, 1] * p[:, 1] + m[1, 2]
        mats = np.stack([sx, kx, tx, ky, sy, ty], axis=1)
        extent = ext.r_max * smax  # world units
        keep = (
            np.isfinite(mats).all(axis=1)
            & (extent >= MIN_EXTENT)
            & (extent <= MAX_EXTENT)
        )
        # stroked local bounds → pixel bounding box; keep what touches the picture
        x0, y0, x1, y1 = geometry_bounds(chain.geometry, chain.start_angle)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        hx, hy = (x1 - x0) / 2 + stroke, (y1 - y0) / 2 + stroke
        px_c = sx * cx + kx * cy + tx
        py_c = ky * cx + sy * cy + ty
        ex = np.abs(sx) * hx + np.abs(kx) * hy + 1  # +1 px for anti-aliasing
        ey = np.abs(ky) * hx + np.abs(sy) * hy + 1
        keep &= (
            (px_c + ex >= 0)
            & (px_c - ex <= size)
            & (py_c + ey >= 0)
            & (py_c - ey <= size)
        )
        # an outline whose nearest point lies beyond the farthest picture corner
        inner = ppu * (ext.r_min * smin - stroke * smax) - 1
        far = np.hypot(np.maximum(tx, size - tx), np.maximum(ty, size - ty))
        keep &= ~(inner > far)
        length_px = smax[keep] * ext.length * ppu
        width_px = 2 * stroke * smin[keep] * ppu  # the band's narrowest
        boxes = np.stack([px_c - ex, py_c - ey, px_c + ex, py_c + ey], axis=1)[keep]
        edge = visible_edge(wz[keep], s[keep], stroke)
    cost = draw_cost(chain.geometry, length_px, width_px, size)
    return Instances(mats[keep], a[keep], cost, boxes, ext.r_max + stroke, edge)


def singular_values(a: Any, b: Any, c: Any, d: Any) -> tuple[Any, Any]:
    """Largest and smallest singular values of [[a, b], [c, d]], elementwise."""
    f = a * a + b * b + c * c + d * d
    det = np.abs(a * d - b * c)
    smax = np.sqrt((f + np.sqrt(np.maximum(f * f - 4 * det * det, 0.0))) / 2)
    return smax, det / np.where(smax > 0, smax, 1.0)


def merge_runs(inst: Instances, tolerance: float) -> list[tuple[int, int]]:
    """Split the instances into runs [start, end) of consecutive ones that differ
    from the run's first by less than `tolerance` pixels anywhere on the outline
    (|ΔA|·reach + |Δt|): repeats (scaleFactor 1, rotationFactor 0, no step) that can
    be drawn once with their summed opacity."""
    m = inst.matrices
    n = len(m)
    lin = m[:, [0, 1, 3, 4]]
    step = np.sqrt(((lin[1:] - lin[:-1]) ** 2).sum(axis=1)) * inst.reach + np.hypot(
        m[1:, 2] - m[:-1, 2], m[1:, 5] - m[:-1, 5]
    )
    if not (step < tolerance).any():
        return [(i, i + 1) for i in range(n)]  # the usual case: nothing repeats
    rows = m.tolist()
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, n + 1):
        if i < n:
            a, b = rows[i], rows[start]
            d_lin = math.sqrt(sum((a[k] - b[k]) ** 2 for k in (0, 1, 3, 4)))
            if d_lin * inst.reach + math.hypot(a[2] - b[2], a[5] - b[5]) < tolerance:
                continue
        runs.append((start, i))
        start = i
    return runs


@dataclass
class Draw:
    """One draw of an outline: pixel matrix (6,), paint alpha, how many times
    (repeats of a merged run), and for a run whose summed opacity is large a pixel
    box to draw it in an opaque-black layer scaled up by `alpha` (> 1); `edge`:
    the width of the band's two edge strips when the clip planes cut its middle
    away (None: the whole band)."""

    matrix: list[float]
    alpha: float
    repeats: int = 1
    layer_box: list[float] | None = None
    edge: float | None = None


def plan_draws(
    params: dict[str, Any], size: int, tolerance: float
) -> tuple[list[tuple[Chain, list[Draw]]], float, float]:
    """The draws of every visible chain, with runs of repeated instances merged
    (`merge_runs`), and their estimated time in µs: (plan, fixed part, part that
    scales with the drawing size)."""
    plan: list[tuple[Chain, list[Draw]]] = []
    fixed = scaled = 0.0
    for chain in chains(params):
        if max(chain.rgb) <= 0.0:
            continue  # adds nothing
        inst = chain_instances(params, chain, size)
        mats, alpha, cost, boxes = (
            inst.matrices.tolist(),
            inst.alpha.tolist(),
            inst.cost.tolist(),
            inst.boxes.tolist(),
        )
        stroke = chain.geo_width * STROKE_RADIUS_PER_WIDTH
        edges = [None if e >= stroke else e for e in inst.edge.tolist()]
        draws: list[Draw] = []
        for start, end in merge_runs(inst, tolerance):
            k = (start + end - 1) // 2
            total_alpha = math.fsum(alpha[start:end])
            repeats = math.ceil(total_alpha - 1e-9)
            if repeats <= 1:
                draws.append(Draw(mats[k], total_alpha, edge=edges[k]))
            elif repeats <= MAX_REPEATS:
                draws.append(
                    Draw(mats[k], total_alpha / repeats, repeats, edge=edges[k])
                )
            else:
                box = [min(max(v, 0.0), float(size)) for v in boxes[k]]
                draws.append(Draw(mats[k], total_alpha, 1, box, edges[k]))
                fixed += LAYER_COST_US
                scaled += DRAW_PER_PX_US * (box[2] - box[0] + box[3] - box[1])
            fixed += draws[-1].repeats * DRAW_FIXED_US
            scaled += draws[-1].repeats * cost[k]
        plan.append((chain, draws))
    return plan, fixed, scaled


GRADIENT_REACH = 1.1  # local |g| covered by the stops (outline 0.9 + band 0.1)


@functools.lru_cache(maxsize=64)
def gradient_shader(
    rgb: tuple[float, float, float], angle: float, lo: float, hi: float
) -> skia.Shader:
    """Opaque linear-gradient shader in element-local units: sRGB(tone_map(rgb ×
    brightness(g))) for g = q·(sin θ, cos θ), θ = gradientAngle, (lo, hi) =
    gradientRange, sampled at GRADIENT_STOPS stops over g in [-GRADIENT_REACH,
    GRADIENT_REACH] (clamped beyond; outlines reach |g| ≤ 1)."""
    g = np.linspace(-GRADIENT_REACH, GRADIENT_REACH, GRADIENT_STOPS)
    lit = np.outer(gradient_brightness(g, (lo, hi)), np.array(rgb))
    cols = linear_to_srgb(tone_map(lit))
    colors = [
        skia.Color4f(float(r), float(gr), float(b), 1.0).toColor()
        for r, gr, b in cols.tolist()
    ]
    d = (math.sin(angle) * GRADIENT_REACH, math.cos(angle) * GRADIENT_REACH)
    return skia.GradientShader.MakeLinear(
        [skia.Point(-d[0], -d[1]), skia.Point(d[0], d[1])],
        colors,
        [float(v) for v in (g + GRADIENT_REACH) / (2 * GRADIENT_REACH)],
    )


def lod_size(fixed_us: float, scaled_us: float, size: int) -> int:
    """The size to draw at: `size`, or smaller (not below MIN_LOD_SCALE) when the
    estimated drawing time exceeds DRAW_BUDGET_US; the drawing is then scaled up.
    This bounds the time of extreme scenes (thousands of outlines across the whole
    picture, which are mostly saturated anyway); typical scenes never reach it."""
    if fixed_us + scaled_us <= DRAW_BUDGET_US:
        return size
    scale = (DRAW_BUDGET_US - fixed_us) / scaled_us
    return max(32, math.ceil(size * min(1.0, max(MIN_LOD_SCALE, scale))))


def _surface(size: int) -> skia.Surface:
    """A fresh RGBA F32 surface, transparent black: skia allocates raster pixels
    zeroed (calloc; tests/test_renderer.py checks it), which saves a 5 ms clear at
    1024². The RGB sums are the picture; the alpha channel is never used."""
    info = skia.ImageInfo.Make(size, size, SURFACE_COLOR_TYPE, skia.kPremul_AlphaType)
    return skia.Surface.MakeRaster(info)


def draw(params: dict[str, Any], size: int) -> skia.Surface:
    """The additive drawing before the post-passes, on a fresh RGBA F32 surface
    (premultiplied, black background, values clamped to [0, 1] by kPlus).

    Repeated instances are merged (invisibly, within 0.1 px); a scene still over
    DRAW_BUDGET_US merges within 1 px, then is drawn smaller (`lod_size`)."""
    plan, fixed, scaled = plan_draws(params, size, EXACT_MERGE_PX)
    if fixed + scaled > DRAW_BUDGET_US:
        plan, fixed, scaled = plan_draws(params, size, LOOSE_MERGE_PX)
    at = lod_size(fixed, scaled, size)
    if at != size:
        plan, _, _ = plan_draws(params, at, LOOSE_MERGE_PX)
    surface = _surface(at)
    canvas = surface.getCanvas()
    paint = skia.Paint(
        AntiAlias=True,
        Style=skia.Paint.kStroke_Style,
        StrokeCap=skia.Paint.kButt_Cap,
        StrokeJoin=skia.Paint.kMiter_Join,
        BlendMode=skia.BlendMode.kPlus,
    )
    lo, hi = (float(v) for v in params["gradientRange"])
    angle = float(params["gradientAngle"])
    for chain, draws in plan:
        band = geometry_path(chain.geometry, chain.start_angle)
        radius = STROKE_RADIUS_PER_WIDTH * chain.geo_width
        paint.setShader(gradient_shader(chain.rgb, angle, lo, hi))
        for d in draws:
            path = band
            paint.setStrokeWidth(2 * radius)
            if d.edge is not None:  # the clip planes leave two edge strips
                path = edge_path(chain.geometry, chain.start_angle, radius - d.edge / 2)
                paint.setStrokeWidth(d.edge)
            matrix = skia.Matrix.MakeAll(*d.matrix, 0.0, 0.0, 1.0)
            if d.layer_box is None:
                canvas.setMatrix(matrix)
                paint.setAlphaf(d.alpha)
                for _ in range(d.repeats):
                    canvas.drawPath(path, paint)
                continue
            # opacity > 1: draw once at full opacity into an opaque black layer (so
            # its colours are not premultiplied) and add it back scaled by alpha
            canvas.resetMatrix()
            canvas.saveLayer(skia.Rect.MakeLTRB(*d.layer_box), _gain_paint(d.alpha))
            canvas.clear(skia.ColorBLACK)
            canvas.setMatrix(matrix)
            paint.setAlphaf(1.0)
            canvas.drawPath(path, paint)
            canvas.restore()
    if at == size:
        return surface
    full = _surface(size)
    full.getCanvas().drawImageRect(
        surface.makeImageSnapshot(),
        skia.Rect.MakeWH(size, size),
        skia.SamplingOptions(skia.FilterMode.kLinear),
    )
    return full


def _gain_paint(gain: float) -> skia.Paint:
    """Adds a layer's RGB × gain (kPlus)."""
    matrix = [gain, 0, 0, 0, 0, 0, gain, 0, 0, 0, 0, 0, gain, 0, 0, 0, 0, 0, 1, 0]
    return skia.Paint(
        BlendMode=skia.BlendMode.kPlus, ColorFilter=skia.ColorFilters.Matrix(matrix)
    )


def _read(surface: skia.Surface, size: int) -> np.ndarray:
    """The surface's pixels as uint8 (size, size, 4) RGBA."""
    out = np.empty((size, size, 4), np.uint8)
    info = skia.ImageInfo.Make(
        size, size, skia.kRGBA_8888_ColorType, skia.kPremul_AlphaType
    )
    if not surface.readPixels(info, out):
        raise RuntimeError("skia could not read the surface's pixels")
    return out


def render_rgba(params: dict[str, Any], size: int) -> np.ndarray:
    """Complete flat params → uint8 (size, size, 4): R, G, B are the picture (the
    fourth byte means nothing after the post-passes)."""
    rgba = _read(draw(params, size), size)  # skia clamps and rounds
    if params["ditherEnabled"]:
        apply_dither(rgba, params, size)
    if params["crtEnabled"]:
        apply_crt(rgba, params, size)
    if params["noiseEnabled"]:
        apply_noise(rgba, params, size)
    return rgba


def _rgb_image(rgba: np.ndarray) -> Image.Image:
    h, w = rgba.shape[:2]
    return Image.frombuffer("RGBA", (w, h), rgba, "raw", "RGBA", 0, 1).convert("RGB")


def render(params: dict[str, Any], size: int) -> np.ndarray:
    """Complete flat params (as `schema.parse_params` makes them) → uint8 (size, size, 3).

    Deterministic: the same params and size give the same pixels."""
    return np.array(_rgb_image(render_rgba(params, size)))


def render_png(params: dict[str, Any], size: int) -> bytes:
    """Complete flat params → PNG bytes of the size × size picture."""
    return encode_png(render_rgba(params, size)[..., :3])
