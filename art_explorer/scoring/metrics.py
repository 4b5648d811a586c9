"""Measuring pictures (docs/evaluation.md): NCC of blurred √grey, line F1, lit share.

One implementation in torch, batched: (B, 3, R, R) float tensors in [0, 1]. The numpy
spellings (`ncc`, `line_f1`, `gaussian_blur`) take one picture, (H, W, 3) or (H, W)
in [0, 1], and call the same code, so a figure means the same in training, search,
prediction and the benchmarks.

Blur widths are in px at 256² (`REFERENCE_SIZE`) and scale with the picture's size.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

LIT = 0.15  # √grey above which a pixel counts as lit (line F1, lit coverage)
LINE_RADIUS = 2  # px: a lit pixel matches one of the other picture within this
REFERENCE_SIZE = 256  # the size at which the blur widths below are given
NCC_SIGMA = 2.0  # px at 256²: the blur of the evaluation's NCC
COARSE_SIGMA = 8.0  # px at 256²: the blur of the search's coarse NCC


def scaled_sigma(sigma: float, size: int) -> float:
    """A blur width given in px at 256² → px at `size`."""
    return sigma * size / REFERENCE_SIZE


# ----------------------------------------------------------------------------------
# Blur


def gauss_kernel(sigma: float) -> torch.Tensor:
    """(2r + 1,) normalised Gaussian taps, r = ⌈3σ⌉ (at least 1)."""
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) matrix M with (x @ M) = x blurred along its last axis (reflect pad)."""
    k = gauss_kernel(sigma).double()
    r = (len(k) - 1) // 2
    i = torch.arange(n)[:, None]
    j = i + torch.arange(-r, r + 1)[None, :]  # (n, 2r + 1) source index
    for _ in range(2):  # reflect without repeating the edge (twice for tiny n)
        j = torch.where(j < 0, -j, j)
        j = torch.where(j >= n, 2 * (n - 1) - j, j)
    m = torch.zeros(n, n, dtype=torch.float64)
    m.index_put_(
        (j.clamp(0, n - 1).flatten(), i.expand_as(j).flatten()),
        k.repeat(n),
        accumulate=True,
    )
    return m


