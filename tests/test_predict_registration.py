"""art_explorer/predict/registration.py: the scene transform fitted on pixels."""

from __future__ import annotations

from typing import Any

from art_explorer.predict.registration import apply_similarity, register
from art_explorer.scene import rendering
from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics

pytest_plugins = ["predict_fixtures"]  # client, target_params, bank_dir, refs_file


def test_registration_recovers_the_scene_transform(
    client: rendering.RendererClient, target_params: dict[str, Any]
) -> None:
    moved = apply_similarity(target_params, -0.8, 1.15, (0.4, -0.3))
    img, tgt = client.render(target_params, 64), client.render(moved, 64)
    ((a, k, tx, ty, ncc),) = register(to_tensor(img), to_tensor(tgt), [(0.85, 1.5)])
    assert ncc > 0.8
    back = client.render(apply_similarity(target_params, a, k, (tx, ty)), 128)
    assert metrics.ncc(back, client.render(moved, 128)) > 0.8
    assert (
        metrics.ncc(client.render(target_params, 128), client.render(moved, 128)) < 0.5
    )
