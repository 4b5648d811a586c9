"""The single source of truth for the scene's parameter set: the table, parsing, spellings.

Everything else derives from SCHEMA and LAYER_SCHEMA: the renderer's validation, the
converters between the two spellings, random sampling and breeding (sampling.py),
the models' encodings (encoding.py), refs loading (refs_io.py). See docs/scene.md for
what each parameter means. One parameter's definition (Param) and the rules one value
obeys (strict numbers, colours, angles, ParamError) live in param.py and are
re-exported here, so ``schema.X`` names every part of the schema.

Spellings of one parameter set:

- **flat** (the models', and `data/params/*.json`): a dict keyed by the flat names of
  the schema, ``position`` as ``{"x", "y"}``, ``color`` as ``"#RRGGBB"`` and
  ``layers`` as a list of dicts (``rotation``, ``position``, ``scale`` always,
  optional overrides only when set; the models encode at most MAX_LAYERS of them).
  Produced by `parse_params`, always complete.
- **scene** (the API body): the flat one with dither nested as ``dither: {enabled,
  type, matrix, colors, strength, scale, bias, grayscale}`` (`to_scene_params`).
- **prefixed** (Leva, `references/refs.jsonl`, what generation sends):
  ``Scalars.repetitions``, ``Groups.g0.g0-rotation`` ... (`to_prefixed`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from art_explorer.scene.param import (
    ABSENT,
    DIGITS,
    PI,
    Param,
    ParamError,
    default_value,
    parse_value,
    unwrap,
)
from art_explorer.scene.param import NumberError as NumberError
from art_explorer.scene.param import arg_int as arg_int
from art_explorer.scene.param import arg_uint as arg_uint
from art_explorer.scene.param import clip_text as clip_text
from art_explorer.scene.param import color_to_rgb as color_to_rgb
from art_explorer.scene.param import is_hex_color as is_hex_color
from art_explorer.scene.param import json_type as json_type
from art_explorer.scene.param import normalize_color as normalize_color
from art_explorer.scene.param import parse_uint as parse_uint
from art_explorer.scene.param import rgb_to_color as rgb_to_color
from art_explorer.scene.param import wrap_angle as wrap_angle

# 2: the original's defaults and ranges, Element.startAngle/gradientRange, CRT,
# the default layer, Scene.position moving the base chain only (docs/scene.md).
# 3: the same params, drawn with the original's per-fragment ACES tone mapping: the
# pictures changed (saturated colours, bright sums), so data and models made under 2
# no longer match what these params draw.
# 4: the same params, a layer drawn as drei's <Instances> does (compose(decompose(W))
# drops the shear of a non-uniform layer scale) and cut by the camera's clip planes
# (renderer/instancing.py, issue 33): layered pictures changed.
SCHEMA_VERSION = 4
MAX_LAYERS = 5  # layers the models encode and sampling draws (the renderer takes more)
# The renderer's bound on work per request: instances drawn = repetitions × (1 +
# layers). Beyond it a request is refused (400). 12 chains of 500 repetitions.
MAX_INSTANCES = 6000
MAX_RENDER_LAYERS = 64

GEOMETRIES = (
    "ring",
    "bar",
    "line",
    "arch",
    "u",
    "spiral",
    "wave",
    "infinity",
    "square",
    "roundedRect",
)
SCALE_PROGRESSIONS = (
    "linear",
    "exponential",
    "additive",
    "fibonacci",
    "golden",
    "sine",
)
ROTATION_PROGRESSIONS = ("linear", "golden-angle", "fibonacci", "sine")
ALPHA_PROGRESSIONS = ("exponential", "linear", "inverse")
POSITION_PROGRESSIONS = ("index", "scale")
ORIGINS = (
    "center",
    "top-center",
    "bottom-center",
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
)
DITHER_TYPES = ("bayer", "noise", "halftone")
CRT_MASKS = ("none", "shadow", "grille", "stretched", "vga")
DITHER_MATRICES = (2, 4, 8)


SCHEMA: tuple[Param, ...] = (
    Param("repetitions", "Scalars.repetitions", "int", 75, 1, 500, bias_min=16),
    Param("alphaFactor", "Scalars.alphaFactor", "float", 0.68, 0, 1),
    Param("scaleFactor", "Scalars.scaleFactor", "float", 1.03, 0, 2, 0, 3),
    Param("rotationFactor", "Scalars.rotationFactor", "float", -0.48, -1, 1),
    Param("stepFactor", "Scalars.stepFactor", "float", 0.02, 0.02, 2, 0, 2),
    Param("positionCoupled", "Scalars.positionCoupled", "bool", True),
    Param(
        "scaleProgression",
        "Scalars.scaleProgression",
        "cat",
        "exponential",
        options=SCALE_PROGRESSIONS,
    ),
    Param(
        "rotationProgression",
        "Scalars.rotationProgression",
        "cat",
        "linear",
        options=ROTATION_PROGRESSIONS,
    ),
    Param(
        "alphaProgression",
        "Scalars.alphaProgression",
        "cat",
        "exponential",
        options=ALPHA_PROGRESSIONS,
    ),
    Param(
        "positionProgression",
        "Scalars.positionProgression",
        "cat",
        "index",
        options=POSITION_PROGRESSIONS,
    ),
    Param("xStep", "Spatial.xStep", "float", -1.5, -2, 2, -3, 3),
    Param("yStep", "Spatial.yStep", "float", 0.0, -2, 2, -3, 3),
    Param("origin", "Spatial.origin", "cat", "top-center", options=ORIGINS),
    # sampled in [0.2, 1.2] (most scenes fit the view there), clamped to [0, 2]
    Param("scale", "Scene.scale", "float", 0.4, 0.2, 1.2, 0, 2),
    Param("rotation", "Scene.rotation", "float", 0.0, -PI, PI, periodic=True),
    Param("position", "Scene.position", "vec2", (0.0, -0.5), -1, 1, clamp=False),
    Param("geometry", "Element.geometry", "cat", "ring", options=GEOMETRIES),
    Param("geoWidth", "Element.geoWidth", "float", 0.041, 0.001, 0.1),
    Param("startAngle", "Element.startAngle", "float", 0.0, -PI, PI, periodic=True),
    Param(
        "gradientAngle", "Element.gradientAngle", "float", 0.0, -PI, PI, periodic=True
    ),
    Param("gradientRange", "Element.gradientRange", "pair", (0.2, 1.0), -1, 2),
    Param("color", "Element.color", "color", "#EFEDDB"),
    Param("noiseEnabled", "Noise.enabled", "bool", False),
    Param("noiseDensity", "Noise.density", "float", 0.11, 0, 1),
    Param("noiseOpacity", "Noise.opacity", "float", 0.11, 0, 0.3, draw_hi=1),
    Param("noiseSize", "Noise.size", "float", 0.3, 0.1, 0.55, draw_hi=3),
    Param("crtEnabled", "CRT.enabled", "bool", False),
    Param("crtBleed", "CRT.bleed", "float", 0.4, 0, 1),
    Param("crtBloom", "CRT.bloom", "float", 0.15, 0, 1),
    Param("crtBrightness", "CRT.brightness", "float", 1.0, 0.5, 2),
    Param("crtMask", "CRT.mask", "cat", "grille", options=CRT_MASKS),
    Param("crtMaskStrength", "CRT.maskStrength", "float", 0.5, 0, 1),
    Param("crtScale", "CRT.scale", "float", 1.5, 1, 8),
    Param("crtScanlines", "CRT.scanlines", "float", 0.3, 0, 1),
    Param("crtWarp", "CRT.warp", "float", 0.0, 0, 0.1),
    # Dither: this project's extension (the original's DitherPass in some versions)
    Param("ditherEnabled", "Dither.enabled", "bool", False),
    Param("ditherType", "Dither.type", "cat", "bayer", options=DITHER_TYPES),
    Param("ditherMatrix", "Dither.matrix", "cat", 4, options=DITHER_MATRICES),
    Param("ditherColors", "Dither.colors", "int", 6, 2, 32, bias_min=3),
    Param("ditherStrength", "Dither.strength", "float", 0.78, 0, 1),
    Param("ditherScale", "Dither.scale", "float", 8.0, 1, 8, draw_lo=0.25),
    Param("ditherBias", "Dither.bias", "float", 0.5, 0, 1),
    Param("ditherGrayscale", "Dither.grayscale", "bool", False),
)

# Per-layer keys (prefixed `Groups.g{i}.g{i}-NAME`). rotation/position/scale are always
# present (a layer missing one takes the original codec's default: rotation 0,
# position (0, 0), scale (-1, 1)); the rest are optional overrides of the base value
# of the same name (an absent one falls back to the base's).
LAYER_SCHEMA: tuple[Param, ...] = (
    Param("rotation", "rotation", "float", 0.0, -PI, PI, periodic=True),
    Param("position", "position", "vec2", (0.0, 0.0), -2, 2),
    Param("scale", "scale", "vec2", (-1.0, 1.0), -2, 2),
    Param("stepFactor", "stepFactor", "float", 0.13, 0, 2),
    Param("alphaFactor", "alphaFactor", "float", 0.65, 0, 1),
    Param("scaleFactor", "scaleFactor", "float", 1.05, 0, 2, 0, 3),
    Param("rotationFactor", "rotationFactor", "float", 0.0, -1, 1),
    Param("geoWidth", "geoWidth", "float", 0.041, 0.001, 0.1),
    Param("startAngle", "startAngle", "float", 0.0, -PI, PI, periodic=True),
    Param("color", "color", "color", "#FFFDDD"),
    Param("geometry", "geometry", "cat", "ring", options=GEOMETRIES),
)
# The layer a params object gets when it says nothing about layers (no Groups.* key;
# no "layers" key in the other spellings): the original's g0, a mirrored copy.
DEFAULT_LAYER: dict[str, Any] = {
    "rotation": 0.0,
    "position": {"x": -0.002669900489082666, "y": -0.46229475798772235},
    "scale": {"x": -1.0, "y": 1.0},
}
LAYER_REQUIRED = ("rotation", "position", "scale")
LAYER_OPTIONAL = tuple(p.key for p in LAYER_SCHEMA if p.key not in LAYER_REQUIRED)
# Probability that a sampled layer sets an optional override.
LAYER_OPTIONAL_P = {"color": 0.2, "geometry": 0.4}
LAYER_OPTIONAL_P_DEFAULT = 0.3
LAYER_COUNT_WEIGHTS = (4, 3, 2, 1, 1)  # for 1..5 layers

PARAM = {p.key: p for p in SCHEMA}
LAYER_PARAM = {p.key: p for p in LAYER_SCHEMA}
PREFIXED = {p.prefixed: p for p in SCHEMA}
IGNORED_PREFIXED = ("Scene.debug", "Scene.transform", "Scene.animate")
PREFIX_GROUPS = (
    "Scalars.",
    "Spatial.",
    "Scene.",
    "Element.",
    "Noise.",
    "CRT.",
    "Dither.",
    "Groups.",
)
DITHER_NESTED = {
    p.key: p.key[len("dither") :].lower() for p in SCHEMA if p.key.startswith("dither")
}
NOISE_NESTED = {
    p.key: p.key[len("noise") :].lower() for p in SCHEMA if p.key.startswith("noise")
}
CRT_NESTED = {
    p.key: p.key[3].lower() + p.key[4:] for p in SCHEMA if p.key.startswith("crt")
}

# Derived key lists for the encodings.
BOOL_KEYS = tuple(p.key for p in SCHEMA if p.kind == "bool")
CAT_KEYS = tuple(p.key for p in SCHEMA if p.kind == "cat")


def _components(params: Sequence[Param]) -> tuple[tuple[str, int], ...]:
    """(key, component) for every scalar that the encodings treat as continuous."""
    out: list[tuple[str, int]] = []
    for p in params:
        if p.kind in ("int", "float"):
            out.append((p.key, 0))
        elif p.kind in ("vec2", "pair"):
            out += [(p.key, 0), (p.key, 1)]
        elif p.kind == "color":
            out += [(p.key, 0), (p.key, 1), (p.key, 2)]
    return tuple(out)


CONT_COMPONENTS = _components(SCHEMA)
LAYER_CONT_COMPONENTS = _components(LAYER_SCHEMA)
CONT_NAMES = tuple(
    k
    if PARAM[k].kind in ("int", "float")
    else f"{k}.{ {'vec2': 'xy', 'pair': '01'}.get(PARAM[k].kind, 'rgb')[c] }"
    for k, c in CONT_COMPONENTS
)


def schema_hash(version: int = SCHEMA_VERSION) -> str:
    """Short hash of the schema; checkpoints record it and refuse a mismatch.
    `version`: the hash these same params had under another schema version."""
    return hashlib.sha256(
        json.dumps(schema_json(version), sort_keys=True).encode()
    ).hexdigest()[:16]


def older_version_of(hash_: str) -> int | None:
    """The older schema version under which these same params had `hash_` (the
    pictures changed, not the params: what was made then can be redrawn now), or
    None."""
    return next(
        (v for v in range(SCHEMA_VERSION - 1, 0, -1) if schema_hash(v) == hash_), None
    )


def schema_json(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The schema as JSON (served by GET /api/schema)."""

    def one(p: Param, prefixed: str) -> dict[str, Any]:
        d: dict[str, Any] = {"key": p.key, "prefixed": prefixed, "type": p.kind}
        d["default"] = list(p.default) if isinstance(p.default, tuple) else p.default
        if p.kind in ("int", "float", "vec2", "pair"):
            d["range"] = [p.lo, p.hi]
            if p.clamp and (p.hard_lo is not None or p.hard_hi is not None):
                d["clampRange"] = [p.clamp_lo, p.clamp_hi]
            if p.periodic or not p.clamp:
                d["clamped"] = False
        if p.options:
            d["options"] = list(p.options)
        return d

    return {
        "version": version,
        "params": [one(p, p.prefixed) for p in SCHEMA],
        "layers": {
            "max": MAX_RENDER_LAYERS,
            "maxInstances": MAX_INSTANCES,
            "modelMax": MAX_LAYERS,
            "default": [DEFAULT_LAYER],
            "prefixed": "Groups.g{i}.g{i}-{key}",
            "required": list(LAYER_REQUIRED),
            "params": [one(p, f"Groups.g{{i}}.g{{i}}-{p.key}") for p in LAYER_SCHEMA],
        },
        "ignored": list(IGNORED_PREFIXED),
    }


