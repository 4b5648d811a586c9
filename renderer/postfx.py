"""Post-passes on the drawn picture: dither, CRT, noise (docs/scene.md).

All work in place on the uint8 RGBA pixels read from skia, shape (size, size, 4), row
0 at the top; only R, G and B matter (the fourth byte is left meaningless). All are
deterministic: their patterns depend only on the size and the params. Noise and CRT
follow the original's shaders (the noise exactly, the CRT approximately); dither is
this project's extension.

Speed (1024², 2 cores): the drawn pictures are mostly black, so the dither computes
only the lit pixels (black ones map to a pattern that depends on the threshold
alone); the noise field is cached per size.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

REFERENCE_SIZE = 1024  # pattern cells are sized relative to a 1024-px picture
LUMA4 = np.array([0.299, 0.587, 0.114, 0.0], np.float32)  # R, G, B weights; A ignored
DOT_TABLE_SIZE = 4097  # halftone: t tabulated over d² in [0, 0.5]
DENSE_FRACTION = 0.2  # dither all pixels at once when more than this share is lit
PIXEL = np.dtype("<u4")  # one RGBA8888 pixel; byte 0 = R ... byte 3 = A
BLACK = int(np.array([0, 0, 0, 255], np.uint8).view(PIXEL)[0])
RGB_BITS = int(np.array([255, 255, 255, 0], np.uint8).view(PIXEL)[0])
GRAY = 0x00010101  # × v: a pixel with R = G = B = v and A = 0


def bayer_matrix(n: int) -> np.ndarray:
    """The n×n Bayer index matrix (n = 2, 4, 8), values 0..n²-1."""
    b = np.array([[0, 2], [3, 1]], np.int64)
    while b.shape[0] < n:
        b = np.block([[4 * b, 4 * b + 2], [4 * b + 3, 4 * b + 1]])
    if b.shape[0] != n:
        raise ValueError(f"Bayer matrix size must be 2, 4 or 8, got {n}")
    return b


def dither_cell(scale: float, size: int) -> float:
    """Pattern cell in pixels: ditherScale relative to a 1024-px picture, at least 1."""
    return max(1.0, scale * size / REFERENCE_SIZE)


@functools.lru_cache(maxsize=16)
def _threshold_axes(
    kind: str, matrix: int, scale: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis parts (rows, columns) of the threshold pattern, each (size,); see
    `dither_threshold` for how they combine."""
    cell = dither_cell(scale, size)
    pos = np.arange(size, dtype=np.float64)
    if kind == "bayer":
        c = np.floor(pos / cell).astype(np.int64) % matrix
        return c * matrix, c  # index into the flattened matrix: row·n + column
    if kind == "noise":
        c = np.floor(pos / cell)
        return 0.00583715 * c, 0.06711056 * c
    if kind == "halftone":
        u = np.modf((pos + 0.5) / (matrix * cell))[0] - 0.5
        d2 = (u * u * ((DOT_TABLE_SIZE - 1) / 0.5)).astype(np.float32)
        return d2, d2 + np.float32(0.5)  # their sum + 0.5: the dot table's index
    raise ValueError(f"unknown dither type {kind!r}")


