"""The 10 geometries: outline paths in element-local units (../../shared/spec/renderer.md,
"Geometries"), built once per process, and how far each reaches from its origin.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import skia


def _hermite_path(fn: Any, t0: float, t1: float, segments: int) -> skia.Path:
    """A smooth parametric curve (x(t), y(t)) as cubic Béziers through `segments + 1`
    samples with exact tangents (fn returns x, y, dx/dt, dy/dt arrays)."""
    t = np.linspace(t0, t1, segments + 1)
    x, y, dx, dy = fn(t)
    h = (t1 - t0) / segments / 3
    path = skia.Path()
    path.moveTo(float(x[0]), float(y[0]))
    for k in range(segments):
        path.cubicTo(
            float(x[k] + h * dx[k]),
            float(y[k] + h * dy[k]),
            float(x[k + 1] - h * dx[k + 1]),
            float(y[k + 1] - h * dy[k + 1]),
            float(x[k + 1]),
            float(y[k + 1]),
        )
    return path


def _spiral(t: np.ndarray) -> tuple[np.ndarray, ...]:
    # 3 turns, radius 0.2 → 0.8 linearly; t in [0, 1]
    th, r = 6 * math.pi * t, 0.2 + 0.6 * t
    c, s = np.cos(th), np.sin(th)
    return r * c, r * s, 0.6 * c - r * s * 6 * math.pi, 0.6 * s + r * c * 6 * math.pi


def _wave(t: np.ndarray) -> tuple[np.ndarray, ...]:
    w = 2 * math.pi
    return 0.9 * t, 0.3 * np.sin(w * t), np.full_like(t, 0.9), 0.3 * w * np.cos(w * t)


def _infinity(t: np.ndarray) -> tuple[np.ndarray, ...]:
    s, c = np.sin(t), np.cos(t)
    return 0.6 * s, 0.6 * s * c, 0.6 * c, 0.6 * (c * c - s * s)


@functools.cache
def geometry_path(name: str) -> skia.Path:
    """The outline of geometry `name` in element-local units (see renderer.md)."""
    path = skia.Path()
    if name == "ring":
        path.addCircle(0, 0, 0.9)
    elif name == "bar":
        path.moveTo(0, -0.9)
        path.lineTo(0, 0.9)
    elif name == "line":
        path.moveTo(0, -0.6)
        path.lineTo(0, 0.6)
    elif name == "arch":
        # upper half circle, radius 0.8, from (0.8, 0) over the top to (-0.8, 0)
        path.addArc(skia.Rect.MakeLTRB(-0.8, -0.8, 0.8, 0.8), 0, 180)
    elif name == "u":
        path.moveTo(-0.4, 0.9)
        path.lineTo(-0.4, -0.4)
        path.arcTo(skia.Rect.MakeLTRB(-0.4, -0.8, 0.4, 0.0), 180, 180, False)
        path.lineTo(0.4, 0.9)
    elif name == "spiral":
        path = _hermite_path(_spiral, 0.0, 1.0, 48)
    elif name == "wave":
        path = _hermite_path(_wave, -1.0, 1.0, 24)
    elif name == "infinity":
        path = _hermite_path(_infinity, 0.0, 2 * math.pi, 32)
        path.close()
    elif name == "square":
        path.addRect(skia.Rect.MakeLTRB(-0.7, -0.7, 0.7, 0.7))
    elif name == "roundedRect":
        path.addRRect(
            skia.RRect.MakeRectXY(
                skia.Rect.MakeLTRB(-0.65, -0.65, 0.65, 0.65), 0.35, 0.35
            )
        )
    else:
        raise ValueError(f"unknown geometry {name!r}")
    path.setIsVolatile(False)
    return path


@functools.cache
def geometry_bounds(name: str) -> tuple[float, float, float, float]:
    """Tight (left, bottom, right, top) bounds of the outline in local units."""
    r = geometry_path(name).computeTightBounds()
    return (r.left(), r.top(), r.right(), r.bottom())


@dataclass(frozen=True)
class Extent:
    """How far an outline reaches from its element's origin, in local units.

    r_min, r_max: nearest and farthest outline point; length: total outline length."""

    r_min: float
    r_max: float
    length: float


@functools.cache
def geometry_extent(name: str, samples: int = 1024) -> Extent:
    """`Extent` of geometry `name`, measured along the path once."""
    measure = skia.PathMeasure(geometry_path(name), False)
    r_min, r_max, length = math.inf, 0.0, 0.0
    while True:
        n = measure.getLength()
        length += n
        for d in np.linspace(0.0, n, samples):
            pos = measure.getPosTan(float(d))[0]
            r = math.hypot(pos.x(), pos.y())
            r_min, r_max = min(r_min, r), max(r_max, r)
        if not measure.nextContour():
            break
    return Extent(r_min, r_max, length)
