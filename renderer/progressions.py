"""The progression rules of the scene (docs/scene.md, "Progressions"): per-instance
scale, rotation, opacity and offset, and the gradient's falloff.

sf = scaleFactor, rf = rotationFactor, af = alphaFactor, n = repetitions; instance
i = 0..n-1. All functions are pure and vectorised over i.

The same formulas serve the skia renderer (numpy, float64) and the differentiable
twin (twin.py): give the factors as torch tensors of shape (B, 1) and the result is a
(B, n) tensor with gradients. torch is never imported here.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

FIBONACCI = (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)


def array_namespace(*xs: Any) -> Any:
    """The torch module when any argument is a torch tensor, else numpy."""
    torch = sys.modules.get("torch")
    if torch is not None and any(isinstance(x, torch.Tensor) for x in xs):
        return torch
    return np


def instance_index(n: int, *like: Any) -> Any:
    """i = 0..n-1 as float64 numpy, or a torch tensor on `like`'s device and dtype."""
    xp = array_namespace(*like)
    if xp is np:
        return np.arange(n, dtype=np.float64)
    t = next(x for x in like if isinstance(x, xp.Tensor))
    return xp.arange(n, dtype=t.dtype, device=t.device)


def scale_progression(kind: str, sf: Any, n: int) -> Any:
    """Scale s_i of instances i = 0..n-1, float64 (n,). May be huge (sf^499) or
    negative (additive with sf < 1); the drawing skips what cannot be seen."""
    xp, i = array_namespace(sf), instance_index(n, sf)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if kind == "exponential":
            return sf**i
        if kind == "linear":
            return xp.clip(1 - 0.1 * i * (1 - sf), 0.01, None)
        if kind == "additive":
            return 1 + i * (sf - 1)
        if kind == "fibonacci":
            return sf ** (i * xp.abs(xp.sin(0.1618 * i)))
        if kind == "golden":
            return sf ** (0.382 * i)
        if kind == "sine":
            return sf ** (i * (0.3 + 0.7 * xp.abs(xp.sin(0.2 * i))))
    raise ValueError(f"unknown scaleProgression {kind!r}")


def rotation_progression(kind: str, rf: Any, n: int) -> Any:
    """Rotation r_i in degrees of instances i = 0..n-1, float64 (n,)."""
    xp, i = array_namespace(rf), instance_index(n, rf)
    if kind == "linear":
        return 360 * rf * i
    if kind == "golden-angle":
        return 137.5 * rf * i
    if kind == "fibonacci":
        fib = np.array(FIBONACCI, np.float64)[np.arange(n) % 12]
        return (fib if xp is np else i.new_tensor(fib)) * rf * 15
    if kind == "sine":
        return xp.sin(0.2 * i) * rf * 180
    raise ValueError(f"unknown rotationProgression {kind!r}")


def alpha_progression(kind: str, af: Any, n: Any, count: int | None = None) -> Any:
    """Opacity a_i in [0.02, 1] of instances i = 0..n-1, float64 (n,). `count`:
    how many instances to give when n is not an int (a tensor of repetitions, as
    the forward model's soft layout has)."""
    xp = array_namespace(af, n)
    i = instance_index(n if count is None else count, af)
    if kind == "exponential":
        a = xp.exp(-0.3 * i * (1 - af))
    elif kind == "linear":
        a = 1 - i * (1 - af) / n
    elif kind == "inverse":
        a = af + (1 - af) * i / n
    else:
        raise ValueError(f"unknown alphaProgression {kind!r}")
    return xp.clip(a, 0.02, 1.0)


def offset_progression(
    kind: str,
    s: Any,
    x_step: Any,
    y_step: Any,
    coupled: bool,
    origin: str,
    step_factor: Any,
) -> Any:
    """Offsets p_i (world units inside the group), float64 (n, 2).

    index: 1.5·i·(xStep, yStep), times s_i when coupled; scale: 1.5·|1 − s_i|·(xStep,
    yStep). Then the origin (top-*: y → 1 − y, bottom-*: y → y − 1, *-left: x → x − 1,
    *-right: x → 1 − x), then both times stepFactor."""
    xp, i = array_namespace(s), instance_index(s.shape[-1], s)
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "index":
            k = 1.5 * i * (s if coupled else 1.0)
        elif kind == "scale":
            k = 1.5 * xp.abs(1 - s)
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
        return xp.stack([x * step_factor, y * step_factor], axis=-1)


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


# ACES filmic tone mapping as three.js applies it to every fragment before sRGB
# encoding (its ACESFilmicToneMapping, the default of the original's react-three-fiber
# canvas; exposure 1): c·exposure/0.6 → input matrix → RRT+ODT fit → output matrix →
# clamp to [0, 1]. Rows map linear RGB to RGB.
ACES_INPUT = (
    (0.59719, 0.35458, 0.04823),
    (0.07600, 0.90834, 0.01566),
    (0.02840, 0.13383, 0.83777),
)
ACES_OUTPUT = (
    (1.60475, -0.53108, -0.07367),
    (-0.10208, 1.10813, -0.00605),
    (-0.00327, -0.07276, 1.07602),
)
TONE_EXPOSURE = 1.0


def tone_map(rgb: Any) -> Any:
    """Linear RGB (..., 3) → tone-mapped linear RGB (..., 3) in [0, 1] (ACES filmic,
    above). numpy float64 in, numpy out; a torch tensor in, a differentiable tensor
    out (zero gradient where a channel clamps)."""
    xp = array_namespace(rgb)
    if xp is np:
        c = np.asarray(rgb, np.float64)
        m_in, m_out = np.array(ACES_INPUT), np.array(ACES_OUTPUT)
    else:
        c = rgb
        m_in = xp.tensor(ACES_INPUT, dtype=c.dtype, device=c.device)
        m_out = xp.tensor(ACES_OUTPUT, dtype=c.dtype, device=c.device)
    v = (c * (TONE_EXPOSURE / 0.6)) @ m_in.T
    fit = (v * (v + 0.0245786) - 0.000090537) / (
        v * (0.983729 * v + 0.4329510) + 0.238081
    )
    out: Any = fit @ m_out.T  # numpy or torch, as the input
    return np.clip(out, 0.0, 1.0) if xp is np else out.clamp(0.0, 1.0)