# ----------------------------------------------------------------------------------
# Parsing: any spelling, messy or not → complete flat params (or a ParamError)


def default_params() -> dict[str, Any]:
    """The scene's defaults in the flat spelling, with the default layer (what the
    original draws for an empty params object)."""
    out: dict[str, Any] = {p.key: default_value(p) for p in SCHEMA}
    out["layers"] = [json.loads(json.dumps(DEFAULT_LAYER))]
    return out


def is_prefixed(body: dict[str, Any]) -> bool:
    """A body with any Leva-group key is in the prefixed spelling."""
    return any(isinstance(k, str) and k.startswith(PREFIX_GROUPS) for k in body)


def parse_params(body: Any) -> tuple[dict[str, Any], list[str]]:
    """Any spelling → (complete flat params, names of clamped fields).

    Copes with real, messy refs: missing keys take defaults, unknown keys are ignored,
    Leva {value, disabled} wrappers are unwrapped (a disabled override is absent),
    hex colours in any case, ints where floats are expected. A body that says
    nothing about layers (no Groups.* key; no "layers" key) gets DEFAULT_LAYER, as
    the original does. Raises ParamError for what cannot be meant: wrong types,
    unknown categories, non-finite numbers, more than MAX_RENDER_LAYERS layers or
    MAX_INSTANCES instances. Out-of-range numbers are clamped and reported; so are,
    as the original draws them, a number for a numeric categorical (snapped to the
    nearest option: Dither.matrix 3 → 4, 4.61 → 4) and a number other than 0/1 for a
    boolean (it means != 0).
    """
    if not isinstance(body, dict):
        raise ParamError(f"params must be a JSON object, got {json_type(body)}", "")
    clamped: list[str] = []
    out = default_params()
    if is_prefixed(body):
        raw, raw_layers = _split_prefixed(body)
    else:
        raw, raw_layers = _split_scene(body)
    if raw_layers is None:  # nothing said about layers: the original's default
        raw_layers = [DEFAULT_LAYER]
    for p in SCHEMA:
        v = unwrap(raw.get(p.key, ABSENT))
        if v is not ABSENT and v is not None:
            out[p.key] = parse_value(p, v, p.key, clamped)
    if len(raw_layers) > MAX_RENDER_LAYERS:
        raise ParamError(
            f"layers: at most {MAX_RENDER_LAYERS}, got {len(raw_layers)}", "layers"
        )
    out["layers"] = []
    for i, rl in enumerate(raw_layers):
        if not isinstance(rl, dict):
            raise ParamError(f"layers[{i}]: expected an object", f"layers[{i}]")
        layer: dict[str, Any] = {}
        for p in LAYER_SCHEMA:
            v = unwrap(rl.get(p.key, ABSENT))
            name = f"layers[{i}].{p.key}"
            if v is ABSENT or v is None:
                if p.key in LAYER_REQUIRED:
                    layer[p.key] = default_value(p)
                continue
            layer[p.key] = parse_value(p, v, name, clamped)
        out["layers"].append(layer)
    work = out["repetitions"] * (1 + len(out["layers"]))
    if work > MAX_INSTANCES:
        raise ParamError(
            f"too much work: repetitions × (1 + layers) = {work} instances, at most "
            f"{MAX_INSTANCES} per request",
            "layers",
        )
    return out, clamped


