"""How the original places an instance: its world matrix decomposed into position,
quaternion and scale and composed back (drei's `<Instances>`; docs/scene.md).

drei computes each instance's world matrix W = Scene · Group · Inst_i, then writes
`compose(decompose(W))` into the instanced mesh (three.js `Matrix4.decompose`,
`Quaternion.setFromRotationMatrix`, `Matrix4.compose`). For a W that is a rotation
times a scale this changes nothing; for a W with shear (a non-uniform layer scale
followed by the instance's own rotation) it does:
the scale becomes the lengths of W's columns, and the rotation is whatever
quaternion three.js reads off the columns divided by those lengths, which are then
not orthogonal and give a quaternion longer or shorter than 1. In the usual branch
(the columns' trace > 0) the result is a rotation times a uniform factor times
diag(|column 0|, |column 1|): the shear is gone, so an instance of a layer scaled
(0.07, 1.62) stays a thin stroke at its own angle instead of collapsing into the
layer's narrow beam, and such a layer draws a fan of strokes.

Depth. The outline is a tube whose cross-section is a square standing on one corner
(three.js TubeGeometry, 4 radial segments, radius geoWidth): across the band, at
u ∈ [−r, r] from its centre line, its surface lies at depth z = ±(r − |u|). Only one
half is drawn (front faces; the camera-side half, or the far half where the
instance's own scale s_i is negative, which turns its faces inside out), and the
camera (R3F's orthographic default: at z = 5, near 0.1, far 1000) clips it at
z = 4.9 and z = −995. An instance scaled so far that its tube's crest passes the
clip plane (|z'|·r > limit) is drawn as two strips along the band's edges, each
limit / |z'| wide in local units (`visible_edge`).

The scene is flat: W's z column is (0, 0, Scene.scale · s_i), so only the xy block
and that z entry matter, and the quaternion stays a turn about z or a half turn about
an axis in the plane. The formulas serve numpy (float64, the renderer) and torch
(the twin, with gradients; every square root's argument is kept positive so that the
branches torch does not take cannot turn gradients into NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from renderer.progressions import array_namespace

TINY = 1e-30  # keeps square roots and divisions finite in branches not taken


def _sqrt(xp: Any, x: Any) -> Any:
    return xp.sqrt(xp.clip(x, TINY, None)) if xp is np else x.clamp(min=TINY).sqrt()


def compose_decomposed(a: Any, b: Any, c: Any, d: Any, zz: Any) -> tuple[Any, ...]:
    """World linear part [[a, b], [c, d]] (z entry zz) → the matrix three.js draws,
    compose(decompose(W)): its xy block (a', b', c', d') and its z entry z'. Arrays
    of one shape, numpy or torch; a degenerate W (a zero column) gives NaN, which
    the caller skips."""
    xp = array_namespace(a, b, c, d, zz)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sx = xp.sqrt(a * a + c * c)
        sy = xp.sqrt(b * b + d * d)
        sz = xp.abs(zz)
        det = (a * d - b * c) * zz
        sx = xp.where(det < 0, -sx, sx)
        # the "rotation": columns over their lengths (n33 = sign of zz)
        n11, n21, n12, n22, n33 = a / sx, c / sx, b / sy, d / sy, zz / sz
        trace = n11 + n22 + n33
        # three.js's four branches of setFromRotationMatrix (m13 = m23 = m31 =
        # m32 = 0): a turn about z (w, z), or a half turn in the plane (x, y)
        s1 = 0.5 / _sqrt(xp, trace + 1)
        s2 = 2 * _sqrt(xp, 1 + n11 - n22 - n33)
        s3 = 2 * _sqrt(xp, 1 + n22 - n11 - n33)
        s4 = 2 * _sqrt(xp, 1 + n33 - n11 - n22)
        first = trace > 0
        second = ~first & (n11 > n22) & (n11 > n33)
        third = ~first & ~second & (n22 > n33)
        fourth = ~first & ~second & ~third
        zero = xp.zeros_like(trace)
        w = xp.where(first, 0.25 / s1, xp.where(fourth, (n21 - n12) / s4, zero))
        z = xp.where(first, (n21 - n12) * s1, xp.where(fourth, 0.25 * s4, zero))
        x = xp.where(second, 0.25 * s2, xp.where(third, (n12 + n21) / s3, zero))
        y = xp.where(second, (n12 + n21) / s2, xp.where(third, 0.25 * s3, zero))
        # Matrix4.compose, xy block (column-major te[0], te[1], te[4], te[5])
        return (
            (1 - 2 * (y * y + z * z)) * sx,
            2 * (x * y - w * z) * sy,
            2 * (x * y + w * z) * sx,
            (1 - 2 * (x * x + z * z)) * sy,
            (1 - 2 * (x * x + y * y)) * sz,
        )


NEAR_DEPTH = 4.9  # world z of the near clip plane: camera at z = 5, near = 0.1
FAR_DEPTH = 995.0  # −world z of the far clip plane: far = 1000


def visible_edge(zc: Any, s: Any, radius: Any) -> Any:
    """How much of each band edge the clip planes leave, in local units across:
    `radius` (all of it: the whole band is drawn) or less (only two strips that
    wide along the edges). zc: the drawn matrix's z entry; s: the instance's own
    scale s_i (its sign picks the near or the far half); radius: geoWidth."""
    xp = array_namespace(zc, s, radius)
    limit = NEAR_DEPTH * (s > 0) + FAR_DEPTH * (s <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = limit / xp.abs(zc)
    return xp.minimum(e, radius + 0 * e)