def dither_threshold(
    kind: str, matrix: int, scale: float, size: int, y: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """Threshold t in [0, 1) at pixel rows y and columns x (int arrays that
    broadcast together), float32 of the broadcast shape.

    One pattern cell is `dither_cell` px. bayer: the matrix×matrix Bayer pattern
    over cells; noise: interleaved-gradient noise per cell,
    fract(52.9829189·fract(0.06711056·cx + 0.00583715·cy)); halftone: a radial dot
    per matrix×matrix cells, t = 1 − (share of the dot cell nearer its centre), so
    dots grow from the centre and cover the share v at brightness v."""
    rows, cols = _threshold_axes(kind, matrix, scale, size)
    if kind == "bayer":
        table = (bayer_matrix(matrix).ravel() / (matrix * matrix)).astype(np.float32)
        return table[rows[y] + cols[x]]
    if kind == "noise":
        f = rows[y] + cols[x]
        whole = np.floor(f)
        f -= whole
        f *= 52.9829189
        np.floor(f, out=whole)
        f -= whole
        return f.astype(np.float32)
    index = (rows[y] + cols[x]).astype(np.intp)  # round(d² / step), see the axes
    return _dot_threshold_table()[np.minimum(index, DOT_TABLE_SIZE - 1)]


@functools.cache
def _dot_threshold_table(n: int = DOT_TABLE_SIZE) -> np.ndarray:
    """float32 (n,): t = 1 − A for d² = 0 .. 0.5 in n steps, where A is the share of
    a unit cell within distance d of its centre. Thresholding at t lights a centred
    dot covering exactly the share v of the cell at brightness v."""
    d2 = np.linspace(0.0, 0.5, n)
    d = np.sqrt(d2)
    area = np.pi * d2
    out = d > 0.5  # the circle pokes out of the four sides: cut the caps off
    c = 0.5 / d[out]
    area[out] -= 4 * (d2[out] * np.arccos(c) - 0.5 * np.sqrt(d2[out] - 0.25))
    return np.clip(1.0 - area, 0.0, 1.0 - 1e-6).astype(np.float32)


@functools.lru_cache(maxsize=4)
def threshold_field(kind: str, matrix: int, scale: float, size: int) -> np.ndarray:
    """`dither_threshold` for every pixel, float32 (size, size), read-only."""
    y, x = np.arange(size)[:, None], np.arange(size)[None, :]
    t = dither_threshold(kind, matrix, scale, size, y, x)
    t.flags.writeable = False
    return t


def apply_dither(rgba: np.ndarray, params: dict[str, Any], size: int) -> None:
    """Ordered dither, in place on uint8 (size, size, 4).

    shift = (t − 0.5 + bias)/(colors − 1); a value v in [0, 1] becomes
    q = floor((v + shift)·(colors − 1))/(colors − 1), clipped to [0, 1] (so bias 0.5
    keeps the mean); on luma (all three channels = q) when grayscale; then
    v + strength·(q − v), rounded to 1/255.

    Mostly-black pictures take a sparse path over the lit pixels (a black pixel's
    result depends on t alone); others a dense one over all pixels."""
    levels = int(params["ditherColors"]) - 1
    strength = float(params["ditherStrength"])
    offset = np.float32(float(params["ditherBias"]) - 0.5)  # shift·levels = t + offset
    pattern = (
        params["ditherType"],
        int(params["ditherMatrix"]),
        float(params["ditherScale"]),
    )
    pixels = rgba.reshape(-1, 4)
    words = pixels.view(PIXEL).ravel()
    lit = np.flatnonzero(words & np.uint32(RGB_BITS))
    dense = len(lit) > DENSE_FRACTION * len(words)
    if dense:
        t = threshold_field(*pattern, size).ravel() + offset  # (N,)
        v = pixels.astype(np.float32)  # (N, 4) in 0..255
    else:
        v = pixels[lit].astype(np.float32)  # (n, 4) in 0..255
        if offset > 0:  # black pixels light up where t + offset ≥ 1 (q = 1/levels)
            level = np.uint32(round(255 * strength / levels) * GRAY)
            t_all = threshold_field(*pattern, size).ravel()
            words[:] = np.where(t_all >= 1 - offset, level, np.uint32(0))
            words |= np.uint32(BLACK)
        if not len(lit):
            return
        t = dither_threshold(*pattern, size, lit // size, lit % size) + offset  # (n,)
    if params["ditherGrayscale"]:
        luma = v @ (LUMA4 * np.float32(levels / 255))
        luma += t
        q = np.repeat(luma, 4).reshape(v.shape)
    else:
        q = v * np.float32(levels / 255)
        q += np.repeat(t, 4).reshape(v.shape)
    np.floor(q, out=q)
    np.minimum(q, levels, out=q)
    np.maximum(q, 0, out=q)
    q *= np.float32(255 * strength / levels)
    v *= np.float32(1 - strength)
    v += q
    v += 0.5
    if dense:
        pixels[:] = v.astype(np.uint8)
    else:
        pixels[lit] = v.astype(np.uint8)


def _hash(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The original noise shader's hash of a 2-D cell, float32 in [0, 1):
    p3 = fract((x, y, x)·0.1031); p3 += p3·(p3.yzx + 33.33); fract((p3.x + p3.y)·p3.z)."""
    f32 = np.float32

    def fract(v: np.ndarray) -> np.ndarray:
        return v - np.floor(v)

    a, b, c = fract(x * f32(0.1031)), fract(y * f32(0.1031)), fract(x * f32(0.1031))
    d = a * (b + f32(33.33)) + b * (c + f32(33.33)) + c * (a + f32(33.33))
    a, b, c = a + d, b + d, c + d
    return fract((a + b) * c)


@functools.lru_cache(maxsize=4)
def noise_field(size: int, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """(select, value): float32 (size, size), read-only, row 0 at the top. Per noise
    cell of `cell` px (counted from the bottom-left corner, as GL does): select =
    hash(cell) in [0, 1), value = hash(cell + (127.1, 311.7)) − 0.5 in [−0.5, 0.5).
    A cell is picked when select ≥ 1 − density, so raising the density only adds
    cells."""
    pos = (np.arange(size, dtype=np.float32) + np.float32(0.5)) / np.float32(cell)
    c = np.floor(pos)
    cx = np.broadcast_to(c[None, :], (size, size))
    cy = np.broadcast_to(c[::-1, None], (size, size))  # GL: y grows upwards
    select = _hash(cx, cy)
    value = _hash(cx + np.float32(127.1), cy + np.float32(311.7)) - np.float32(0.5)
    select.flags.writeable = False
    value.flags.writeable = False
    return select, value


def apply_noise(rgba: np.ndarray, params: dict[str, Any], size: int) -> None:
    """In place on uint8 (size, size, 4): the original's noise pass. Cells of
    max(noiseSize·size/1024, 1) px; a cell with select ≥ 1 − noiseDensity gets
    value·noiseOpacity (value uniform in [−0.5, 0.5)) added to R, G and B, clamped
    and rounded to 8 bits.

    Only the picked pixels are touched, visited in memory order (gathering them in
    the field's sorted order cost 40 ms at 1024²)."""
    cell = max(float(params["noiseSize"]) * size / REFERENCE_SIZE, 1.0)
    select, value = noise_field(size, cell)
    opacity = np.float32(params["noiseOpacity"])
    if opacity == 0:
        return
    idx = np.flatnonzero(select >= np.float32(1.0 - float(params["noiseDensity"])))
    if not len(idx):
        return
    words = rgba.reshape(-1, 4).view(PIXEL).ravel()  # 1-D gathers are the fast ones
    picked = words[idx]
    pixels = picked.view(np.uint8).reshape(-1, 4)  # (n, 4), a view of `picked`
    rgb = pixels[:, :3].astype(np.float32)
    rgb += (value.ravel()[idx] * (opacity * np.float32(255)))[:, None]
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0, 255, out=rgb)
    pixels[:, :3] = rgb
    words[idx] = picked


# ----------------------------------------------------------------------------------
# CRT: a numpy rendition of the original's CRT pass (a Lottes-style CRT shader:
# Gaussian beam kernels for phosphor bleed and scanlines, optional bloom, barrel warp
# and an RGB phosphor mask). Approximate: the same formulas per pixel, computed in
# float32 on the 8-bit picture; the original runs them on the GPU on its own capture
# of the canvas (docs/scene.md, "CRT").

CRT_MASK_TYPES = {"none": 0, "shadow": 1, "grille": 2, "stretched": 3, "vga": 4}


def _gaus(x: np.ndarray, s: float) -> np.ndarray:
    return np.exp2(np.float32(s) * x * x)


def _stripe(x: np.ndarray, dark: float, light: float) -> np.ndarray:
    """RGB stripe mask at phase x: one channel `light`, the others `dark`,
    (..., 3) float32."""
    f = x - np.floor(x)
    m = np.full((*x.shape, 3), dark, np.float32)
    m[..., 0] = np.where(f < 0.333, light, dark)
    m[..., 1] = np.where((f >= 0.333) & (f < 0.666), light, dark)
    m[..., 2] = np.where(f >= 0.666, light, dark)
    return m


@functools.lru_cache(maxsize=8)
def crt_mask(kind: str, size: int, strength: float) -> np.ndarray | None:
    """The phosphor mask, float32 (size, size, 3) with row 0 at the bottom (GL
    order), or None for 'none'. Cells are device pixels."""
    t = CRT_MASK_TYPES[kind]
    if t == 0:
        return None
    dark, light = 1.0 + (0.3 - 1.0) * strength, 1.0 + (1.8 - 1.0) * strength
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    if t == 1:  # shadow
        odd = ((x / 6.0) % 1.0 >= 0.5).astype(np.float32)
        line = np.where(((y + odd) * 0.5) % 1.0 >= 0.5, dark, light)
        return _stripe(x / 3.0, dark, light) * line[..., None]
    if t == 2:  # aperture grille
        return _stripe(x / 3.0, dark, light)
    if t == 3:  # stretched
        return _stripe((x + y * 3.0) / 6.0, dark, light)
    px, py = np.floor(x), np.floor(y * 0.5)  # vga
    return _stripe((px + py * 3.0) / 6.0, dark, light)


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """img (H, W, C) float32 sampled at normalised (u, v) in [0, 1] (pixel centres at
    (i + 0.5)/W), bilinear, edges clamped → (..., C) float32."""
    h, w, ch = img.shape
    flat = img.reshape(-1, ch)
    x = np.clip(u * np.float32(w) - np.float32(0.5), 0, w - 1)
    y = np.clip(v * np.float32(h) - np.float32(0.5), 0, h - 1)
    x0, y0 = x.astype(np.int32), y.astype(np.int32)  # floor: x, y ≥ 0
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    dx = (x0 < w - 1).astype(np.int32)
    i00 = y0 * w + x0
    i10 = i00 + np.where(y0 < h - 1, w, 0).astype(np.int32)
    top = np.take(flat, i00, axis=0)
    top += (np.take(flat, i00 + dx, axis=0) - top) * fx
    bottom = np.take(flat, i10, axis=0)
    bottom += (np.take(flat, i10 + dx, axis=0) - bottom) * fx
    return top + (bottom - top) * fy


def apply_crt(rgba: np.ndarray, params: dict[str, Any], size: int) -> None:
    """In place on uint8 (size, size, 4): the CRT pass. Each output pixel samples the
    picture on a coarse grid of size / crtScale cells (nearest texel), weights 3 rows
    of 3–5 cells with Gaussian beams (crtBleed: horizontal softness, crtScanlines:
    scanline falloff), adds crtBloom × a wider 5×7 kernel, multiplies by
    crtBrightness, then by the phosphor mask (crtMask, crtMaskStrength).

    The sampling is separable (a column's cells and beam distance do not depend on
    the row, and the other way round): each horizontal kernel runs once over the
    source rows some scanline reads, and the scanlines pick rows from it. crtWarp
    bends the coordinates like a curved screen; here (an approximation of the shader,
    which evaluates the beams at the bent position) the straight result is resampled
    bilinearly at the bent coordinates."""
    img = rgba[::-1, :, :3].astype(np.float32) / 255  # GL order: row 0 at the bottom
    bright = float(params["crtBrightness"])
    bleed, scan_amt = float(params["crtBleed"]), float(params["crtScanlines"])
    bloom_amt, warp = float(params["crtBloom"]), float(params["crtWarp"])
    hard_pix = -20.0 + (-0.5 + 20.0) * bleed
    hard_scan = -20.0 + (-4.0 + 20.0) * scan_amt
    bloom_pix = -3.0 + 2.5 * bloom_amt
    bloom_scan = -4.0 + 3.0 * bloom_amt
    res = size / max(float(params["crtScale"]), 1e-6)  # CRT cells across
    c = (np.arange(size, dtype=np.float32) + np.float32(0.5)) / size
    cu, cv = c[None, :] * np.float32(res), c[:, None] * np.float32(res)
    fu, fv = np.floor(cu), np.floor(cv)
    du, dv = -((cu - fu) - 0.5), -((cv - fv) - 0.5)  # (1, size), (size, 1)

    def index(cell: np.ndarray, off: float) -> np.ndarray:
        p = np.clip((cell + np.float32(off + 0.5)) / np.float32(res), 0.0, 1.0)
        return np.minimum((p * size).astype(np.int64), size - 1).ravel()

    cols = {off: index(fu, off) for off in (-3, -2, -1, 0, 1, 2, 3)}
    rows = {off: index(fv, off) for off in (-2, -1, 0, 1, 2)}
    used = np.unique(np.concatenate(list(rows.values())))  # one row per CRT cell
    src = img[used]
    rows = {off: np.searchsorted(used, r) for off, r in rows.items()}
    cache: dict[tuple[int, float], np.ndarray] = {}

    def horz(off: int, taps: int, hard: float) -> np.ndarray:
        """Row `off` of the beam: Σ_j w_j·texel / Σ_j w_j over `taps` cells."""
        if (taps, hard) not in cache:
            k = taps // 2
            acc = np.zeros(src.shape, np.float32)
            wsum = np.zeros((1, size), np.float32)
            for j in range(-k, k + 1):
                w = _gaus(du + np.float32(j), hard)  # (1, size)
                acc += src[:, cols[j]] * w[..., None]
                wsum += w
            cache[taps, hard] = acc / wsum[..., None]
        return cache[taps, hard][rows[off]]

    def scan(off: int, hard: float) -> np.ndarray:
        return _gaus(dv + np.float32(off), hard)[..., None]  # (size, 1, 1)

    out = np.zeros((size, size, 3), np.float32)
    for off, taps in ((-1, 3), (0, 5), (1, 3)):
        out += horz(off, taps, hard_pix) * scan(off, hard_scan)
    if bloom_amt > 0:
        b = np.zeros_like(out)
        for off, taps, hard in (
            (-2, 5, hard_pix),
            (-1, 7, bloom_pix),
            (0, 7, bloom_pix),
            (1, 7, bloom_pix),
            (2, 5, hard_pix),
        ):
            b += horz(off, taps, hard) * scan(off, bloom_scan)
        out += b * np.float32(bloom_amt)
    if warp > 0:
        x, y = c[None, :] * 2 - 1, c[:, None] * 2 - 1
        uw = (x * (1 + y * y * warp)) * 0.5 + 0.5
        vw = (y * (1 + x * x * warp)) * 0.5 + 0.5
        out = _bilinear(out, uw, vw)
    out *= np.float32(bright)
    mask = crt_mask(str(params["crtMask"]), size, float(params["crtMaskStrength"]))
    if mask is not None:
        out *= mask
    res8 = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
    rgba[:, :, :3] = res8[::-1]
