"""The 10 geometries: outlines in element-local units (docs/scene.md, "Geometries").

Each outline is the centre line of the original's tube mesh: a polyline of
`SEGMENTS[name]` straight segments (the tube's segment count), +y up. The tube's
radius is `Element.geoWidth`, so the drawn band is 2·geoWidth wide (scene.py).
`Element.startAngle` (radians) turns the outline about its origin, counter-clockwise.

Plain functions, so that anything mirroring the scene (a differentiable twin) can
import the same outlines: `outline_points` returns numpy arrays; `geometry_path` is
the skia path the renderer strokes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import skia

from art_explorer.scene import schema

GEOMETRIES = schema.GEOMETRIES  # the schema's list, one home
# Straight segments of each outline (the original's tubular segments).
SEGMENTS = {
    "ring": 128,
    "bar": 1,
    "line": 1,
    "arch": 64,
    "u": 96,
    "spiral": 128,
    "wave": 96,
    "infinity": 128,
    "square": 4,
    "roundedRect": 96,
}
CLOSED = frozenset({"ring", "infinity", "square", "roundedRect"})


def _resample(points: np.ndarray, n: int, closed: bool) -> np.ndarray:
    """n + 1 points evenly spaced by arc length along a dense polyline (the last
    equals the first when closed)."""
    if closed:
        points = np.vstack([points, points[:1]])
    seg = np.hypot(*np.diff(points, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n + 1)
    return np.stack([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])], 1)


def _dense(name: str) -> np.ndarray:
    """A dense polyline of the outline, (M, 2), before resampling."""
    if name == "ring":
        t = np.linspace(0, 2 * math.pi, 2048, endpoint=False)
        return 0.9 * np.stack([np.cos(t), np.sin(t)], 1)
    if name == "bar":
        return np.array([[0.0, -0.9], [0.0, 0.9]])
    if name == "line":
        return np.array([[0.0, -0.6], [0.0, 0.6]])
    if name == "arch":  # upper half circle, radius 0.8, from (0.8, 0) to (-0.8, 0)
        t = np.linspace(0, math.pi, 1025)
        return 0.8 * np.stack([np.cos(t), np.sin(t)], 1)
    if name == "u":  # legs at x = ±0.4 from y = 0.9 down to -0.4, a half circle below
        a = np.linspace(math.pi, 2 * math.pi, 513)
        arc = np.stack([0.4 * np.cos(a), 0.4 * np.sin(a) - 0.4], 1)
        return np.vstack([[[-0.4, 0.9]], arc, [[0.4, 0.9]]])
    if name == "spiral":  # 3 turns, radius 0.2 → 0.8 (the original's z is not seen)
        t = np.linspace(0, 1, 4097)
        r, th = 0.2 + 0.6 * t, 6 * math.pi * t
        return np.stack([r * np.cos(th), r * np.sin(th)], 1)
    if name == "wave":  # x = 0.9 t, y = 0.3 sin(2πt), t in [-1, 1]
        t = np.linspace(-1, 1, 2049)
        return np.stack([0.9 * t, 0.3 * np.sin(2 * math.pi * t)], 1)
    if name == "infinity":  # x = 0.6 sin t, y = 0.6 sin t cos t
        t = np.linspace(0, 2 * math.pi, 4096, endpoint=False)
        return 0.6 * np.stack([np.sin(t), np.sin(t) * np.cos(t)], 1)
    if name == "square":  # side 1.4, from the bottom-left corner, counter-clockwise
        return np.array([[-0.7, -0.7], [0.7, -0.7], [0.7, 0.7], [-0.7, 0.7]])
    if name == "roundedRect":  # half side 0.65, corner radius 0.35
        pts = []
        for cx, cy, a0 in (
            (-0.3, -0.3, math.pi),
            (0.3, -0.3, 1.5 * math.pi),
            (0.3, 0.3, 0.0),
            (-0.3, 0.3, 0.5 * math.pi),
        ):
            a = np.linspace(a0, a0 + math.pi / 2, 257)
            pts.append(np.stack([cx + 0.35 * np.cos(a), cy + 0.35 * np.sin(a)], 1))
        return np.vstack(pts)
    raise ValueError(f"unknown geometry {name!r}")


@functools.cache
def _outline(name: str) -> np.ndarray:
    closed = name in CLOSED
    if name == "square":  # the corners themselves: 4 straight sides
        return np.vstack([_dense(name), [[-0.7, -0.7]]])
    pts = _resample(_dense(name), SEGMENTS[name], closed)
    pts.setflags(write=False)
    return pts


def rotation(angle: float) -> np.ndarray:
    """2×2 counter-clockwise rotation by `angle` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def outline_points(name: str, start_angle: float = 0.0) -> np.ndarray:
    """The outline of geometry `name` as a polyline, float64 (SEGMENTS + 1, 2) in
    element-local units, turned by `start_angle` radians. A closed outline's last
    point equals its first."""
    pts = _outline(name)
    if start_angle == 0.0:
        return pts.copy()
    return pts @ rotation(start_angle).T


