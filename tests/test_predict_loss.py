"""art_explorer/predict/loss.py: the image loss every stage minimises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from predict_fixtures import plain, sample

from art_explorer.predict.loss import ImageLoss
from art_explorer.scene import rendering
from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics

pytest_plugins = ["predict_fixtures"]  # client, target_params, bank_dir, refs_file


def test_image_loss_ranks_blank_worst_and_matches_utils_metrics(
    client: rendering.RendererClient, target_params: dict[str, Any]
) -> None:
    t = client.render(target_params, 128)
    loss = ImageLoss(t, sigmas=(2.0,))
    same, blank = to_tensor(t), to_tensor(np.zeros_like(t))
    assert float(loss(same)[0]) < 1e-4
    assert float(loss(blank)[0]) == pytest.approx(1.0, abs=1e-3)
    other = client.render(plain(sample(7)), 128)
    assert 1 - float(loss(to_tensor(other))[0]) == pytest.approx(
        metrics.ncc(other, t), abs=2e-3
    )
    t256, o256 = client.render(target_params, 256), client.render(plain(sample(7)), 256)
    f1 = ImageLoss(t256).line_f1(to_tensor(o256))
    assert float(f1[0]) == pytest.approx(metrics.line_f1(o256, t256), abs=1e-4)
