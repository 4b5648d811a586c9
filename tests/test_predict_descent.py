"""art_explorer/predict/descent.py: gradient descent through the forward model, on its
clock."""

from __future__ import annotations

import time
from typing import Any

import torch

from art_explorer.predict.descent import gradient_descent
from art_explorer.predict.loss import ImageLoss
from art_explorer.scene import schema, structure


class SlowForward:
    """A stand-in forward model whose picture is a flat grey, the mean of the
    continuous values (B, 1, 1, 1) spread to (B, 3, 16, 16), taking 20 ms a step (a large model on a busy CPU takes seconds)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        self.calls += 1
        time.sleep(0.02)
        layers = batch["layer_cont"].flatten(1).mean(dim=1)
        level = (batch["cont"].mean(dim=1) + 0 * layers)[:, None, None, None]
        return level.expand(-1, 3, 16, 16)


def test_the_forward_models_descent_stops_when_its_seconds_are_spent() -> None:
    p = schema.default_params()
    loss = ImageLoss(structure.LocalRenderer().render(p, 16))
    fwd = SlowForward()
    found, losses = gradient_descent(fwd, loss, [p], steps=10_000, seconds=0.2)
    assert 1 <= fwd.calls < 10_000  # stopped by the clock, not the steps
    assert len(found) == 1 and len(losses) == 1
    assert schema.validate_params(found[0])["geometry"] == p["geometry"]
    fwd = SlowForward()
    gradient_descent(fwd, loss, [p], steps=3)
    assert fwd.calls == 3  # no limit: every step
