"""metrics.py: the one implementation of NCC, line F1, the blur and lit coverage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_explorer.scoring import metrics


def lines(size: int = 64) -> np.ndarray:
    img = np.zeros((size, size, 3))
    img[10:54, 20] = 1.0  # a vertical line
    img[30, 5:60] = 0.8  # and a horizontal one
    return img


def test_ncc_and_line_f1_are_0_for_blank_and_fall_with_distance() -> None:
    img = lines()
    blank = np.zeros_like(img)
    assert metrics.ncc(blank, img) == 0.0 and metrics.line_f1(blank, img) == 0.0
    assert metrics.ncc(img, img) == pytest.approx(1.0)
    assert metrics.line_f1(img, img) == 1.0
    shifts = (0, 1, 2, 3, 6, 12)
    moved = [np.roll(img, d, axis=1) for d in shifts]
    nccs = [metrics.ncc(m, img) for m in moved]
    assert nccs == sorted(nccs, reverse=True) and len(set(nccs)) == len(nccs)
    f1s = [metrics.line_f1(m, img) for m in moved]
    assert f1s[:3] == [1.0, 1.0, 1.0]  # matched within LINE_RADIUS = 2 px
    assert f1s[3] < 0.7


def test_line_f1_counts_half_the_lines_found() -> None:
    target = lines()
    half = target.copy()
    half[30, 5:60] = 0  # the prediction misses the horizontal line
    lit_t = (np.sqrt(target.mean(-1)) > metrics.LIT).sum()
    lit_h = (np.sqrt(half.mean(-1)) > metrics.LIT).sum()
    recall = lit_h / lit_t  # every predicted pixel is a target pixel: precision 1
    f1 = metrics.line_f1(half, target)
    assert f1 < 1.0
    # the horizontal line's pixels within 2 px of the vertical one still count
    assert f1 >= 2 * recall / (1 + recall) - 1e-9


def test_batched_measures_are_the_per_picture_ones() -> None:
    rng = np.random.default_rng(0)
    a = (rng.random((3, 32, 32, 3)) ** 6).astype(np.float32)
    b = np.roll(a, 1, axis=2)
    b[2] = 0  # a blank target
    ta, tb = (torch.from_numpy(x).permute(0, 3, 1, 2) for x in (a, b))
    nccs = metrics.ncc_batch(ta, tb).tolist()
    f1s = metrics.line_f1_batch(ta, tb).tolist()
    for i in range(3):  # float32 batch vs the float64 single picture
        assert nccs[i] == pytest.approx(metrics.ncc(a[i], b[i]), abs=1e-5)
        assert f1s[i] == metrics.line_f1(a[i], b[i])
    assert nccs[2] == 0.0 and f1s[2] == 0.0


def test_blur_is_a_reflect_padded_gaussian() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((9, 12))
    sigma = 1.3
    r = int(np.ceil(3 * sigma))
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    p = np.pad(a, r, mode="reflect")  # reflect without repeating the edge
    want = np.zeros_like(a)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            want += k[dy + r] * k[dx + r] * p[r + dy : r + dy + 9, r + dx : r + dx + 12]
    assert np.allclose(metrics.gaussian_blur(a, sigma), want, atol=1e-12)
    assert np.allclose(metrics.gaussian_blur(np.full((5, 7), 0.3), 2.0), 0.3)
    assert metrics.gaussian_blur(a, 0) is a


def test_ncc_loss_has_a_finite_gradient_at_black() -> None:
    pred = torch.zeros(2, 3, 16, 16, requires_grad=True)
    target = (
        torch.from_numpy(lines()[::4, ::4])
        .float()
        .permute(2, 0, 1)[None]
        .repeat(2, 1, 1, 1)
    )
    metrics.ncc_batch(pred, target, 0.5, 1e-4).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_lit_coverage_and_scaled_sigma() -> None:
    img = np.zeros((10, 10, 3))
    img[:2] = metrics.LIT**2 * 1.01  # just lit
    img[2:4] = metrics.LIT**2 * 0.99  # just dark
    assert metrics.lit_share(img) == pytest.approx(0.2)
    t = torch.from_numpy(np.stack([img, img * 0])).permute(0, 3, 1, 2)
    assert metrics.lit_coverage(t).tolist() == pytest.approx([0.2, 0.0])
    assert metrics.scaled_sigma(metrics.NCC_SIGMA, 128) == metrics.NCC_SIGMA / 2
