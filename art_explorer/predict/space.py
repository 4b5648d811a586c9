"""The search space of one configuration: its continuous values as a point in [0, 1]^d."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from art_explorer.scene import encoding, schema

COLOR_KEYS = ("color",)  # fitted by colour.py, not searched (the loss is on grey)
DITHER_CONT = ("ditherColors", "ditherStrength", "ditherScale", "ditherBias")
NOISE_CONT = ("noiseDensity", "noiseOpacity", "noiseSize")


@dataclass
class SearchSpace:
    """The continuous search space of one configuration (the discrete choices of
    `base`: categoricals, booleans, layer count, which layer overrides are set, layer
    geometries). A point x is a vector in [0, 1]^d (periodic angles wrap) of the
    encoding.encode_params normalised values; the values not searched stay as in base.

    dims="active": what the picture depends on: no colours (the loss is on grey;
    colour is fitted separately), noise/dither values only when enabled, layer
    overrides only when set. dims="all": every continuous value of the config
    (the plain CMA-ES baseline of evaluation.md).
    """

    base: dict[str, Any]
    cont_idx: list[int]
    layer_idx: list[tuple[int, int]]
    periodic: np.ndarray
    names: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, params: dict[str, Any], dims: str = "active") -> SearchSpace:
        base = schema.validate_params(params)
        cont_idx: list[int] = []
        periodic: list[bool] = []
        names: list[str] = []
        for i, (k, _c) in enumerate(schema.CONT_COMPONENTS):
            if dims == "active" and (
                k in COLOR_KEYS
                or (k in NOISE_CONT and not base["noiseEnabled"])
                or (k in DITHER_CONT and not base["ditherEnabled"])
            ):
                continue
            cont_idx.append(i)
            periodic.append(schema.PARAM[k].periodic)
            names.append(schema.CONT_NAMES[i])
        layer_idx: list[tuple[int, int]] = []
        for li, layer in enumerate(base["layers"]):
            for j, (k, c) in enumerate(schema.LAYER_CONT_COMPONENTS):
                if dims == "active" and (
                    k in COLOR_KEYS
                    or (k not in schema.LAYER_REQUIRED and k not in layer)
                ):
                    continue
                layer_idx.append((li, j))
                periodic.append(schema.LAYER_PARAM[k].periodic)
                kind = schema.LAYER_PARAM[k].kind
                sub = {"vec2": ".xy", "color": ".rgb"}.get(kind, "")
                names.append(f"layers[{li}].{k}{sub[:1] + sub[1 + c] if sub else ''}")
        return cls(base, cont_idx, layer_idx, np.array(periodic, bool), names)

    @property
    def dim(self) -> int:
        return len(self.cont_idx) + len(self.layer_idx)

    def bounds(self) -> list[list[float | None]]:
        """pycma bounds: [0, 1] except periodic dims (unbounded, decoded mod 1)."""
        lo = [None if p else 0.0 for p in self.periodic]
        hi = [None if p else 1.0 for p in self.periodic]
        return [lo, hi]

    def encode(self, params: dict[str, Any]) -> np.ndarray:
        """Params of this config → x in [0, 1]^d."""
        enc = encoding.encode_params(params)
        x = [enc.cont[i] for i in self.cont_idx]
        x += [enc.layer_cont[li, j] for li, j in self.layer_idx]
        return np.array(x, np.float64)

    def decode(self, x: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """x → flat params (base with the searched values replaced)."""
        x = np.asarray(x, np.float64)
        x = np.where(self.periodic, np.mod(x, 1.0), np.clip(x, 0.0, 1.0))
        enc = encoding.encode_params(self.base).as_dict()
        n = len(self.cont_idx)
        enc["cont"][self.cont_idx] = x[:n]
        for (li, j), v in zip(self.layer_idx, x[n:], strict=True):
            enc["layer_cont"][li, j] = v
        out = encoding.decode_params(enc)
        # decode_params rebuilds colours from the encoding; keep the base's exactly.
        out["color"] = self.base["color"]
        for layer, b in zip(out["layers"], self.base["layers"], strict=True):
            if "color" in b:
                layer["color"] = b["color"]
        return out
