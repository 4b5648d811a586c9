"""The models' encoding of params: `Encoded` (continuous values in [0, 1] with
sin/cos for angles, categorical indices, booleans, the layers), `encode_params`,
`decode_params`. Derived from schema.SCHEMA and schema.LAYER_SCHEMA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from art_explorer.scene import schema


@dataclass
class Encoded:
    """Params as arrays for the models. Continuous values are min-max normalised to
    [0, 1] over the hard (optimiser) range; absent layer overrides hold the base's
    effective value, so every column is meaningful; `layer_opt` says which are set.

    cont:      (NC,)            float32 in [0, 1], see CONT_NAMES
    cat:       (NK,)            int64 option index per CAT_KEYS
    bools:     (NB,)            float32 0/1 per BOOL_KEYS
    n_layers:  ()               int64 in 0..MAX_LAYERS
    layer_cont:(L, NLC)         float32 in [0, 1], see LAYER_CONT_COMPONENTS
    layer_opt: (L, NLO)         float32 0/1, presence of each LAYER_OPTIONAL key
    layer_geom:(L,)             int64 geometry index (effective: override or base)
    """

    cont: np.ndarray
    cat: np.ndarray
    bools: np.ndarray
    n_layers: np.ndarray
    layer_cont: np.ndarray
    layer_opt: np.ndarray
    layer_geom: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(self.__dict__)


NUM_CONT = len(schema.CONT_COMPONENTS)
NUM_LAYER_CONT = len(schema.LAYER_CONT_COMPONENTS)
NUM_LAYER_OPT = len(schema.LAYER_OPTIONAL)
CAT_SIZES = tuple(len(schema.PARAM[k].options) for k in schema.CAT_KEYS)


def _norm(p: schema.Param, x: float) -> float:
    if p.periodic:
        x = schema.wrap_angle(x)
    lo, hi = p.clamp_lo, p.clamp_hi
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def _denorm(p: schema.Param, u: float) -> float:
    u = min(1.0, max(0.0, float(u)))
    x = p.clamp_lo + u * (p.clamp_hi - p.clamp_lo)
    return schema.wrap_angle(x) if p.periodic else x


def _get_component(p: schema.Param, v: Any, c: int) -> float:
    if p.kind == "vec2":
        return float(v["xy"[c]])
    if p.kind == "pair":
        return float(v[c])
    if p.kind == "color":
        return schema.color_to_rgb(v)[c]
    return float(v)


def _encode_scalar(p: schema.Param, v: Any, c: int) -> float:
    x = _get_component(p, v, c)
    return x if p.kind == "color" else _norm(p, x)


def encode_params(params: dict[str, Any]) -> Encoded:
    """Flat params → Encoded arrays (see Encoded). Raises ParamError beyond
    MAX_LAYERS layers (the models' encoding holds no more)."""
    flat = schema.validate_params(params)
    if len(flat["layers"]) > schema.MAX_LAYERS:
        raise schema.ParamError(
            f"layers: the models encode at most {schema.MAX_LAYERS}, got "
            f"{len(flat['layers'])}",
            "layers",
        )
    cont = np.array(
        [
            _encode_scalar(schema.PARAM[k], flat[k], c)
            for k, c in schema.CONT_COMPONENTS
        ],
        np.float32,
    )
    cat = np.array(
        [schema.PARAM[k].options.index(flat[k]) for k in schema.CAT_KEYS], np.int64
    )
    bools = np.array([float(flat[k]) for k in schema.BOOL_KEYS], np.float32)
    layer_cont = np.zeros((schema.MAX_LAYERS, NUM_LAYER_CONT), np.float32)
    layer_opt = np.zeros((schema.MAX_LAYERS, NUM_LAYER_OPT), np.float32)
    layer_geom = np.zeros(schema.MAX_LAYERS, np.int64)
    for i, layer in enumerate(flat["layers"]):
        eff = {**{k: flat[k] for k in schema.LAYER_OPTIONAL}, **layer}
        for j, (k, c) in enumerate(schema.LAYER_CONT_COMPONENTS):
            layer_cont[i, j] = _encode_scalar(schema.LAYER_PARAM[k], eff[k], c)
        for j, k in enumerate(schema.LAYER_OPTIONAL):
            layer_opt[i, j] = float(k in layer)
        layer_geom[i] = schema.GEOMETRIES.index(eff["geometry"])
    n = np.array(len(flat["layers"]), np.int64)
    return Encoded(cont, cat, bools, n, layer_cont, layer_opt, layer_geom)


def decode_params(enc: Encoded | dict[str, Any]) -> dict[str, Any]:
    """Encoded arrays (or a dict of them; torch tensors work too) → flat params.

    Continuous values are clipped to [0, 1] and de-normalised, ints rounded,
    bools thresholded at 0.5, layer overrides kept where layer_opt > 0.5.
    """
    d = enc.as_dict() if isinstance(enc, Encoded) else enc
    a = {k: np.asarray(_to_numpy(v)) for k, v in d.items()}
    out = schema.default_params()
    out["layers"] = []
    vals: dict[str, list[float]] = {}
    for (k, _c), u in zip(schema.CONT_COMPONENTS, a["cont"].tolist(), strict=False):
        vals.setdefault(k, []).append(u)
    for k, us in vals.items():
        out[k] = _decode_value(schema.PARAM[k], us)
    for k, idx in zip(schema.CAT_KEYS, a["cat"].tolist(), strict=False):
        out[k] = schema.PARAM[k].options[int(idx)]
    for k, b in zip(schema.BOOL_KEYS, a["bools"].tolist(), strict=False):
        out[k] = bool(b > 0.5)
    n = int(np.clip(int(a["n_layers"]), 0, schema.MAX_LAYERS))
    for i in range(n):
        lvals: dict[str, list[float]] = {}
        for (k, _c), u in zip(
            schema.LAYER_CONT_COMPONENTS, a["layer_cont"][i].tolist(), strict=False
        ):
            lvals.setdefault(k, []).append(u)
        layer: dict[str, Any] = {}
        for k in schema.LAYER_REQUIRED:
            layer[k] = _decode_value(schema.LAYER_PARAM[k], lvals[k])
        for j, k in enumerate(schema.LAYER_OPTIONAL):
            if a["layer_opt"][i, j] > 0.5:
                if k == "geometry":
                    layer[k] = schema.GEOMETRIES[int(a["layer_geom"][i])]
                else:
                    layer[k] = _decode_value(schema.LAYER_PARAM[k], lvals[k])
        out["layers"].append(layer)
    return out


def _decode_value(p: schema.Param, us: list[float]) -> Any:
    if p.kind == "color":
        return schema.rgb_to_color(us)
    if p.kind == "vec2":
        return {"x": _denorm(p, us[0]), "y": _denorm(p, us[1])}
    if p.kind == "pair":
        return [_denorm(p, us[0]), _denorm(p, us[1])]
    x = _denorm(p, us[0])
    return round(x) if p.kind == "int" else x


def _to_numpy(v: Any) -> Any:
    if hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    return v
