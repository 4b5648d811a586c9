"""The single source of truth for the scene's parameters, and the small shared tools.

Everything else derives from SCHEMA and LAYER_SCHEMA: the renderer's validation, the
converters between the two spellings, random sampling and breeding, the models'
encodings, refs loading. See docs/scene.md for what each parameter means.

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

import codecs
import contextlib
import hashlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

# 2: the original's defaults and ranges, Element.startAngle/gradientRange, CRT,
# the default layer, Scene.position moving the base chain only (docs/scene.md).
SCHEMA_VERSION = 2
MAX_LAYERS = 5  # layers the models encode and sampling draws (the renderer takes more)
# The renderer's bound on work per request: instances drawn = repetitions × (1 +
# layers). Beyond it a request is refused (400). 12 chains of 500 repetitions.
MAX_INSTANCES = 6000
MAX_RENDER_LAYERS = 64
ROOT = Path(__file__).resolve().parent
DEFAULT_RENDERER_URL = "http://localhost:3000/api/raster"

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


@dataclass(frozen=True)
class Param:
    """One scene parameter.

    kind: "int" | "float" | "bool" | "cat" | "color" | "vec2" ({x, y}) | "pair"
        (a list [lo, hi] of two numbers, each in the range).
    lo, hi: the range that sampling draws from and the UI shows.
    hard_lo, hard_hi: the range the renderer clamps to and the optimiser searches
        (wider than lo/hi for scaleFactor and x/yStep); None means "not clamped"
        (angles and Scene.position, which have no range).
    periodic: an angle in radians; wrapped into [lo, hi) for encoding.
    bias_min: ints draw from [bias_min, hi] 80% of the time.
    """

    key: str
    prefixed: str
    kind: str
    default: Any
    lo: float = 0.0
    hi: float = 1.0
    hard_lo: float | None = None
    hard_hi: float | None = None
    options: tuple[Any, ...] = ()
    periodic: bool = False
    bias_min: int | None = None
    clamp: bool = True

    @property
    def clamp_lo(self) -> float:
        return self.lo if self.hard_lo is None else self.hard_lo

    @property
    def clamp_hi(self) -> float:
        return self.hi if self.hard_hi is None else self.hard_hi


PI = math.pi
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
    Param("noiseOpacity", "Noise.opacity", "float", 0.11, 0, 0.3),
    Param("noiseSize", "Noise.size", "float", 0.3, 0.1, 0.55),
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
    Param("ditherScale", "Dither.scale", "float", 8.0, 1, 8),
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


def schema_hash() -> str:
    """Short hash of the schema; checkpoints record it and refuse a mismatch."""
    return hashlib.sha256(
        json.dumps(schema_json(), sort_keys=True).encode()
    ).hexdigest()[:16]


def schema_json() -> dict[str, Any]:
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
        "version": SCHEMA_VERSION,
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
# Strict numbers: the one place where text from outside (keys, sizes, colours, IDs,
# line numbers, HTTP headers) becomes a number. ASCII digits only: no sign, space,
# underscore, "0x", superscripts or other scripts' digits (all of which int() and
# str.isdigit() let through), and a bounded length, so a 5000-digit "number" is an
# error message rather than a traceback or a huge int.


class NumberError(ValueError):
    """Text that is not a strict number; the message names what was being read."""


_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def clip_text(text: Any, n: int = 40) -> str:
    """repr() of a value, cut to about n characters (for error messages and logs)."""
    r = repr(text)
    return r if len(r) <= n else f"{r[: n - 4]}...{r[-1]} ({len(str(text))} chars)"


def parse_uint(text: Any, name: str, max_digits: int = 9, base: int = 10) -> int:
    """ASCII digits (0-9, or 0-9a-fA-F for base 16), 1 to max_digits of them → int.

    Raises NumberError naming `name` for anything else: "", "+1", " 1", "1_0",
    "0x1f", "²", "٣", or more than max_digits digits."""
    allowed = _HEX_DIGITS if base == 16 else _DIGITS
    what = "hex digits" if base == 16 else "digits 0-9"
    if not isinstance(text, str) or not text or not set(text) <= allowed:
        raise NumberError(f"{name}: expected {what}, got {clip_text(text)}")
    if len(text) > max_digits:
        raise NumberError(
            f"{name}: {len(text)} digits is too long (at most {max_digits})"
        )
    return int(text, base)


def arg_uint(text: str) -> int:
    """argparse `type=` for a non-negative integer flag, parsed by parse_uint."""
    import argparse

    try:
        return parse_uint(text.strip(), "value")
    except NumberError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None


def arg_int(text: str) -> int:
    """argparse `type=` for an integer that may be negative ('-' then digits)."""
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    return sign * arg_uint(text.removeprefix("-"))


def is_hex_color(text: str) -> bool:
    """'#RGB' or '#RRGGBB' with ASCII hex digits only."""
    return len(text) in (4, 7) and text[0] == "#" and set(text[1:]) <= _HEX_DIGITS


# ----------------------------------------------------------------------------------
# Parsing: any spelling, messy or not → complete flat params (or a ParamError)


class ParamError(ValueError):
    """Bad parameters; `field` names the offending key (the renderer answers 400)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