def _split_scene(body: dict[str, Any]) -> tuple[dict[str, Any], list[Any] | None]:
    raw = dict(body)
    nests = (("dither", DITHER_NESTED), ("noise", NOISE_NESTED), ("crt", CRT_NESTED))
    for nested, mapping in nests:
        sub = unwrap(raw.pop(nested, None))
        if isinstance(sub, dict):
            for key, short in mapping.items():
                if short in sub and key not in raw:
                    raw[key] = sub[short]
        elif sub not in (None, ABSENT):
            raise ParamError(f"{nested}: expected an object", nested)
    if "layers" not in raw:
        return raw, None
    layers = unwrap(raw.get("layers", []))
    if layers is ABSENT or layers is None:
        layers = []
    if not isinstance(layers, list):
        raise ParamError("layers: expected a list", "layers")
    return raw, layers


def _split_prefixed(
    body: dict[str, Any],
) -> tuple[dict[str, Any], list[Any] | None]:
    raw: dict[str, Any] = {}
    groups: dict[int, dict[str, Any]] = {}
    any_group = False
    for k, v in body.items():
        if not isinstance(k, str):
            continue
        if k in PREFIXED:
            raw[PREFIXED[k].key] = v
        elif k.startswith("Groups."):
            # Groups.g{i}.g{i}-NAME
            head, _, name = k.partition("-")
            parts = head.split(".")
            if len(parts) != 3 or name not in LAYER_PARAM:
                continue  # not a layer key we know: ignored, it makes no layer
            i = _layer_index(k, parts[1][1:])
            any_group = True
            if unwrap(v) is ABSENT:
                groups.setdefault(i, {})
                continue
            groups.setdefault(i, {})[name] = v
    n = max(groups) + 1 if groups else 0
    layers = [groups.get(i, {}) for i in range(n)]
    # A group whose every key is disabled or missing is not a layer.
    while layers and not layers[-1]:
        layers.pop()
    return raw, (layers if any_group else None)


