"""How each instance is placed as three.js draws it (renderer/instancing.py): the world
matrix decomposed and composed back, and the band's edges the clip planes leave."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from art_explorer.scene import schema
from renderer import scene
from renderer.instancing import (
    FAR_DEPTH,
    NEAR_DEPTH,
    compose_decomposed,
    visible_edge,
)


def _rot(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


@pytest.mark.parametrize("angle", [0.0, 0.7, 2.0, -2.9, math.pi])
@pytest.mark.parametrize("sx, sy", [(1.0, 1.0), (-1.0, 1.0), (0.3, -1.7), (-2, -0.5)])
@pytest.mark.parametrize("zz", [0.4, -0.4])
def test_a_rotation_times_a_scale_is_kept(
    angle: float, sx: float, sy: float, zz: float
) -> None:
    """Without shear, compose(decompose(W)) is W (the golden set 1's layers)."""
    w = _rot(angle) @ np.diag([sx, sy])
    out = compose_decomposed(w[0, 0], w[0, 1], w[1, 0], w[1, 1], zz)
    np.testing.assert_allclose(np.reshape(out[:4], (2, 2)), w, atol=1e-12)
    assert abs(out[4]) == pytest.approx(abs(zz))


def test_a_sheared_matrix_loses_its_shear() -> None:
    """A layer scaled non-uniformly, then the instance turned: where three.js reads
    a turn about z off the columns (trace > 0), the drawn matrix has orthogonal
    columns in the ratio of W's column lengths (a stroke at its own angle)."""
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(300):
        g = _rot(rng.uniform(-3, 3)) @ np.diag(rng.uniform(-2, 2, 2))
        w = g @ _rot(rng.uniform(-3, 3)) * rng.uniform(0.1, 3)
        lengths = np.hypot(*w)  # column lengths
        n = w / lengths * np.array([np.sign(np.linalg.det(w)), 1.0])
        if n[0, 0] + n[1, 1] + 1 <= 0:
            continue
        a, b, c, d, _ = compose_decomposed(w[0, 0], w[0, 1], w[1, 0], w[1, 1], 0.5)
        out = np.array([[a, b], [c, d]])
        assert abs(out[:, 0] @ out[:, 1]) < 1e-9 * (1 + np.abs(out).max() ** 2)
        got = np.hypot(*out)
        assert got[0] / got[1] == pytest.approx(lengths[0] / lengths[1], rel=1e-9)
        checked += 1
    assert checked > 100


def test_torch_matches_numpy_and_its_gradients_are_finite() -> None:
    rng = np.random.default_rng(5)
    w = rng.uniform(-2, 2, (500, 4))
    zz = rng.choice([-0.5, 0.5], 500)
    ref = compose_decomposed(w[:, 0], w[:, 1], w[:, 2], w[:, 3], zz)
    t = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    got = compose_decomposed(t[:, 0], t[:, 1], t[:, 2], t[:, 3], torch.tensor(zz))
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g.detach().numpy(), r, rtol=1e-9, atol=1e-12)
    sum(x.sum() for x in got[:4]).backward()  # type: ignore[union-attr]
    assert t.grad is not None and torch.isfinite(t.grad).all()


def test_a_zero_column_gives_nan_to_be_skipped() -> None:
    out = compose_decomposed(0.0, 1.0, 0.0, 1.0, 1.0)
    assert not np.isfinite(out[0])


def test_visible_edge_is_the_whole_band_until_the_crest_passes_a_clip_plane() -> None:
    r = 0.05
    assert visible_edge(np.float64(10.0), np.float64(1.0), r) == r
    big = 1000.0
    assert visible_edge(np.float64(big), np.float64(2.0), r) == pytest.approx(
        NEAR_DEPTH / big
    )
    # a negative own scale turns the far half towards the camera: the far plane clips
    assert visible_edge(np.float64(big), np.float64(-2.0), r) == r
    assert visible_edge(np.float64(1e5), np.float64(-2.0), r) == pytest.approx(
        FAR_DEPTH / 1e5
    )


def test_huge_instances_of_the_renderer_keep_only_their_edges() -> None:
    """sf = 2, 12 instances: the last ones scale past the near plane (Scene.scale ·
    s_i · geoWidth > 4.9) and draw only the two edge strips of their band."""
    p = schema.default_params() | {
        "repetitions": 12,
        "scaleFactor": 2.0,
        "scaleProgression": "exponential",
        "geoWidth": 0.1,
        "geometry": "line",  # through the centre: every instance crosses the view
        "stepFactor": 0.0,
        "origin": "center",
        "scale": 1.0,
        "layers": [],
    }
    p = schema.validate_params(p)
    inst = scene.chain_instances(p, scene.chains(p)[0], 256)
    assert len(inst.edge) == 12
    assert (inst.edge <= 0.1).all()
    assert (inst.edge < 0.1).any()
    assert inst.edge[0] == pytest.approx(0.1)
