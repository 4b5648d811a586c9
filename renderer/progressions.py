"""The progression rules of the scene (docs/scene.md, "Progressions"): per-instance
scale, rotation, opacity and offset, and the gradient's falloff.

sf = scaleFactor, rf = rotationFactor, af = alphaFactor, n = repetitions; instance
i = 0..n-1. All functions are pure and vectorised over i.
"""

from __future__ import annotations

import numpy as np

FIBONACCI = (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)


def scale_progression(kind: str, sf: float, n: int) -> np.ndarray:
    """Scale s_i of instances i = 0..n-1, float64 (n,). May be huge (sf^499) or
    negative (additive with sf < 1); the drawing skips what cannot be seen."""
    i = np.arange(n, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if kind == "exponential":
            return np.power(sf, i)
        if kind == "linear":
            return np.maximum(0.01, 1 - 0.1 * i * (1 - sf))
        if kind == "additive":
            return 1 + i * (sf - 1)
        if kind == "fibonacci":
            return np.power(sf, i * np.abs(np.sin(0.1618 * i)))
        if kind == "golden":
            return np.power(sf, 0.382 * i)
        if kind == "sine":
            return np.power(sf, i * (0.3 + 0.7 * np.abs(np.sin(0.2 * i))))
    raise ValueError(f"unknown scaleProgression {kind!r}")


def rotation_progression(kind: str, rf: float, n: int) -> np.ndarray:
    """Rotation r_i in degrees of instances i = 0..n-1, float64 (n,)."""
    i = np.arange(n, dtype=np.float64)
    if kind == "linear":
        return 360 * rf * i
    if kind == "golden-angle":
        return 137.5 * rf * i
    if kind == "fibonacci":
        return np.array(FIBONACCI, np.float64)[np.arange(n) % 12] * rf * 15
    if kind == "sine":
        return np.sin(0.2 * i) * rf * 180
    raise ValueError(f"unknown rotationProgression {kind!r}")


def alpha_progression(kind: str, af: float, n: int) -> np.ndarray:
    """Opacity a_i in [0.02, 1] of instances i = 0..n-1, float64 (n,)."""
    i = np.arange(n, dtype=np.float64)
    if kind == "exponential":
        a = np.maximum(0.02, np.exp(-0.3 * i * (1 - af)))
    elif kind == "linear":
        a = np.maximum(0.02, 1 - i * (1 - af) / n)
    elif kind == "inverse":
        a = np.maximum(0.02, af + (1 - af) * i / n)
    else:
        raise ValueError(f"unknown alphaProgression {kind!r}")
    return np.minimum(a, 1.0)


def offset_progression(
    kind: str,
    s: np.ndarray,
    x_step: float,
    y_step: float,
    coupled: bool,
    origin: str,
    step_factor: float,
) -> np.ndarray:
    """Offsets p_i (world units inside the group), float64 (n, 2).

    index: 1.5·i·(xStep, yStep), times s_i when coupled; scale: 1.5·|1 − s_i|·(xStep,
    yStep). Then the origin (top-*: y → 1 − y, bottom-*: y → y − 1, *-left: x → x − 1,
    *-right: x → 1 − x), then both times stepFactor."""
    n = len(s)
    i = np.arange(n, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "index":
            k = 1.5 * i * (s if coupled else 1.0)
        elif kind == "scale":
            k = 1.5 * np.abs(1 - s)
        else:
            raise ValueError(f"unknown positionProgression {kind!r}")
        x, y = k * x_step, k * y_step
        if origin.startswith("top-"):
            y = 1 - y
        elif origin.startswith("bottom-"):
            y = y - 1
        if origin.endswith("-left"):
            x = x - 1
        elif origin.endswith("-right"):
            x = 1 - x
        return np.stack([x * step_factor, y * step_factor], axis=1)


DEFAULT_GRADIENT_RANGE = (0.2, 1.0)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """GLSL smoothstep: t = clamp((x − e0) / (e1 − e0), 0, 1), t²(3 − 2t). Works with
    e0 > e1 (falls instead of rising); e0 = e1 is a step at e0."""
    x = np.asarray(x, np.float64)
    if e1 == e0:
        return (x >= e0).astype(np.float64)
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gradient_brightness(
    g: np.ndarray | float, gradient_range: tuple[float, float] = DEFAULT_GRADIENT_RANGE
) -> np.ndarray:
    """Brightness factor 1 − smoothstep(lo, hi, 0.5 + 0.5·|g|) for g = q·(sin θ, cos θ),
    q an element-local point, θ = gradientAngle, (lo, hi) = gradientRange."""
    lo, hi = gradient_range
    return 1 - smoothstep(lo, hi, 0.5 + 0.5 * np.abs(np.asarray(g, np.float64)))


def instance_transforms(
    n: int,
    scale_kind: str,
    rotation_kind: str,
    alpha_kind: str,
    position_kind: str,
    scale_factor: float,
    rotation_factor: float,
    alpha_factor: float,
    step_factor: float,
    x_step: float,
    y_step: float,
    coupled: bool,
    origin: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every instance of one chain: (s, r, p, a) = scale (n,), rotation in radians
    (n,), offset (n, 2) in the chain's group units, opacity (n,). Instance i maps a
    local point q to p_i + s_i·R(r_i)·q inside its group."""
    s = scale_progression(scale_kind, scale_factor, n)
    r = np.radians(rotation_progression(rotation_kind, rotation_factor, n))
    a = alpha_progression(alpha_kind, alpha_factor, n)
    p = offset_progression(
        position_kind, s, x_step, y_step, coupled, origin, step_factor
    )
    return s, r, p, a
