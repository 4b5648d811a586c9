"""Where the twin places each instance: the affine chain view · scene · group ·
instance, composed as three.js draws it (renderer/instancing.py)."""

from __future__ import annotations

from typing import Any

import torch

from art_explorer.scene.twin.values import Structure, _get
from renderer import scene
from renderer.instancing import compose_decomposed

# ----------------------------------------------------------------------------------
# Drawing


def _affine(
    tx: torch.Tensor, ty: torch.Tensor, rot: torch.Tensor, sx: Any, sy: Any
) -> torch.Tensor:
    """(B, 3, 3): T(tx, ty) · R(rot radians) · S(sx, sy), as scene._affine."""
    c, s = rot.cos(), rot.sin()
    z, o = torch.zeros_like(c), torch.ones_like(c)
    sx = sx + z
    sy = sy + z
    rows = [
        torch.stack([c * sx, -s * sy, tx + z], -1),
        torch.stack([s * sx, c * sy, ty + z], -1),
        torch.stack([z, z, o], -1),
    ]
    return torch.stack(rows, -2)


def chain_matrix(
    struct: Structure, values: dict[str, torch.Tensor], chain: int, size: int
) -> torch.Tensor:
    """(B, 3, 3): the chain's group units → pixels (view · scene · group), as
    scene.chain_instances: Scene = R(rotation)·S(scale); the base's group is
    T(Scene.position), a layer's T(position)·R(rotation)·S(scale.x, scale.y)."""
    v = values
    z = torch.zeros_like(v["scale"])
    view = torch.tensor(scene.view_matrix(size), dtype=z.dtype, device=z.device)
    m = view @ _affine(z, z, v["rotation"], v["scale"], v["scale"])
    if chain == 0:
        return m @ _affine(v["position.x"], v["position.y"], z, 1.0, 1.0)
    g = f"layers.{chain - 1}."
    group = _affine(
        v[g + "position.x"],
        v[g + "position.y"],
        v[g + "rotation"],
        v[g + "scale.x"],
        v[g + "scale.y"],
    )
    return m @ group


def instance_linear(
    lin: torch.Tensor, s: torch.Tensor, r: torch.Tensor, scale: torch.Tensor, ppu: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each instance's linear part local → px as three.js draws it (B, n, 2, 2) and
    its z entry (B, n), as scene.chain_instances: the world matrix (group · s_i·R(r_i),
    lin (B, 2, 2) being view · scene · group) decomposed and composed back
    (renderer/instancing.py). s, r: (B, n); scale: Scene.scale (B,)."""
    c, sn = r.cos() * s, r.sin() * s
    g = lin / torch.tensor([[ppu], [-ppu]], dtype=lin.dtype, device=lin.device)
    g00, g01 = g[:, 0, 0, None], g[:, 0, 1, None]
    g10, g11 = g[:, 1, 0, None], g[:, 1, 1, None]
    a, b, cc, d, zc = compose_decomposed(
        g00 * c + g01 * sn,
        -g00 * sn + g01 * c,
        g10 * c + g11 * sn,
        -g10 * sn + g11 * c,
        scale[:, None] * s,
    )
    rows = [torch.stack([a, b], -1), torch.stack([-cc, -d], -1)]
    return ppu * torch.stack(rows, -2), zc


def stroke_radius(
    struct: Structure, values: dict[str, torch.Tensor], chain: int
) -> torch.Tensor:
    """(B,) half the drawn band's width in element-local units."""
    return _get(values, struct, chain, "geoWidth") * getattr(
        scene, "STROKE_RADIUS_PER_WIDTH", 1.0
    )
