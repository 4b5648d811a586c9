"""Random params and breeding (docs/pipeline.md "Sampling"): `sample_params`, the
refs-like distribution `sample_refs_like`, the curated-like one `sample_curated_like`,
the blow-up guard `apply_guard`, and `breed` (children of references by jitter and
crossover)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from typing import Any

from art_explorer.scene import schema


def _sample_value(p: schema.Param, rng: random.Random) -> Any:
    if p.kind == "float":
        return rng.uniform(p.lo, p.hi)
    if p.kind == "int":
        lo = p.bias_min if p.bias_min is not None and rng.random() < 0.8 else p.lo
        return rng.randint(int(lo), int(p.hi))
    if p.kind == "bool":
        return rng.random() < 0.5
    if p.kind == "cat":
        return rng.choice(p.options)
    if p.kind == "vec2":
        return {"x": rng.uniform(p.lo, p.hi), "y": rng.uniform(p.lo, p.hi)}
    if p.kind == "pair":
        if p.key == "gradientRange":  # mostly a rising edge inside [0, 1.2]
            lo = rng.uniform(-0.2, 0.8)
            return [lo, min(p.hi, lo + rng.uniform(0.1, 1.0))]
        return sorted([rng.uniform(p.lo, p.hi), rng.uniform(p.lo, p.hi)])
    if p.kind == "color":
        return random_color(rng)
    raise AssertionError(p.kind)


def random_color(rng: random.Random) -> str:
    """A colour that reads on black: any hue, mostly bright, sometimes near white."""
    import colorsys

    h = rng.random()
    s = rng.choice((rng.uniform(0.0, 0.25), rng.uniform(0.2, 1.0)))
    v = rng.uniform(0.65, 1.0)
    return schema.rgb_to_color(colorsys.hsv_to_rgb(h, s, v))


# Parameters sampled at the default most of the time, so random data resembles scenes.
ENABLE_P = {"noiseEnabled": 0.35, "ditherEnabled": 0.35, "crtEnabled": 0.1}


def sample_layer(rng: random.Random) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for p in schema.LAYER_SCHEMA:
        if p.key in schema.LAYER_REQUIRED or rng.random() < schema.LAYER_OPTIONAL_P.get(
            p.key, schema.LAYER_OPTIONAL_P_DEFAULT
        ):
            layer[p.key] = _sample_value(p, rng)
    return layer


def sample_params(
    rng: random.Random, max_layers: int = schema.MAX_LAYERS
) -> dict[str, Any]:
    """Random flat params drawn as pipeline.md says (biases, layer weights, guard).

    Layers: 0 with no weight in the spec, so 1-5 with weights 4:3:2:1:1."""
    out = schema.default_params()
    for p in schema.SCHEMA:
        if p.key in ENABLE_P:
            out[p.key] = rng.random() < ENABLE_P[p.key]
        else:
            out[p.key] = _sample_value(p, rng)
    counts = list(range(1, max_layers + 1))
    n = (
        rng.choices(counts, weights=schema.LAYER_COUNT_WEIGHTS[: len(counts)])[0]
        if counts
        else 0
    )
    out["layers"] = [sample_layer(rng) for _ in range(n)]
    return apply_guard(out)


# The refs-like distribution: what curated references look like (fitted by eye to
# references/refs.jsonl): factors near their calm values most of the time, the scene
# centred and upright, no noise, dither or CRT, and symmetric layer templates.
REFS_LIKE_DEFAULT_P = 0.5  # a progression keeps the default option this often


def _refs_like_layers(rng: random.Random) -> list[dict[str, Any]]:
    """Layer templates seen in the references: the default mirrored copy, one copy
    (same or scaled), k rotated copies, mirrored pairs/quads, or random layers."""
    ident = {"rotation": 0.0, "position": {"x": 0.0, "y": 0.0}}
    u = rng.random()
    if u < 0.35:
        return [json.loads(json.dumps(schema.DEFAULT_LAYER))]
    if u < 0.5:
        s = rng.choice((1.0, 1.0, 1.6, rng.uniform(0.5, 2.0)))
        return [{**ident, "scale": {"x": s, "y": s}}]
    if u < 0.7:
        k = rng.randint(2, 5)
        layers = [
            {
                **ident,
                "rotation": schema.wrap_angle(2 * schema.PI * j / k),
                "scale": {"x": 1.0, "y": 1.0},
            }
            for j in range(k)
        ]
    elif u < 0.8:
        d = rng.uniform(0.2, 1.0)
        quads = [((d, 0.0), (1.0, 1.0)), ((-d, 0.0), (-1.0, 1.0))]
        quads += [((0.0, d), (1.0, -1.0)), ((0.0, -d), (-1.0, -1.0))]
        layers = [
            {
                "rotation": 0.0,
                "position": {"x": px, "y": py},
                "scale": {"x": sx, "y": sy},
            }
            for (px, py), (sx, sy) in quads[: rng.choice((2, 4))]
        ]
    else:
        n = rng.choices(
            range(1, schema.MAX_LAYERS + 1), weights=schema.LAYER_COUNT_WEIGHTS
        )[0]
        return [sample_layer(rng) for _ in range(n)]
    if rng.random() < 0.3:
        for layer in layers:
            layer["color"] = random_color(rng)
    return layers


def sample_refs_like(rng: random.Random) -> dict[str, Any]:
    """Random flat params that look like curated references (the evaluation's
    refs-like targets and the pretrained inverse model's main training data): any
    geometry; progressions at their default half the time, else any; factors near
    calm values (scaleFactor mostly in [0.98, 1.05], |rotationFactor| mostly < 0.03,
    stepFactor mostly < 0.1, alphaFactor mostly > 0.85); Scene.scale in [0.85, 1.5],
    mostly unrotated and centred; noise, dither and CRT off (curated refs are clean);
    layer templates as in _refs_like_layers. The blow-up guard applies."""

    def prog(key: str) -> Any:
        p = schema.PARAM[key]
        if rng.random() < REFS_LIKE_DEFAULT_P:
            return p.default
        return rng.choice([o for o in p.options if o != p.default])

    def mostly(p: float, calm: Any, wide: Any) -> Any:
        return calm() if rng.random() < p else wide()

    out = schema.default_params()
    out.update(
        repetitions=round(math.exp(rng.uniform(math.log(20), math.log(300)))),
        alphaFactor=mostly(
            0.85, lambda: rng.uniform(0.85, 0.99), lambda: rng.uniform(0.5, 0.99)
        ),
        scaleFactor=mostly(
            0.7, lambda: rng.uniform(0.98, 1.05), lambda: rng.uniform(0.9, 1.25)
        ),
        rotationFactor=mostly(
            0.7, lambda: rng.uniform(-0.03, 0.03), lambda: rng.uniform(-1, 1)
        ),
        stepFactor=mostly(
            0.75, lambda: rng.uniform(0.02, 0.1), lambda: rng.uniform(0.1, 0.85)
        ),
        positionCoupled=rng.random() < 0.9,
        scaleProgression=prog("scaleProgression"),
        rotationProgression=prog("rotationProgression"),
        alphaProgression=prog("alphaProgression"),
        positionProgression="index" if rng.random() < 0.7 else "scale",
        xStep=rng.uniform(-1.75, 1.75),
        yStep=0.0 if rng.random() < 0.15 else rng.uniform(-1.75, 1.75),
        origin="center" if rng.random() < 0.45 else rng.choice(schema.ORIGINS[1:]),
        scale=rng.uniform(0.85, 1.5),
        rotation=mostly(0.85, lambda: 0.0, lambda: rng.uniform(-schema.PI, schema.PI)),
        position=mostly(
            0.85,
            lambda: {"x": 0.0, "y": 0.0},
            lambda: {"x": rng.uniform(-0.6, 0.6), "y": rng.uniform(-0.6, 0.6)},
        ),
        geometry=rng.choice(schema.GEOMETRIES),
        geoWidth=rng.uniform(0.005, 0.1),
        startAngle=mostly(0.9, lambda: 0.0, lambda: rng.uniform(-schema.PI, schema.PI)),
        gradientAngle=mostly(
            0.5, lambda: 0.0, lambda: rng.uniform(-schema.PI, schema.PI)
        ),
        gradientRange=mostly(
            0.8,
            lambda: list(schema.PARAM["gradientRange"].default),
            lambda: _sample_value(schema.PARAM["gradientRange"], rng),
        ),
        color=random_color(rng),
        noiseEnabled=False,
        ditherEnabled=False,
        crtEnabled=False,
    )
    out["layers"] = _refs_like_layers(rng)
    growth = abs(math.log(out["scaleFactor"]))  # keep sf^n within e^±3.5 of 1
    if growth > 0:
        out["repetitions"] = min(out["repetitions"], max(10, int(3.5 / growth)))
    return apply_guard(out)


# The curated-like distribution: what the pictures people curate look like, fitted to
# the statistics of 16 curated refs by the original's author (issue 30): layered
# scenes, each layer placed by its own rotation, position and strongly non-uniform,
# near-zero or negative scale, with per-layer overrides; factors far from calm.
CURATED_LAYER_COUNT_WEIGHTS = (1, 4, 6, 1, 2, 2)  # for 0..5 layers (16 refs)
# u 6, roundedRect 2, infinity 2, bar 2, arch 2, line 1, square 1 in the 16 refs; the
# three geometries no ref used keep a small weight (16 refs are a small sample).
CURATED_GEOMETRY_WEIGHTS = {
    "u": 6.0,
    "roundedRect": 2.0,
    "infinity": 2.0,
    "bar": 2.0,
    "arch": 2.0,
    "line": 1.0,
    "square": 1.0,
    "ring": 0.5,
    "spiral": 0.5,
    "wave": 0.5,
}
# Share of the 37 layers that override each key.
CURATED_OVERRIDE_P = {
    "alphaFactor": 14 / 37,
    "geometry": 12 / 37,
    "rotationFactor": 11 / 37,
    "stepFactor": 9 / 37,
    "scaleFactor": 8 / 37,
    "color": 3 / 37,
}
# Per axis of a layer's scale: negative with 0.32 and near zero (< 0.1) with 0.057, so
# that 54% of layers have a negative axis and 11% a near-zero one; other magnitudes in
# [0.25, 2] give an axis ratio above 2 on 43% of layers (20, 4 and 16 of 37).
CURATED_NEGATIVE_AXIS_P = 0.32
CURATED_NEAR_ZERO_AXIS_P = 0.057
CURATED_AXIS_MAGNITUDE = (0.25, 2.0)
# Per axis of a layer's position: at ±1 (edges and corners) with 0.45, in the wide
# range the refs reach (x to ±1.75, y to ±1.57) with 0.1, else in [-1, 1].
CURATED_EDGE_P = 0.45
CURATED_WIDE_P = 0.1
CURATED_WIDE_POSITION = (1.75, 1.57)


def curated_geometry(rng: random.Random) -> str:
    """A geometry drawn by CURATED_GEOMETRY_WEIGHTS."""
    names = list(CURATED_GEOMETRY_WEIGHTS)
    return rng.choices(names, weights=[CURATED_GEOMETRY_WEIGHTS[g] for g in names])[0]


def _curated_factor(key: str, rng: random.Random) -> float:
    """A base or per-layer factor as the curated refs set them: alphaFactor in
    [0, 0.75] (median ≈ 0.35), rotationFactor in [-0.7, 0.89] with |·| > 0.2 on 60%,
    stepFactor in [0.05, 1.76] (median ≈ 0.7), scaleFactor in [0.09, 1.82] (half of
    them in [0.85, 1.1])."""
    if key == "alphaFactor":
        return 0.75 * rng.betavariate(1.5, 1.7)
    if key == "rotationFactor":
        if rng.random() < 0.4:
            return rng.uniform(-0.2, 0.2)
        return rng.choice((rng.uniform(-0.7, -0.2), rng.uniform(0.2, 0.89)))
    if key == "stepFactor":
        return rng.triangular(0.05, 1.76, 0.45)
    if key == "scaleFactor":
        if rng.random() < 0.5:
            return rng.uniform(0.85, 1.1)
        return rng.uniform(0.09, 1.82)
    raise ValueError(f"not a curated factor: {key}")


def _curated_axis(rng: random.Random) -> float:
    mag = (
        rng.uniform(0.01, 0.1)
        if rng.random() < CURATED_NEAR_ZERO_AXIS_P
        else rng.uniform(*CURATED_AXIS_MAGNITUDE)
    )
    return -mag if rng.random() < CURATED_NEGATIVE_AXIS_P else mag


def _curated_coordinate(rng: random.Random, wide: float) -> float:
    u = rng.random()
    if u < CURATED_EDGE_P:
        return rng.choice((-1.0, 1.0))
    if u < CURATED_EDGE_P + CURATED_WIDE_P:
        return rng.uniform(-wide, wide)
    return rng.uniform(-1.0, 1.0)


def curated_layer(rng: random.Random) -> dict[str, Any]:
    """One layer as curated refs place them: rotation over [-π, π], position mostly
    with an axis at ±1, each scale axis independently in [-2, 2] (see the CURATED_*
    constants), overrides at CURATED_OVERRIDE_P."""
    wx, wy = CURATED_WIDE_POSITION
    layer: dict[str, Any] = {
        "rotation": rng.uniform(-schema.PI, schema.PI),
        "position": {
            "x": _curated_coordinate(rng, wx),
            "y": _curated_coordinate(rng, wy),
        },
        "scale": {"x": _curated_axis(rng), "y": _curated_axis(rng)},
    }
    for key, p in CURATED_OVERRIDE_P.items():
        if rng.random() >= p:
            continue
        if key == "geometry":
            layer[key] = curated_geometry(rng)
        elif key == "color":
            layer[key] = random_color(rng)
        else:
            layer[key] = _curated_factor(key, rng)
    return layer


def sample_curated_like(rng: random.Random) -> dict[str, Any]:
    """Random flat params that look like the pictures people curate (issue 30's
    statistics of 16 curated refs): 0-5 layers by CURATED_LAYER_COUNT_WEIGHTS, each
    from `curated_layer`; factors from `_curated_factor`; repetitions log-uniform in
    [11, 422]; geometry by CURATED_GEOMETRY_WEIGHTS; any progression and origin;
    Scene.scale and geoWidth at their defaults, the scene centred and upright; noise,
    dither and CRT off. The blow-up guard applies."""
    out = schema.default_params()
    out.update(
        repetitions=round(math.exp(rng.uniform(math.log(11), math.log(422)))),
        alphaFactor=_curated_factor("alphaFactor", rng),
        scaleFactor=_curated_factor("scaleFactor", rng),
        rotationFactor=_curated_factor("rotationFactor", rng),
        stepFactor=_curated_factor("stepFactor", rng),
        positionCoupled=rng.random() < 0.7,
        scaleProgression=rng.choice(schema.SCALE_PROGRESSIONS),
        rotationProgression=rng.choice(schema.ROTATION_PROGRESSIONS),
        alphaProgression=rng.choice(schema.ALPHA_PROGRESSIONS),
        positionProgression=rng.choice(schema.POSITION_PROGRESSIONS),
        xStep=rng.uniform(-1.75, 1.75),
        yStep=rng.uniform(-1.75, 1.75),
        origin=rng.choice(schema.ORIGINS),
        rotation=0.0,
        position={"x": 0.0, "y": 0.0},
        geometry=curated_geometry(rng),
        color=random_color(rng),
        noiseEnabled=False,
        ditherEnabled=False,
        crtEnabled=False,
    )
    n = rng.choices(
        range(len(CURATED_LAYER_COUNT_WEIGHTS)), weights=CURATED_LAYER_COUNT_WEIGHTS
    )[0]
    out["layers"] = [curated_layer(rng) for _ in range(n)]
    return apply_guard(out)


def max_repetitions(scale_factor: float) -> int:
    """Blow-up guard: for sf > 1.01, repetitions ≤ max(10, ⌊6.9 / ln sf⌋)."""
    if scale_factor <= 1.01:
        return int(schema.PARAM["repetitions"].hi)
    return max(10, math.floor(6.9 / math.log(scale_factor)))


def apply_guard(params: dict[str, Any]) -> dict[str, Any]:
    """Cap repetitions by the largest scaleFactor in use (base or any layer)."""
    sfs = [params["scaleFactor"]] + [
        layer["scaleFactor"] for layer in params["layers"] if "scaleFactor" in layer
    ]
    params["repetitions"] = min(params["repetitions"], max_repetitions(max(sfs)))
    return params


def _jitter(
    p: schema.Param, v: Any, rng: random.Random, jitter: tuple[float, float]
) -> Any:
    """Multiply numbers by U(jitter), clamp to the sampling range (hard range for
    values already outside it)."""

    def one(x: float) -> float:
        y = x * rng.uniform(*jitter)
        if p.periodic:
            return schema.wrap_angle(y)
        lo = min(p.lo, x) if p.clamp else -math.inf
        hi = max(p.hi, x) if p.clamp else math.inf
        return min(hi, max(lo, y))

    if p.kind == "float":
        return one(v)
    if p.kind == "int":
        return round(one(float(v)))
    if p.kind == "vec2":
        return {"x": one(v["x"]), "y": one(v["y"])}
    if p.kind == "pair":
        return [one(v[0]), one(v[1])]
    return v


def breed(
    parents: Sequence[dict[str, Any]],
    rng: random.Random,
    weights: Sequence[float] | None = None,
    p_two: float = 0.7,
    p_copy: float = 0.6,
    jitter: tuple[float, float] = (0.8, 1.2),
    p_redraw_cat: float = 0.0,
) -> dict[str, Any]:
    """A child of one or two parents (flat params).

    Two parents with probability p_two, else one, drawn by `weights` (scores) when
    given. Each key (and the layer list as a whole) comes from a random chosen parent
    with probability p_copy, else from a fresh random sample; numbers from a parent are
    jittered ×U(jitter) and clamped; categoricals are re-drawn with p_redraw_cat.
    p_copy=1 gives plain uniform crossover (explore).
    """
    if not parents:
        raise ValueError("breed needs at least one parent")
    k = 2 if len(parents) > 1 and rng.random() < p_two else 1
    w = list(weights) if weights is not None else [1.0] * len(parents)
    chosen: list[dict[str, Any]] = []
    idx = list(range(len(parents)))
    for _ in range(k):
        i = rng.choices(idx, weights=[max(w[j], 1e-6) for j in idx])[0]
        chosen.append(schema.validate_params(parents[i]))
        if len(idx) > 1:
            idx.remove(i)
    child = sample_params(rng)
    for p in schema.SCHEMA:
        if rng.random() < p_copy:
            v = rng.choice(chosen)[p.key]
            child[p.key] = _jitter(p, v, rng, jitter)
        if p.kind == "cat" and rng.random() < p_redraw_cat:
            child[p.key] = rng.choice(p.options)
    if rng.random() < p_copy:
        src = rng.choice(chosen)["layers"]
        child["layers"] = [
            {
                k2: _jitter(schema.LAYER_PARAM[k2], v2, rng, jitter)
                for k2, v2 in layer.items()
            }
            for layer in src
        ]
    for layer in child["layers"]:
        if "geometry" in layer and rng.random() < p_redraw_cat:
            layer["geometry"] = rng.choice(schema.GEOMETRIES)
    return apply_guard(schema.validate_params(child))
