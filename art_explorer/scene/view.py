"""The picture's frame and colour encoding, shared by everything that draws the scene:
the orthographic view (VIEW_HALF) and the sRGB transfer function.

The renderer (renderer/scene.py), the differentiable twin and the forward model all
draw the same pictures, so they take these from here. The functions work on numpy
arrays (float64) and on torch tensors (differentiable; torch is never imported here).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

VIEW_HALF = 2.5  # the view spans world x, y in [-VIEW_HALF, VIEW_HALF] (+y up)
SRGB_KNEE = 0.04045  # sRGB-encoded value where the curve leaves its linear toe
LINEAR_KNEE = 0.0031308  # ... the same point in linear light


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def srgb_to_linear(c: Any) -> Any:
    """sRGB-encoded values → linear light, both in [0, 1] (inputs clipped to it).
    numpy in, float64 numpy out; a torch tensor in, a differentiable tensor out:
    the clip passes the gradient through (a colour at 0 or 1 still learns to move
    inwards) and the gradient is finite everywhere."""
    if _is_torch(c):
        c = c - (c - c.clamp(0.0, 1.0)).detach()
        hi = ((c.clamp(min=SRGB_KNEE) + 0.055) / 1.055) ** 2.4
        return _where(c <= SRGB_KNEE, c / 12.92, hi)
    c = np.clip(np.asarray(c, np.float64), 0.0, 1.0)
    hi = ((np.maximum(c, SRGB_KNEE) + 0.055) / 1.055) ** 2.4
    return np.where(c <= SRGB_KNEE, c / 12.92, hi)


def linear_to_srgb(c: Any) -> Any:
    """Linear light → sRGB-encoded values, both in [0, 1] (inputs clipped to it,
    as the picture clips: no gradient beyond). numpy or torch, as
    `srgb_to_linear`."""
    if _is_torch(c):
        c = c.clamp(0.0, 1.0)
        hi = 1.055 * c.clamp(min=LINEAR_KNEE) ** (1 / 2.4) - 0.055
        return _where(c <= LINEAR_KNEE, c * 12.92, hi)
    c = np.clip(np.asarray(c, np.float64), 0.0, 1.0)
    hi = 1.055 * np.maximum(c, LINEAR_KNEE) ** (1 / 2.4) - 0.055
    return np.where(c <= LINEAR_KNEE, c * 12.92, hi)


def _where(cond: Any, a: Any, b: Any) -> Any:
    return sys.modules["torch"].where(cond, a, b)
