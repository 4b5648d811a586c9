"""The twin's view of a scene: its discrete choices fixed in a `Structure`, its
continuous values as (B,) tensors in the parameters' own units, and the converters
between those and flat params."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from art_explorer.scene import schema

# The continuous values the twin draws (others, e.g. noise, do not reach it).
SCENE_KEYS = (
    "alphaFactor",
    "scaleFactor",
    "rotationFactor",
    "stepFactor",
    "xStep",
    "yStep",
    "scale",
    "rotation",
    "position",
    "geoWidth",
    "gradientAngle",
    "color",
    "startAngle",
    "gradientRange",
)


# ----------------------------------------------------------------------------------
# Structure and values


@dataclass(frozen=True)
class Structure:
    """The discrete choices of a scene, fixed while its continuous values move.

    params: the complete flat params it came from (for `params_of`).
    geometries: the outline of each chain (base first, then one per layer).
    layer_keys: per layer, the continuous keys it sets itself (the rest fall back to
        the base's value)."""

    params: dict[str, Any]
    geometries: tuple[str, ...]
    layer_keys: tuple[tuple[str, ...], ...]

    @property
    def repetitions(self) -> int:
        return int(self.params["repetitions"])


def _kind(key: str) -> str | None:
    p = schema.PARAM.get(key)
    return p.kind if p is not None else None


def _layer_kind(key: str) -> str | None:
    p = schema.LAYER_PARAM.get(key)
    return p.kind if p is not None else None


def _components(key: str, kind: str | None) -> tuple[str, ...]:
    """The scalar names of one value: 'x', 'position.x', 'color.r', ..."""
    if kind in ("int", "float"):
        return (key,)
    if kind == "vec2":
        return (f"{key}.x", f"{key}.y")
    if kind == "color":
        return (f"{key}.r", f"{key}.g", f"{key}.b")
    if kind == "pair":
        return (f"{key}.0", f"{key}.1")
    return ()


def _scalars(key: str, kind: str | None, v: Any) -> list[float]:
    if kind == "vec2":
        return [float(v["x"]), float(v["y"])]
    if kind == "color":
        return list(schema.color_to_rgb(v))
    if kind == "pair":
        return [float(v[0]), float(v[1])]
    return [float(v)]


def _value_kind(key: str, v: Any, layer: bool = False) -> str | None:
    kind = _layer_kind(key) if layer else _kind(key)
    if kind in ("int", "float", "vec2", "color", "pair"):
        return kind
    return None


def structure_of(params: dict[str, Any]) -> Structure:
    """The discrete choices of complete flat params."""
    geoms = [params["geometry"]] + [
        layer.get("geometry", params["geometry"]) for layer in params["layers"]
    ]
    keys = tuple(
        tuple(
            k
            for k in layer
            if k in SCENE_KEYS and _value_kind(k, layer[k], layer=True) is not None
        )
        for layer in params["layers"]
    )
    return Structure(dict(params), tuple(geoms), keys)


def value_names(struct: Structure) -> list[str]:
    """Every continuous scalar of the structure: 'scaleFactor', 'position.x',
    'color.r', 'layers.0.scale.x', ..."""
    names: list[str] = []
    p = struct.params
    for k in SCENE_KEYS:
        if k in p:
            names += _components(k, _value_kind(k, p[k]))
    for j, layer in enumerate(p["layers"]):
        for k in struct.layer_keys[j]:
            kind = _value_kind(k, layer[k], layer=True)
            names += [f"layers.{j}.{c}" for c in _components(k, kind)]
    return names


def values_of(
    params_list: list[dict[str, Any]],
    struct: Structure,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """The continuous values of params sharing `struct`, each a float64 (B,) tensor."""
    cols: dict[str, list[float]] = {n: [] for n in value_names(struct)}
    for params in params_list:
        row: dict[str, float] = {}
        for k in SCENE_KEYS:
            if k in params:
                kind = _value_kind(k, params[k])
                row.update(
                    zip(
                        _components(k, kind),
                        _scalars(k, kind, params[k]),
                        strict=True,
                    )
                )
        for j, layer in enumerate(params["layers"]):
            for k in struct.layer_keys[j]:
                kind = _value_kind(k, layer[k], layer=True)
                for c, x in zip(
                    _components(k, kind), _scalars(k, kind, layer[k]), strict=True
                ):
                    row[f"layers.{j}.{c}"] = x
        for n in cols:
            cols[n].append(row[n])
    return {
        n: torch.tensor(c, dtype=torch.float64, device=device) for n, c in cols.items()
    }


def params_of(
    struct: Structure, values: dict[str, torch.Tensor], b: int = 0
) -> dict[str, Any]:
    """Complete flat params of batch item b (colours clipped to [0, 1])."""
    out = {**struct.params, "layers": [dict(x) for x in struct.params["layers"]]}

    def put(dst: dict[str, Any], key: str, prefix: str, layer: bool) -> None:
        kind = _value_kind(key, dst[key], layer)
        xs = [float(values[prefix + c][b]) for c in _components(key, kind)]
        if kind == "vec2":
            dst[key] = {"x": xs[0], "y": xs[1]}
        elif kind == "color":
            dst[key] = schema.rgb_to_color(xs)
        elif kind == "pair":
            dst[key] = xs
        else:
            dst[key] = xs[0]

    for k in SCENE_KEYS:
        if k in out:
            put(out, k, "", False)
    for j, layer in enumerate(out["layers"]):
        for k in struct.layer_keys[j]:
            put(layer, k, f"layers.{j}.", True)
    return out


def _get(
    values: dict[str, torch.Tensor], struct: Structure, chain: int, name: str
) -> torch.Tensor:
    """Value `name` (a scalar name such as 'scaleFactor' or 'color.r') of chain
    `chain` (0 = base): the layer's own when it sets it, else the base's."""
    if chain > 0:
        key = name.split(".")[0]
        if key in struct.layer_keys[chain - 1]:
            return values[f"layers.{chain - 1}.{name}"]
    return values[name]