_ABSENT = object()


def _unwrap(v: Any) -> Any:
    """Leva's {"value": v, "disabled": bool} wrapper → v, or _ABSENT when disabled."""
    if isinstance(v, dict) and "value" in v and set(v) <= {"value", "disabled"}:
        if v.get("disabled") is True:
            return _ABSENT
        return v["value"]
    return v


def json_type(v: Any) -> str:
    """What JSON calls the type of a decoded value: object, array, string, ..."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object" if isinstance(v, dict) else type(v).__name__


def _number(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ParamError(f"{name}: expected a number, got {json_type(v)}", name)
    try:
        x = float(v)
    except OverflowError:  # an int beyond the float range (309+ digits)
        x = math.inf
    if not math.isfinite(x):
        raise ParamError(f"{name}: not a finite number", name)
    return x


def normalize_color(v: Any, name: str = "color") -> str:
    """'#abc' / '#AABBCC' (any case) → '#AABBCC'."""
    if not isinstance(v, str):
        raise ParamError(
            f"{name}: expected a hex colour string, got {json_type(v)}", name
        )
    s = v.strip()
    if not is_hex_color(s):
        raise ParamError(
            f"{name}: {clip_text(v)} is not a #RGB or #RRGGBB colour", name
        )
    h = s[1:] if len(s) == 7 else "".join(c * 2 for c in s[1:])
    return "#" + h.upper()


def color_to_rgb(c: str) -> tuple[float, float, float]:
    """'#RRGGBB' → (r, g, b) in [0, 1]."""
    return (int(c[1:3], 16) / 255, int(c[3:5], 16) / 255, int(c[5:7], 16) / 255)


def rgb_to_color(rgb: Sequence[float]) -> str:
    """(r, g, b) in [0, 1] (clipped) → '#RRGGBB'."""
    return "#" + "".join(
        f"{round(min(1.0, max(0.0, float(x))) * 255):02X}" for x in rgb
    )


def _value(p: Param, v: Any, name: str, clamped: list[str]) -> Any:
    """Check and normalise one value of parameter p; records clamping in `clamped`."""

    def clamp(x: float) -> float:
        if not p.clamp:
            return x
        if p.periodic:
            return wrap_angle(x)
        lo, hi = p.clamp_lo, p.clamp_hi
        if x < lo or x > hi:
            clamped.append(name)
            return min(hi, max(lo, x))
        return x

    if p.kind == "float":
        return clamp(_number(v, name))
    if p.kind == "int":
        return round(clamp(_number(v, name)))
    if p.kind == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):  # like the original: a number means != 0
            if _number(v, name) not in (0, 1):
                clamped.append(name)
            return v != 0
        raise ParamError(f"{name}: expected true or false, got {v!r}", name)
    if p.kind == "cat":
        if not isinstance(v, bool):
            for opt in p.options:
                if v == opt or (
                    isinstance(v, (str, int, float)) and str(v) == str(opt)
                ):
                    return opt
        if isinstance(v, str):
            for opt in p.options:
                if v.lower() == str(opt).lower():
                    return opt
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            numeric = [o for o in p.options if isinstance(o, (int, float))]
            if numeric:  # like the original: the nearest option (ties: the larger)
                x = _number(v, name)
                clamped.append(name)
                return min(numeric, key=lambda o: (abs(o - x), -o))
        raise ParamError(
            f"{name}: unknown option {v!r} (one of {', '.join(map(str, p.options))})",
            name,
        )
    if p.kind == "color":
        return normalize_color(v, name)
    if p.kind == "vec2":
        if isinstance(v, dict):
            x = _unwrap(v.get("x", p.default[0]))
            y = _unwrap(v.get("y", p.default[1]))
        elif isinstance(v, (list, tuple)) and len(v) == 2:
            x, y = v
        else:
            raise ParamError(f"{name}: expected {{x, y}}, got {v!r}", name)
        x = p.default[0] if x is _ABSENT else x
        y = p.default[1] if y is _ABSENT else y
        cx = clamp(_number(x, f"{name}.x"))
        cy = clamp(_number(y, f"{name}.y"))
        return {"x": cx, "y": cy}
    if p.kind == "pair":
        if isinstance(v, dict) and set(v) == {"x", "y"}:
            v = [v["x"], v["y"]]
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ParamError(f"{name}: expected [lo, hi], got {v!r}", name)
        return [clamp(_number(v[0], f"{name}[0]")), clamp(_number(v[1], f"{name}[1]"))]
    raise AssertionError(p.kind)


def wrap_angle(x: float) -> float:
    """Radians → [-π, π)."""
    return (x + PI) % (2 * PI) - PI


def _default_value(p: Param) -> Any:
    if p.kind == "vec2":
        return {"x": p.default[0], "y": p.default[1]}
    return list(p.default) if p.kind == "pair" else p.default


def default_params() -> dict[str, Any]:
    """The scene's defaults in the flat spelling, with the default layer (what the
    original draws for an empty params object)."""
    out: dict[str, Any] = {p.key: _default_value(p) for p in SCHEMA}
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
        v = _unwrap(raw.get(p.key, _ABSENT))
        if v is not _ABSENT and v is not None:
            out[p.key] = _value(p, v, p.key, clamped)
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
            v = _unwrap(rl.get(p.key, _ABSENT))
            name = f"layers[{i}].{p.key}"
            if v is _ABSENT or v is None:
                if p.key in LAYER_REQUIRED:
                    layer[p.key] = _default_value(p)
                continue
            layer[p.key] = _value(p, v, name, clamped)
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
        sub = _unwrap(raw.pop(nested, None))
        if isinstance(sub, dict):
            for key, short in mapping.items():
                if short in sub and key not in raw:
                    raw[key] = sub[short]
        elif sub not in (None, _ABSENT):
            raise ParamError(f"{nested}: expected an object", nested)
    if "layers" not in raw:
        return raw, None
    layers = _unwrap(raw.get("layers", []))
    if layers is _ABSENT or layers is None:
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
            if _unwrap(v) is _ABSENT:
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
        if text and set(text) <= _DIGITS:  # only too long: a huge index
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


# ----------------------------------------------------------------------------------
# Encoding for the models


@dataclass
class Encoded:
    """Params as arrays for the models. Continuous values are min-max normalised to
    [0, 1] over the hard (optimiser) range; absent layer overrides hold the base's
    effective value, so every column is meaningful; `layer_opt` says which are set.

    cont:      (NC,)            float32 in [0, 1], see CONT_NAMES
    cat:       (NK,)            int64 option index per CAT_KEYS
    bools:     (NB,)            float32 0/1 per BOOL_KEYS
    n_layers:  ()               int64 in 0..MAX_LAYERS
    layer_cont:(L, NLC)         float32 in [0, 1], see LAYER_CONT_COMPONENTS
    layer_opt: (L, NLO)         float32 0/1, presence of each LAYER_OPTIONAL key
    layer_geom:(L,)             int64 geometry index (effective: override or base)
    """

    cont: np.ndarray
    cat: np.ndarray
    bools: np.ndarray
    n_layers: np.ndarray
    layer_cont: np.ndarray
    layer_opt: np.ndarray
    layer_geom: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(self.__dict__)


NUM_CONT = len(CONT_COMPONENTS)
NUM_LAYER_CONT = len(LAYER_CONT_COMPONENTS)
NUM_LAYER_OPT = len(LAYER_OPTIONAL)
CAT_SIZES = tuple(len(PARAM[k].options) for k in CAT_KEYS)


def _norm(p: Param, x: float) -> float:
    if p.periodic:
        x = wrap_angle(x)
    lo, hi = p.clamp_lo, p.clamp_hi
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def _denorm(p: Param, u: float) -> float:
    u = min(1.0, max(0.0, float(u)))
    x = p.clamp_lo + u * (p.clamp_hi - p.clamp_lo)
    return wrap_angle(x) if p.periodic else x


def _get_component(p: Param, v: Any, c: int) -> float:
    if p.kind == "vec2":
        return float(v["xy"[c]])
    if p.kind == "pair":
        return float(v[c])
    if p.kind == "color":
        return color_to_rgb(v)[c]
    return float(v)


def _encode_scalar(p: Param, v: Any, c: int) -> float:
    x = _get_component(p, v, c)
    return x if p.kind == "color" else _norm(p, x)


def encode_params(params: dict[str, Any]) -> Encoded:
    """Flat params → Encoded arrays (see Encoded). Raises ParamError beyond
    MAX_LAYERS layers (the models' encoding holds no more)."""
    flat = validate_params(params)
    if len(flat["layers"]) > MAX_LAYERS:
        raise ParamError(
            f"layers: the models encode at most {MAX_LAYERS}, got "
            f"{len(flat['layers'])}",
            "layers",
        )
    cont = np.array(
        [_encode_scalar(PARAM[k], flat[k], c) for k, c in CONT_COMPONENTS], np.float32
    )
    cat = np.array([PARAM[k].options.index(flat[k]) for k in CAT_KEYS], np.int64)
    bools = np.array([float(flat[k]) for k in BOOL_KEYS], np.float32)
    layer_cont = np.zeros((MAX_LAYERS, NUM_LAYER_CONT), np.float32)
    layer_opt = np.zeros((MAX_LAYERS, NUM_LAYER_OPT), np.float32)
    layer_geom = np.zeros(MAX_LAYERS, np.int64)
    for i, layer in enumerate(flat["layers"]):
        eff = {**{k: flat[k] for k in LAYER_OPTIONAL}, **layer}
        for j, (k, c) in enumerate(LAYER_CONT_COMPONENTS):
            layer_cont[i, j] = _encode_scalar(LAYER_PARAM[k], eff[k], c)
        for j, k in enumerate(LAYER_OPTIONAL):
            layer_opt[i, j] = float(k in layer)
        layer_geom[i] = GEOMETRIES.index(eff["geometry"])
    n = np.array(len(flat["layers"]), np.int64)
    return Encoded(cont, cat, bools, n, layer_cont, layer_opt, layer_geom)


def decode_params(enc: Encoded | dict[str, Any]) -> dict[str, Any]:
    """Encoded arrays (or a dict of them; torch tensors work too) → flat params.

    Continuous values are clipped to [0, 1] and de-normalised, ints rounded,
    bools thresholded at 0.5, layer overrides kept where layer_opt > 0.5.
    """
    d = enc.as_dict() if isinstance(enc, Encoded) else enc
    a = {k: np.asarray(_to_numpy(v)) for k, v in d.items()}
    out = default_params()
    out["layers"] = []
    vals: dict[str, list[float]] = {}
    for (k, _c), u in zip(CONT_COMPONENTS, a["cont"].tolist(), strict=False):
        vals.setdefault(k, []).append(u)
    for k, us in vals.items():
        out[k] = _decode_value(PARAM[k], us)
    for k, idx in zip(CAT_KEYS, a["cat"].tolist(), strict=False):
        out[k] = PARAM[k].options[int(idx)]
    for k, b in zip(BOOL_KEYS, a["bools"].tolist(), strict=False):
        out[k] = bool(b > 0.5)
    n = int(np.clip(int(a["n_layers"]), 0, MAX_LAYERS))
    for i in range(n):
        lvals: dict[str, list[float]] = {}
        for (k, _c), u in zip(
            LAYER_CONT_COMPONENTS, a["layer_cont"][i].tolist(), strict=False
        ):
            lvals.setdefault(k, []).append(u)
        layer: dict[str, Any] = {}
        for k in LAYER_REQUIRED:
            layer[k] = _decode_value(LAYER_PARAM[k], lvals[k])
        for j, k in enumerate(LAYER_OPTIONAL):
            if a["layer_opt"][i, j] > 0.5:
                if k == "geometry":
                    layer[k] = GEOMETRIES[int(a["layer_geom"][i])]
                else:
                    layer[k] = _decode_value(LAYER_PARAM[k], lvals[k])
        out["layers"].append(layer)
    return out


def _decode_value(p: Param, us: list[float]) -> Any:
    if p.kind == "color":
        return rgb_to_color(us)
    if p.kind == "vec2":
        return {"x": _denorm(p, us[0]), "y": _denorm(p, us[1])}
    if p.kind == "pair":
        return [_denorm(p, us[0]), _denorm(p, us[1])]
    x = _denorm(p, us[0])
    return round(x) if p.kind == "int" else x


def _to_numpy(v: Any) -> Any:
    if hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    return v


# ----------------------------------------------------------------------------------
# Sampling and breeding (pipeline.md "Sampling")


def _sample_value(p: Param, rng: random.Random) -> Any:
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
    return rgb_to_color(colorsys.hsv_to_rgb(h, s, v))


# Parameters sampled at the default most of the time, so random data resembles scenes.
ENABLE_P = {"noiseEnabled": 0.35, "ditherEnabled": 0.35, "crtEnabled": 0.1}


def sample_layer(rng: random.Random) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for p in LAYER_SCHEMA:
        if p.key in LAYER_REQUIRED or rng.random() < LAYER_OPTIONAL_P.get(
            p.key, LAYER_OPTIONAL_P_DEFAULT
        ):
            layer[p.key] = _sample_value(p, rng)
    return layer


def sample_params(rng: random.Random, max_layers: int = MAX_LAYERS) -> dict[str, Any]:
    """Random flat params drawn as pipeline.md says (biases, layer weights, guard).

    Layers: 0 with no weight in the spec, so 1-5 with weights 4:3:2:1:1."""
    out = default_params()
    for p in SCHEMA:
        if p.key in ENABLE_P:
            out[p.key] = rng.random() < ENABLE_P[p.key]
        else:
            out[p.key] = _sample_value(p, rng)
    counts = list(range(1, max_layers + 1))
    n = (
        rng.choices(counts, weights=LAYER_COUNT_WEIGHTS[: len(counts)])[0]
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
        return [json.loads(json.dumps(DEFAULT_LAYER))]
    if u < 0.5:
        s = rng.choice((1.0, 1.0, 1.6, rng.uniform(0.5, 2.0)))
        return [{**ident, "scale": {"x": s, "y": s}}]
    if u < 0.7:
        k = rng.randint(2, 5)
        layers = [
            {
                **ident,
                "rotation": wrap_angle(2 * PI * j / k),
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
        n = rng.choices(range(1, MAX_LAYERS + 1), weights=LAYER_COUNT_WEIGHTS)[0]
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
        p = PARAM[key]
        if rng.random() < REFS_LIKE_DEFAULT_P:
            return p.default
        return rng.choice([o for o in p.options if o != p.default])

    def mostly(p: float, calm: Any, wide: Any) -> Any:
        return calm() if rng.random() < p else wide()

    out = default_params()
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
        origin="center" if rng.random() < 0.45 else rng.choice(ORIGINS[1:]),
        scale=rng.uniform(0.85, 1.5),
        rotation=mostly(0.85, lambda: 0.0, lambda: rng.uniform(-PI, PI)),
        position=mostly(
            0.85,
            lambda: {"x": 0.0, "y": 0.0},
            lambda: {"x": rng.uniform(-0.6, 0.6), "y": rng.uniform(-0.6, 0.6)},
        ),
        geometry=rng.choice(GEOMETRIES),
        geoWidth=rng.uniform(0.005, 0.1),
        startAngle=mostly(0.9, lambda: 0.0, lambda: rng.uniform(-PI, PI)),
        gradientAngle=mostly(0.5, lambda: 0.0, lambda: rng.uniform(-PI, PI)),
        gradientRange=mostly(
            0.8,
            lambda: list(PARAM["gradientRange"].default),
            lambda: _sample_value(PARAM["gradientRange"], rng),
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


def max_repetitions(scale_factor: float) -> int:
    """Blow-up guard: for sf > 1.01, repetitions ≤ max(10, ⌊6.9 / ln sf⌋)."""
    if scale_factor <= 1.01:
        return int(PARAM["repetitions"].hi)
    return max(10, math.floor(6.9 / math.log(scale_factor)))


def apply_guard(params: dict[str, Any]) -> dict[str, Any]:
    """Cap repetitions by the largest scaleFactor in use (base or any layer)."""
    sfs = [params["scaleFactor"]] + [
        layer["scaleFactor"] for layer in params["layers"] if "scaleFactor" in layer
    ]
    params["repetitions"] = min(params["repetitions"], max_repetitions(max(sfs)))
    return params


def _jitter(p: Param, v: Any, rng: random.Random, jitter: tuple[float, float]) -> Any:
    """Multiply numbers by U(jitter), clamp to the sampling range (hard range for
    values already outside it)."""

    def one(x: float) -> float:
        y = x * rng.uniform(*jitter)
        if p.periodic:
            return wrap_angle(y)
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
        chosen.append(validate_params(parents[i]))
        if len(idx) > 1:
            idx.remove(i)
    child = sample_params(rng)
    for p in SCHEMA:
        if rng.random() < p_copy:
            v = rng.choice(chosen)[p.key]
            child[p.key] = _jitter(p, v, rng, jitter)
        if p.kind == "cat" and rng.random() < p_redraw_cat:
            child[p.key] = rng.choice(p.options)
    if rng.random() < p_copy:
        src = rng.choice(chosen)["layers"]
        child["layers"] = [
            {k2: _jitter(LAYER_PARAM[k2], v2, rng, jitter) for k2, v2 in layer.items()}
            for layer in src
        ]
    for layer in child["layers"]:
        if "geometry" in layer and rng.random() < p_redraw_cat:
            layer["geometry"] = rng.choice(GEOMETRIES)
    return apply_guard(validate_params(child))


# ----------------------------------------------------------------------------------
# Data folders: which schema their params were written for

DATA_SCHEMA_FILE = "schema.json"  # DIR/schema.json beside DIR/images and DIR/params


class DataSchemaError(ValueError):
    """A data folder written for another parameter schema; the message says to
    regenerate it."""


def write_data_schema(folder: str | Path) -> None:
    """Record this code's schema in a data folder (generate.py, when it writes)."""
    write_json(
        Path(folder) / DATA_SCHEMA_FILE,
        {"version": SCHEMA_VERSION, "hash": schema_hash()},
    )


def check_data_schema(folder: str | Path) -> None:
    """Raise DataSchemaError when a data folder's params were written for another
    schema: its DIR/schema.json names another one, or (folders from before the
    marker) a params file lacks keys this schema writes. An empty folder passes."""
    folder = Path(folder)
    marker = folder / DATA_SCHEMA_FILE
    if marker.exists():
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError):
            meta = {}
        if not isinstance(meta, dict):
            meta = {}
        if meta.get("version") == SCHEMA_VERSION and meta.get("hash") == schema_hash():
            return
        found = f"v{meta.get('version')} ({meta.get('hash')})"
    else:
        first = next(iter(sorted((folder / "params").glob("*.json"))), None)
        if first is None:
            return
        try:
            keys = set(json.loads(first.read_text()))
        except (OSError, ValueError):
            return  # unreadable pairs are skipped one by one
        if {p.key for p in SCHEMA} <= keys:
            return
        found = (
            "v1 (params without "
            + ", ".join(sorted({p.key for p in SCHEMA} - keys)[:3])
            + ")"
        )
    raise DataSchemaError(
        f"{folder}: data written for parameter schema {found}; this code has "
        f"v{SCHEMA_VERSION} ({schema_hash()}), whose params mean other pictures. "
        f"Regenerate it: move or delete {folder}, then run `make generate`"
    )


# ----------------------------------------------------------------------------------
# References


class RefsError(ValueError):
    """A refs file line that cannot be read: the message names the file and line."""


def load_refs(path: str | Path) -> list[dict[str, Any]]:
    """refs.jsonl (one Leva-prefixed object a line; blank lines skipped) → flat params.

    A line that is not JSON or not valid params raises RefsError naming file and line.
    A missing file is an empty list."""
    return [p for _, p in load_refs_numbered(path)]


def load_refs_numbered(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """Like load_refs, with each ref's 1-based line number."""
    path = Path(path)
    out: list[tuple[int, dict[str, Any]]] = []
    for n, obj in _jsonl(path):
        try:
            out.append((n, validate_params(obj)))
        except ParamError as e:
            raise RefsError(f"{path} line {n}: {e.message}") from None
    return out


def read_refs_lines(path: str | Path) -> dict[int, Any]:
    """{1-based line number: the line's JSON as written} of a refs file (blank lines
    left out; RefsError as load_refs). refs-scored.jsonl stores these, as the
    original pipeline does, so that its score map keys on the same objects."""
    return dict(_jsonl(Path(path)))


def load_scored_refs(path: str | Path) -> list[tuple[dict[str, Any], float]]:
    """refs-scored.jsonl lines {"params": ..., "score": s} → [(flat params, score)].

    params is the ref line as written (the original pipeline's layout: prefixed);
    files from before hold flat params, read just as well (any spelling). A line
    that is not such an object raises RefsError naming file and line; a missing file
    is an empty list."""
    path = Path(path)
    out: list[tuple[dict[str, Any], float]] = []
    for n, obj in _jsonl(path):
        score = obj.get("score") if isinstance(obj, dict) else None
        if (
            not isinstance(obj, dict)
            or "params" not in obj
            or isinstance(score, bool)
            or not isinstance(score, (int, float))
            or not math.isfinite(score)
        ):
            raise RefsError(
                f'{path} line {n}: expected {{"params": {{...}}, "score": a number}}'
            )
        try:
            out.append((validate_params(obj["params"]), float(score)))
        except ParamError as e:
            raise RefsError(f"{path} line {n}: {e.message}") from None
    return out


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, decoded JSON) of each non-blank line of a JSON-lines
    file; nothing for a missing file. RefsError names the file, and the line, when
    the file cannot be read, a line is not UTF-8 or not JSON. Lines end at LF, CR or
    CRLF only (a JSON string may hold U+2028), as `refs.py rm` counts them."""
    if not path.exists():
        return
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RefsError(f"{path}: cannot read it ({e.strerror})") from None
    lines = data.removeprefix(codecs.BOM_UTF8).splitlines()
    for n, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RefsError(
                f"{path} line {n}: not UTF-8 text (byte {e.start + 1})"
            ) from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise RefsError(
                f"{path} line {n}: not JSON ({e.msg} at column {e.colno})"
            ) from None
        except RecursionError:
            raise RefsError(f"{path} line {n}: not JSON (nested too deeply)") from None
        except ValueError as e:  # an integer of more than 4300 digits
            raise RefsError(f"{path} line {n}: not readable JSON ({e})") from None
        yield n, obj


# Ratings: the stars a person gives refs in the gallery (gallery.py), kept in a
# sidecar beside the refs file so that refs.jsonl stays the source of truth and keeps
# its format. Keyed by ref_key(params); a rating whose ref is gone is ignored.

RATINGS_NAME = "ratings.json"


def ref_key(params: dict[str, Any]) -> str:
    """Short stable key of a ref: sha256 of canonical_json, 16 hex digits."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()[:16]


def ratings_path(refs: str | Path) -> Path:
    """references/refs.jsonl → references/ratings.json."""
    return Path(refs).with_name(RATINGS_NAME)


def load_ratings(refs: str | Path) -> dict[str, int]:
    """{ref_key: stars 1-5} from the ratings file beside `refs` ({} when there is
    none); RefsError naming the file when it is not such an object."""
    path = ratings_path(refs)
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RefsError(f"{path}: not a ratings file ({e})") from None
    ratings = obj.get("ratings") if isinstance(obj, dict) else None
    if not isinstance(ratings, dict) or not all(
        type(v) is int and 1 <= v <= 5 for v in ratings.values()
    ):
        raise RefsError(f'{path}: expected {{"ratings": {{key: stars 1-5}}}}')
    return ratings


def rating_weight(stars: int | None) -> float:
    """A rating as a breeding-weight factor, 2 ** (stars - 3): 1 star 0.25, 3 stars
    (or unrated) 1, 5 stars 4."""
    return 1.0 if stars is None else 2.0 ** (stars - 3)


def rated_weights(
    parents: Sequence[dict[str, Any]],
    refs: str | Path,
    weights: Sequence[float] | None = None,
) -> list[float] | None:
    """Parent weights for breed: `weights` (scores; None = 1 each) times each
    parent's rating factor from the ratings beside `refs`. None (uniform) when
    neither weights nor any rating apply."""
    ratings = load_ratings(refs)
    stars = [ratings.get(ref_key(p)) for p in parents] if ratings else []
    if weights is None and not any(s is not None for s in stars):
        return None
    base = list(weights) if weights is not None else [1.0] * len(parents)
    if not stars:
        return base
    return [w * rating_weight(s) for w, s in zip(base, stars, strict=True)]


# ----------------------------------------------------------------------------------
# Files


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename: never a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def write_png(path: str | Path, image: Any, **save_kw: Any) -> None:
    """A PIL image → a PNG file, written atomically; save_kw go to Image.save."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG", **save_kw)
    atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------------------
# The renderer client: the one way the pipeline talks to a renderer.


class RendererError(RuntimeError):
    """The renderer could not be reached or refused the request; names the URL."""


def renderer_url(url: str | None = None) -> str:
    """--renderer-url, else $RENDERER_URL, else http://localhost:3000/api/raster."""
    return url or os.environ.get("RENDERER_URL") or DEFAULT_RENDERER_URL


def _sibling(url: str, path: str) -> str:
    u = urlparse(url)
    return u._replace(path=path, query="").geturl()


@dataclass
class RendererClient:
    """HTTP client for POST /api/raster with a connection pool, retries with
    exponential backoff on connection errors, timeouts and 5xx, and a clear error
    naming the URL when it gives up. 4xx answers are not retried (bad params).

    timeout: seconds one try may wait for an answer; deadline: seconds one render may
    take in all, tries and the waits between them together (so a renderer that
    accepts connections and never answers is reported after about `deadline` s)."""

    url: str = field(default_factory=renderer_url)
    timeout: float = 15.0
    deadline: float = 30.0
    retries: int = 4
    backoff: float = 0.25
    pool: int = 8

    def __post_init__(self) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        u = urlparse(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RendererError(
                f"{self.url!r} is not a renderer URL: expected one like "
                f"{DEFAULT_RENDERER_URL} (--renderer-url or RENDERER_URL)"
            )
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=self.pool, pool_maxsize=self.pool)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def render_png(self, params: dict[str, Any], size: int = 256) -> bytes:
        """Params (any spelling) → PNG bytes at size × size (sent prefixed)."""
        import requests

        body = to_prefixed(params)
        last = ""
        end = time.monotonic() + self.deadline
        tries = 0
        for attempt in range(self.retries + 1):
            wait = min(self.timeout, end - time.monotonic())
            if wait <= 0:
                break
            tries += 1
            try:
                r = self._session.post(
                    self.url, params={"size": size}, json=body, timeout=wait
                )
            except requests.Timeout:
                last = f"no answer within {wait:.3g} s"
            except requests.RequestException as e:
                last = _os_reason(e) or type(e).__name__
            else:
                if r.status_code == 200:
                    if not r.content.startswith(PNG_SIGNATURE):
                        kind = r.headers.get("Content-Type", "no Content-Type")
                        raise RendererError(
                            f"renderer at {self.url} answered 200 but not a PNG "
                            f"({kind}): is that URL a renderer's /api/raster?"
                        )
                    return r.content
                if 400 <= r.status_code < 500:
                    raise RendererError(
                        f"renderer at {self.url} refused the request: {_error_text(r)}"
                    )
                last = f"HTTP {r.status_code}: {_error_text(r)}"
            if attempt < self.retries:
                time.sleep(
                    max(0.0, min(self.backoff * 2**attempt, end - time.monotonic()))
                )
        said = f"{tries} tries" if tries != 1 else "1 try"
        raise RendererError(
            f"renderer at {self.url} did not answer after {said} ({last}). "
            "Start it with `make renderer`, or set RENDERER_URL."
        )

    def render(self, params: dict[str, Any], size: int = 256) -> np.ndarray:
        """Params → float32 image (size, size, 3) in [0, 1]."""
        return png_to_array(self.render_png(params, size))

    def health(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """GET /api/health as a dict, or None if nothing answers."""
        import requests

        try:
            r = self._session.get(_sibling(self.url, "/api/health"), timeout=timeout)
            return r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def close(self) -> None:
        self._session.close()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _os_reason(e: BaseException) -> str:
    """The operating system's reason behind a requests error ('Connection refused',
    'Name or service not known'), found down its chain of causes; '' if none."""
    todo, seen = [e], set()
    while todo:
        x = todo.pop(0)
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, OSError) and isinstance(x.errno, int) and x.strerror:
            return x.strerror
        more = (getattr(x, "reason", None), x.__cause__, x.__context__, *x.args)
        todo += [y for y in more if isinstance(y, BaseException)]
    return ""


def _error_text(r: Any) -> str:
    """What an error answer says: its JSON "error", else the start of its body."""
    try:
        obj = r.json()
    except ValueError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("error"), str):
        return obj["error"]
    return " ".join(r.text[:200].split()) or f"HTTP {r.status_code}"


def png_to_array(data: bytes) -> np.ndarray:
    """PNG bytes → float32 (H, W, 3) in [0, 1]."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


def contact_sheet(
    images: Sequence[Any],
    labels: Sequence[str] | None = None,
    cols: int = 8,
    cell: int | None = None,
) -> Any:
    """A grid of images with an optional caption under each → PIL.Image (RGB).

    images: PIL images or arrays (H, W) / (H, W, 3), float in [0, 1] or uint8.
    cell: side of each tile in px (default: the first image's width); tiles are
    resized to it (nearest when enlarging, so thin lines stay crisp). Tiles sit on a
    dark grey grid, so an all-black image is still visibly a tile. Captions are
    clipped to their tile's width.
    """
    from PIL import Image, ImageDraw, ImageFont

    tiles: list[Image.Image] = []
    for im in images:
        if not isinstance(im, Image.Image):
            a = np.asarray(im)
            if a.dtype != np.uint8:
                a = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
            im = Image.fromarray(a)
        tiles.append(im.convert("RGB"))
    cols = max(1, min(cols, len(tiles))) if tiles else 1
    rows = max(1, math.ceil(len(tiles) / cols))
    side = cell or (tiles[0].width if tiles else 64)
    gap, caption = 2, 12 if labels else 0
    sheet = Image.new(
        "RGB",
        (cols * (side + gap) + gap, rows * (side + caption + gap) + gap),
        (40, 40, 40),
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, tile in enumerate(tiles):
        x = gap + (k % cols) * (side + gap)
        y = gap + (k // cols) * (side + caption + gap)
        if tile.size != (side, side):
            enlarge = tile.width < side
            tile = tile.resize(
                (side, side),
                Image.Resampling.NEAREST if enlarge else Image.Resampling.LANCZOS,
            )
        sheet.paste(tile, (x, y))
        if labels and k < len(labels):
            text = str(labels[k])
            while len(text) > 1 and draw.textlength(text, font=font) > side - 2:
                text = text[:-1]  # clip the caption to its tile
            draw.text((x + 1, y + side), text, fill=(220, 220, 220), font=font)
    return sheet


def load_bench(name: str) -> Any:
    """bench/NAME.py imported as the module `bench_NAME` (the benchmarks are scripts, not
    a package); tests and other benches call their pieces through it."""
    import importlib.util

    mod_name = f"bench_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(
        mod_name, ROOT / "bench" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod  # dataclasses look their module up while it loads
    spec.loader.exec_module(mod)
    return mod


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_renderer(
    port: int, host: str = "127.0.0.1", quiet: bool = True
) -> subprocess.Popen[bytes]:
    """Start the bundled renderer (renderer/server.py) on host:port and wait until it
    answers /api/health. The caller stops it (`stop_renderer`). A renderer that
    cannot start, or an interruption while waiting, leaves no process behind."""
    env = {**os.environ, "PORT": str(port), "RENDERER_HOST": host}
    out = subprocess.DEVNULL if quiet else None
    # Its stderr goes to a file (only errors are logged there), so that a renderer
    # that dies at start can say why: a missing library, a busy port.
    err: Any = tempfile.TemporaryFile() if quiet else None  # noqa: SIM115 (closed below)
    # Its own session: a Ctrl-C in the terminal reaches the pipeline, which finishes
    # its in-flight renders and then stops the renderer itself.
    proc = subprocess.Popen(
        # --parent-pid: it stops by itself if this process dies without stopping
        # it (kill -9), instead of staying up orphaned
        [sys.executable, "-m", "renderer.server", "--parent-pid", str(os.getpid())],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    url_host = f"[{host}]" if ":" in host else host
    client = RendererClient(url=f"http://{url_host}:{port}/api/raster")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if client.health(timeout=0.5) is not None:
                return proc
            if proc.poll() is not None:
                why = _tail(err)
                hint = (
                    "is another program using the port? Free it, or set RENDERER_URL"
                    if not why or "in use" in why
                    else "set RENDERER_URL to a renderer that runs"
                )
                raise RendererError(
                    f"the bundled renderer could not start on {url_host}:{port} "
                    f"(exit code {proc.returncode}"
                    + (f": {why}" if why else "")
                    + f"): {hint}"
                )
            time.sleep(0.1)
        raise RendererError(
            f"the bundled renderer did not answer on {url_host}:{port} within 30 s"
        )
    except BaseException:
        stop_renderer(proc)
        raise
    finally:
        client.close()
        if err is not None:
            err.close()  # the server keeps writing to its own descriptor


def _tail(f: Any) -> str:
    """The last non-empty line of a captured stderr file ('' when there is none)."""
    if f is None:
        return ""
    f.seek(0)
    lines = f.read()[-4096:].decode("utf-8", "replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def stop_renderer(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a renderer that start_renderer started: SIGTERM (it stops its workers),
    SIGKILL when it has not exited after `timeout` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def ensure_renderer(url: str | None = None, log: Any = print) -> Iterator[str]:
    """Yield a renderer URL that answers. When nothing answers at `url` and it is on
    this machine, start the bundled renderer on its host and port, say so, and stop
    it at the end. A remote URL is used as it is (errors come with the first
    request)."""
    url = renderer_url(url)
    client = RendererClient(url=url, retries=0)
    try:
        if client.health() is not None:
            yield url
            return
    finally:
        client.close()
    u = urlparse(url)
    if u.hostname not in ("localhost", "127.0.0.1", "::1"):
        yield url
        return
    port = u.port or 80
    log(
        f"renderer: nothing answers at {url}; starting the bundled renderer on port {port}"
    )
    proc = start_renderer(port, "::1" if u.hostname == "::1" else "127.0.0.1")
    try:
        yield url
    finally:
        stop_renderer(proc)
