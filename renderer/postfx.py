"""Post-passes on the drawn image: dither, then noise (../shared/spec/renderer.md).

Images are float32 (size, size, 3) in [0, 1], row 0 at the top. Both passes are
deterministic: their patterns depend only on the size and the params.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

REFERENCE_SIZE = 1024  # pattern cells are sized relative to a 1024-px picture
NOISE_SEED = 20240611  # the fixed seed of the noise pass
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def bayer_matrix(n: int) -> np.ndarray:
    """The n×n Bayer index matrix (n = 2, 4, 8), values 0..n²-1."""
    b = np.array([[0, 2], [3, 1]], np.int64)
    while b.shape[0] < n:
        b = np.block([[4 * b, 4 * b + 2], [4 * b + 3, 4 * b + 1]])
    if b.shape[0] != n:
        raise ValueError(f"Bayer matrix size must be 2, 4 or 8, got {n}")
    return b


def _cell_index(size: int, cell: float) -> np.ndarray:
    """Pixel index → pattern cell index along one axis, int64 (size,)."""
    return np.floor(np.arange(size) / cell).astype(np.int64)


@functools.lru_cache(maxsize=16)
def dither_threshold(kind: str, matrix: int, scale: float, size: int) -> np.ndarray:
    """Threshold t in [0, 1) per pixel, float32 (size, size), read-only.

    One pattern cell is max(1, scale·size/1024) px. bayer: the matrix×matrix Bayer
    pattern over cells; noise: interleaved-gradient noise per cell; halftone: a radial
    dot of matrix×matrix cells, brightest at its centre (so dots grow with the
    brightness)."""
    cell = max(1.0, scale * size / REFERENCE_SIZE)
    if kind == "bayer":
        ix = _cell_index(size, cell) % matrix
        t = bayer_matrix(matrix)[ix[:, None], ix[None, :]] / (matrix * matrix)
    elif kind == "noise":
        c = _cell_index(size, cell).astype(np.float64)
        f = np.modf(0.06711056 * c[None, :] + 0.00583715 * c[:, None])[0]
        t = np.modf(52.9829189 * f)[0]
    elif kind == "halftone":
        period = matrix * cell
        u = np.modf((np.arange(size) + 0.5) / period)[0] - 0.5
        d = np.sqrt(u[:, None] ** 2 + u[None, :] ** 2) / np.sqrt(0.5)
        t = 1.0 - d
    else:
        raise ValueError(f"unknown dither type {kind!r}")
    out = np.clip(t, 0.0, 1.0 - 1e-6).astype(np.float32)
    out.flags.writeable = False
    return out


def apply_dither(img: np.ndarray, params: dict[str, Any], size: int) -> np.ndarray:
    """Ordered dither: shift = (t − 0.5 + bias)/(colors − 1), quantise to `colors`
    levels (floor, so bias 0.5 keeps the mean), on luma when grayscale; the result is
    mixed with the undithered image by strength."""
    levels = int(params["ditherColors"]) - 1
    t = dither_threshold(
        params["ditherType"],
        int(params["ditherMatrix"]),
        float(params["ditherScale"]),
        size,
    )
    shift = (t - 0.5 + float(params["ditherBias"])) / levels  # (size, size)
    src = img @ LUMA if params["ditherGrayscale"] else img
    if src.ndim == 3:
        shift = shift[..., None]
    q = np.clip(np.floor((src + shift) * levels), 0, levels) / levels
    if q.ndim == 2:
        q = np.repeat(q[..., None], 3, axis=2)
    strength = float(params["ditherStrength"])
    return (img + strength * (q.astype(np.float32) - img)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def noise_field(size: int, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """(u, sign), float32 (size, size) each, read-only: a uniform [0, 1) draw and a ±1
    per noise cell of `cell` px, from the fixed seed. A cell is picked when u < density,
    so raising the density only adds cells."""
    idx = _cell_index(size, cell)
    n = int(idx[-1]) + 1
    rng = np.random.default_rng(NOISE_SEED)
    u_cells = rng.random((n, n), dtype=np.float32)
    sign_cells = np.where(rng.random((n, n)) < 0.5, -1.0, 1.0).astype(np.float32)
    u = u_cells[idx[:, None], idx[None, :]]
    sign = sign_cells[idx[:, None], idx[None, :]]
    u.flags.writeable = False
    sign.flags.writeable = False
    return u, sign


def apply_noise(img: np.ndarray, params: dict[str, Any], size: int) -> np.ndarray:
    """Cells of max(noiseSize·size/1024, 1) px; picked with probability noiseDensity;
    a picked cell gets ±0.5·noiseOpacity added to R, G and B."""
    cell = max(float(params["noiseSize"]) * size / REFERENCE_SIZE, 1.0)
    u, sign = noise_field(size, cell)
    delta = np.where(u < float(params["noiseDensity"]), sign, 0.0).astype(np.float32)
    delta *= 0.5 * float(params["noiseOpacity"])
    return img + delta[..., None]
