"""The picture's frame and colour encoding (art_explorer/scene/view.py): one sRGB
transfer function for the renderer (numpy) and the twin (torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_explorer.scene import view


def test_srgb_round_trip_and_known_values() -> None:
    c = np.linspace(0.0, 1.0, 101)
    np.testing.assert_allclose(
        view.linear_to_srgb(view.srgb_to_linear(c)), c, atol=1e-12
    )
    assert view.srgb_to_linear(0.5) == np.float64(((0.5 + 0.055) / 1.055) ** 2.4)
    assert view.srgb_to_linear(0.02) == np.float64(0.02 / 12.92)
    # outside [0, 1] clips, as the picture does
    assert float(view.linear_to_srgb(2.0)) == pytest.approx(1.0)
    assert float(view.srgb_to_linear(-0.5)) == 0.0


def test_torch_matches_numpy_with_gradients_at_the_ends() -> None:
    c = np.linspace(0.0, 1.0, 57)
    t = torch.tensor(c, requires_grad=True)
    lin = view.srgb_to_linear(t)
    np.testing.assert_allclose(lin.detach().numpy(), view.srgb_to_linear(c), atol=1e-12)
    np.testing.assert_allclose(
        view.linear_to_srgb(t).detach().numpy(), view.linear_to_srgb(c), atol=1e-12
    )
    lin.sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    assert float(t.grad[-1]) > 0  # a colour at 0xFF still learns to darken
