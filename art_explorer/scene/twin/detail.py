"""Levels of detail of an outline: every m-th point kept, where the chords stay
on the curve within LEVEL_DEV_PX at the instance's size in px."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from renderer import geometry


@functools.cache
def _outline(name: str) -> np.ndarray:
    """The outline as a polyline (M + 1, 2) in local units (what skia strokes)."""
    return np.asarray(geometry.outline_points(name), np.float64)


PIECE_PX = 2.0  # outline pieces are at most this long (px)
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
