"""One scene parameter: its definition (Param) and how a JSON value becomes a valid one.

The rules a single value obeys wherever it comes from (a request body, a refs file, a
command-line flag): strict whole numbers, finite numbers, hex colours, angles wrapped
into [-π, π), the clamping to a parameter's range, and the errors that name the
offending field. The table of every parameter and the whole parameter sets live in
schema.py, which re-exports everything here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PI = math.pi


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
    draw_lo, draw_hi: where the original's own controls allowed more over their
        history than [clamp_lo, clamp_hi] (its Leva panel had Noise.opacity in 0–1
        and Noise.size in 0.1–3 before narrowing them to 0.3 and 0.55, and its
        refs were saved then): the range parse_params keeps and the renderer draws.
        The models encode and the optimiser searches [clamp_lo, clamp_hi] still (a
        value beyond it encodes at the edge), so neither these fields nor the
        schema hash that checkpoints check mention the wider range.
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
    draw_lo: float | None = None
    draw_hi: float | None = None

    @property
    def clamp_lo(self) -> float:
        return self.lo if self.hard_lo is None else self.hard_lo

    @property
    def clamp_hi(self) -> float:
        return self.hi if self.hard_hi is None else self.hard_hi

    @property
    def accept_range(self) -> tuple[float, float]:
        """(lo, hi) that parse_params clamps to: the draw range where there is
        one, else [clamp_lo, clamp_hi]."""
        lo = self.clamp_lo if self.draw_lo is None else self.draw_lo
        return lo, self.clamp_hi if self.draw_hi is None else self.draw_hi


# ----------------------------------------------------------------------------------
# Strict numbers: the one place where text from outside (keys, sizes, colours, IDs,
# line numbers, HTTP headers) becomes a number. ASCII digits only: no sign, space,
# underscore, "0x", superscripts or other scripts' digits (all of which int() and
# str.isdigit() let through), and a bounded length, so a 5000-digit "number" is an
# error message rather than a traceback or a huge int.


class NumberError(ValueError):
    """Text that is not a strict number; the message names what was being read."""


DIGITS = frozenset("0123456789")
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def clip_text(text: Any, n: int = 40) -> str:
    """repr() of a value, cut to about n characters (for error messages and logs)."""
    r = repr(text)
    return r if len(r) <= n else f"{r[: n - 4]}...{r[-1]} ({len(str(text))} chars)"


def parse_uint(text: Any, name: str, max_digits: int = 9, base: int = 10) -> int:
    """ASCII digits (0-9, or 0-9a-fA-F for base 16), 1 to max_digits of them → int.

    Raises NumberError naming `name` for anything else: "", "+1", " 1", "1_0",
    "0x1f", "²", "٣", or more than max_digits digits."""
    allowed = HEX_DIGITS if base == 16 else DIGITS
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
    return len(text) in (4, 7) and text[0] == "#" and set(text[1:]) <= HEX_DIGITS


class ParamError(ValueError):
    """Bad parameters; `field` names the offending key (the renderer answers 400)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


ABSENT = object()


def unwrap(v: Any) -> Any:
    """Leva's {"value": v, "disabled": bool} wrapper → v, or ABSENT when disabled."""
    if isinstance(v, dict) and "value" in v and set(v) <= {"value", "disabled"}:
        if v.get("disabled") is True:
            return ABSENT
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


def parse_value(p: Param, v: Any, name: str, clamped: list[str]) -> Any:
    """Check and normalise one value of parameter p; records clamping in `clamped`."""

    def clamp(x: float) -> float:
        if not p.clamp:
            return x
        if p.periodic:
            return wrap_angle(x)
        lo, hi = p.accept_range
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
            x = unwrap(v.get("x", p.default[0]))
            y = unwrap(v.get("y", p.default[1]))
        elif isinstance(v, (list, tuple)) and len(v) == 2:
            x, y = v
        else:
            raise ParamError(f"{name}: expected {{x, y}}, got {v!r}", name)
        x = p.default[0] if x is ABSENT else x
        y = p.default[1] if y is ABSENT else y
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


def default_value(p: Param) -> Any:
    """p's default in the flat spelling (a fresh dict or list for vec2 and pair)."""
    if p.kind == "vec2":
        return {"x": p.default[0], "y": p.default[1]}
    return list(p.default) if p.kind == "pair" else p.default