@functools.lru_cache(maxsize=256)
def geometry_path(name: str, start_angle: float = 0.0) -> skia.Path:
    """The outline of geometry `name` (turned by `start_angle`) as a skia path."""
    pts = outline_points(name, start_angle)
    path = skia.Path()
    path.moveTo(float(pts[0, 0]), float(pts[0, 1]))
    for x, y in pts[1:-1].tolist() if name in CLOSED else pts[1:].tolist():
        path.lineTo(x, y)
    if name in CLOSED:
        path.close()
    path.setIsVolatile(False)
    return path


@functools.lru_cache(maxsize=256)
def geometry_bounds(
    name: str, start_angle: float = 0.0
) -> tuple[float, float, float, float]:
    """Tight (left, bottom, right, top) bounds of the outline in local units."""
    pts = outline_points(name, start_angle)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


@dataclass(frozen=True)
class Extent:
    """How far an outline reaches from its element's origin, in local units.

    r_min, r_max: nearest and farthest outline point; length: total outline length."""

    r_min: float
    r_max: float
    length: float


def _segment_distance(pts: np.ndarray) -> float:
    """Distance from the origin to the nearest point of the polyline."""
    a, b = pts[:-1], pts[1:]
    d = b - a
    dd = (d * d).sum(axis=1)
    t = np.clip(-(a * d).sum(axis=1) / np.where(dd > 0, dd, 1), 0, 1)
    q = a + t[:, None] * d
    return float(np.hypot(q[:, 0], q[:, 1]).min())


@functools.cache
def geometry_extent(name: str) -> Extent:
    """`Extent` of geometry `name` (the same for every start angle)."""
    pts = _outline(name)
    r = np.hypot(pts[:, 0], pts[:, 1])
    length = float(np.hypot(*np.diff(pts, axis=0).T).sum())
    return Extent(_segment_distance(pts), float(r.max()), length)


@functools.lru_cache(maxsize=256)
def miter_offsets(name: str, start_angle: float = 0.0) -> np.ndarray:
    """Per outline point, the vector (SEGMENTS + 1, 2) that moves it one local unit
    sideways (to the left of the direction of travel) along the mitred join: the
    outline offset by d is `outline_points + d · miter_offsets`."""
    pts = outline_points(name, start_angle)
    t = np.diff(pts, axis=0)
    t /= np.hypot(t[:, 0], t[:, 1])[:, None]
    n = np.stack([-t[:, 1], t[:, 0]], 1)  # (M, 2) segment normals
    if name in CLOSED:
        before, after = np.vstack([n[-1:], n]), np.vstack([n, n[:1]])
    else:
        before, after = np.vstack([n[:1], n]), np.vstack([n, n[-1:]])
    m = before + after
    m /= np.hypot(m[:, 0], m[:, 1])[:, None]
    cos = np.clip((m * after).sum(axis=1), 0.25, 1.0)  # miter length ≤ 4
    out = m / cos[:, None]
    out.setflags(write=False)
    return out


def edge_path(name: str, start_angle: float, offset: float) -> skia.Path:
    """The outline offset by ±`offset` local units to either side, as one skia
    path of two polylines (for a band whose middle is clipped away: its two edge
    strips are these, stroked)."""
    pts = outline_points(name, start_angle)
    vec = miter_offsets(name, start_angle)
    path = skia.Path()
    for side in (offset, -offset):
        q = pts + side * vec
        path.moveTo(float(q[0, 0]), float(q[0, 1]))
        for x, y in q[1:-1].tolist() if name in CLOSED else q[1:].tolist():
            path.lineTo(x, y)
        if name in CLOSED:
            path.close()
    return path