def gaussian_blur_batch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (σ in px) of (..., H, W), reflect padding, as two
    matrix products; differentiable."""
    if sigma <= 0:
        return x
    mh = _blur_matrix(x.shape[-2], float(sigma)).to(x)
    mw = _blur_matrix(x.shape[-1], float(sigma)).to(x)
    return mh.T @ x @ mw


def gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """`gaussian_blur_batch` of one 2-D array (float64 in and out)."""
    if sigma <= 0:
        return a
    t = torch.from_numpy(np.asarray(a, np.float64))
    return gaussian_blur_batch(t, sigma).numpy()


# ----------------------------------------------------------------------------------
# NCC and line F1, batched


def sqrt_image(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """√x with a finite gradient at 0: √(x + eps) − √eps, x in [0, 1]."""
    return (x.clamp(min=0) + eps).sqrt() - math.sqrt(eps)


def gray_sqrt(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """(B, 3, R, R) in [0, 1] → √ of the channel mean, (B, 1, R, R); eps > 0 gives
    √(x + eps) − √eps, which has a finite gradient at black."""
    x = x if x.dtype == torch.float64 else x.float()
    g = x.mean(1, keepdim=True).clamp(min=0)
    return sqrt_image(g, eps) if eps > 0 else g.sqrt()


SQRT_EPS = 1e-6  # losses take √(grey + ε): a finite gradient at black


def ncc_features(images: torch.Tensor, sigma: float, eps: float = 0.0) -> torch.Tensor:
    """(B, 3, R, R) in [0, 1] → (B, R·R): √grey blurred by σ px, zero mean, unit
    norm: the vectors whose dot product is the NCC of the project's picture
    similarity (metrics, predict's loss and the twin's descent all use this one).
    eps > 0: √(grey + eps), which has a finite gradient at black (for losses)."""
    g = gaussian_blur_batch(gray_sqrt(images, eps), sigma).flatten(1)
    g = g - g.mean(1, keepdim=True)
    return g / (g.norm(dim=1, keepdim=True) + 1e-12)


def ncc_batch(
    a: torch.Tensor, b: torch.Tensor, sigma: float | None = None, eps: float = 0.0
) -> torch.Tensor:
    """(B,) Pearson correlation of √grey images blurred by sigma px (default
    `NCC_SIGMA` at 256², scaled with size); 0 when either is blank, 1 for a match.
    a, b: (B, 3, R, R) in [0, 1]. eps > 0: the differentiable √ of gray_sqrt (for
    losses)."""
    s = scaled_sigma(NCC_SIGMA, a.shape[-1]) if sigma is None else sigma
    return (ncc_features(a, s, eps) * ncc_features(b, s, eps)).sum(1)


def dilate(mask: torch.Tensor, r: int) -> torch.Tensor:
    """Dilation of a (B, 1, H, W) bool mask by a disk of radius r px."""
    t = torch.arange(-r, r + 1, device=mask.device)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= r * r).float()[None, None]
    return F.conv2d(mask.float(), disk, padding=r) > 0


def lit_mask(x: torch.Tensor, threshold: float = LIT) -> torch.Tensor:
    """(B, 3, R, R) in [0, 1] → (B, 1, R, R) bool: √grey > threshold."""
    return gray_sqrt(x) > threshold


def lit_coverage(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, R, R) in [0, 1] → (B,) share of lit pixels (√grey > `LIT`)."""
    return lit_mask(images).float().mean((1, 2, 3))


def line_f1_batch(
    a: torch.Tensor, b: torch.Tensor, threshold: float = LIT, radius: int = LINE_RADIUS
) -> torch.Tensor:
    """(B,) F1 of lit pixels (√grey > threshold) matched within `radius` px; a is the
    prediction, b the target; 0 when either is blank. Not differentiable."""
    ma, mb = lit_mask(a, threshold), lit_mask(b, threshold)
    sa, sb = ma.sum((1, 2, 3)).float(), mb.sum((1, 2, 3)).float()
    prec = (ma & dilate(mb, radius)).sum((1, 2, 3)) / sa.clamp(min=1)
    rec = (mb & dilate(ma, radius)).sum((1, 2, 3)) / sb.clamp(min=1)
    f1 = 2 * prec * rec / (prec + rec).clamp(min=1e-12)
    return torch.where((sa > 0) & (sb > 0), f1, torch.zeros_like(f1))


# ----------------------------------------------------------------------------------
# One picture at a time (numpy in, float out)


def _batch(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (H, W) array → (1, 3 or 1, H, W) float64 tensor."""
    a = np.asarray(img, np.float64)
    t = torch.from_numpy(a[..., None] if a.ndim == 2 else a)
    return t.permute(2, 0, 1)[None]


def ncc(a: np.ndarray, b: np.ndarray, sigma: float | None = None) -> float:
    """`ncc_batch` of two pictures: Pearson correlation of √grey blurred by sigma px
    (default 2 px at 256², scaled with size). 0 for a blank one; 1 for a match."""
    return float(ncc_batch(_batch(a), _batch(b), sigma)[0])


def line_f1(
    a: np.ndarray, b: np.ndarray, threshold: float = LIT, radius: int = LINE_RADIUS
) -> float:
    """`line_f1_batch` of two pictures; a: prediction, b: target."""
    return float(line_f1_batch(_batch(a), _batch(b), threshold, radius)[0])


def lit_share(img: np.ndarray) -> float:
    """Share of lit pixels (√grey > `LIT`) of one picture in [0, 1]."""
    return float(lit_coverage(_batch(img))[0])