def _layer_index(key: str, text: str) -> int:
    """The i of a Groups.g{i}.g{i}-NAME key (ASCII digits, below MAX_RENDER_LAYERS),
    or ParamError."""
    try:
        i = parse_uint(text, "layer index", max_digits=4)
    except NumberError as e:
        if text and set(text) <= DIGITS:  # only too long: a huge index
            raise ParamError(
                f"{clip_text(key)}: at most {MAX_RENDER_LAYERS} layers", "layers"
            ) from None
        raise ParamError(f"{clip_text(key)}: {e}", key[:200]) from None
    if i >= MAX_RENDER_LAYERS:
        raise ParamError(f"{key}: at most {MAX_RENDER_LAYERS} layers", "layers")
    return i


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parse and return complete flat params, raising ParamError on bad input."""
    return parse_params(params)[0]


# ----------------------------------------------------------------------------------
# Converters between the spellings


def to_prefixed(params: dict[str, Any]) -> dict[str, Any]:
    """Flat (or any spelling) → Leva-prefixed keys, complete."""
    flat = validate_params(params)
    out: dict[str, Any] = {}
    for p in SCHEMA:
        out[p.prefixed] = flat[p.key]
    layers = flat["layers"] or [EMPTY_LAYER]  # no Groups key would mean DEFAULT_LAYER
    for i, layer in enumerate(layers):
        for key, v in layer.items():
            out[f"Groups.g{i}.g{i}-{key}"] = v
    return out


# How the prefixed spelling says "no layers" (it has no empty list): one layer
# scaled to nothing, which draws nothing in either renderer.
EMPTY_LAYER: dict[str, Any] = {
    "rotation": 0.0,
    "position": {"x": 0.0, "y": 0.0},
    "scale": {"x": 0.0, "y": 0.0},
}


def to_scene_params(params: dict[str, Any]) -> dict[str, Any]:
    """Flat (or any spelling) → the API's SceneParams body (dither nested)."""
    flat = validate_params(params)
    out = {k: v for k, v in flat.items() if k not in DITHER_NESTED}
    out["dither"] = {short: flat[key] for key, short in DITHER_NESTED.items()}
    return out


def canonical_json(params: dict[str, Any]) -> str:
    """Stable JSON of the flat params (floats to 6 significant digits): a cache key
    and the duplicate test of save-ref."""

    def rnd(v: Any) -> Any:
        if isinstance(v, float):
            return float(f"{v:.6g}")
        if isinstance(v, dict):
            return {k: rnd(x) for k, x in v.items()}
        if isinstance(v, list):
            return [rnd(x) for x in v]
        return v

    return json.dumps(
        rnd(validate_params(params)), sort_keys=True, separators=(",", ":")
    )


def describe(params: dict[str, Any]) -> str:
    """One short line for listings: 'geo=u, rep=28, layers=1'."""
    return f"geo={params['geometry']}, rep={params['repetitions']}, layers={len(params['layers'])}"
