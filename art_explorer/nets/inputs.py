"""The networks' input: encoded params as a batch of tensors (`batch_encode`), the
names of its parts, and the conversions between its [0, 1] units and the params' own."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from art_explorer.scene import encoding, schema

ENCODED_KEYS = (
    "cont",
    "cat",
    "bools",
    "n_layers",
    "layer_cont",
    "layer_opt",
    "layer_geom",
)
NUM_GEOMETRIES = len(schema.GEOMETRIES)
# Chain-intrinsic continuous values (base units); the layer-overridable ones among them
# are mixed with the layer's value by its presence flag.
CHAIN_KEYS = (
    "repetitions",
    "alphaFactor",
    "scaleFactor",
    "rotationFactor",
    "stepFactor",
    "xStep",
    "yStep",
    "geoWidth",
    "gradientAngle",
    "startAngle",
    "gradientRange.0",
    "gradientRange.1",
)
CHAIN_CATS = (
    "scaleProgression",
    "rotationProgression",
    "alphaProgression",
    "positionProgression",
    "origin",
)
POST_CONT = (
    "noiseDensity",
    "noiseOpacity",
    "noiseSize",
    "ditherColors",
    "ditherStrength",
    "ditherScale",
    "ditherBias",
    "crtBleed",
    "crtBloom",
    "crtBrightness",
    "crtMaskStrength",
    "crtScale",
    "crtScanlines",
    "crtWarp",
)
POST_CATS = ("ditherType", "ditherMatrix", "crtMask")


def cont_index(name: str) -> int:
    return schema.CONT_NAMES.index(name)


def param_of(name: str) -> schema.Param:
    """The schema entry of a CONT_NAMES name ('gradientRange.0' → gradientRange)."""
    return schema.PARAM[name.split(".")[0]]


def layer_index(key: str, comp: int = 0) -> int:
    return schema.LAYER_CONT_COMPONENTS.index((key, comp))


def unit_affine(p_from: schema.Param, p_to: schema.Param) -> tuple[float, float]:
    """(a, b) with u_to = a·u_from + b, for [0, 1] encodings of the same quantity."""
    lo_f, hi_f, lo_t, hi_t = (
        p_from.clamp_lo,
        p_from.clamp_hi,
        p_to.clamp_lo,
        p_to.clamp_hi,
    )
    a = (hi_f - lo_f) / (hi_t - lo_t)
    return a, (lo_f - lo_t) / (hi_t - lo_t)


def denorm(u: torch.Tensor, p: schema.Param) -> torch.Tensor:
    """[0, 1] encoding → the value in the parameter's own units (no clipping)."""
    return p.clamp_lo + u * (p.clamp_hi - p.clamp_lo)


def batch_encode(
    params_list: list[dict[str, Any]], device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """Flat params (any spelling) → the models' batch: a dict of stacked tensors.

    cont (B, NC) float in [0, 1], cat (B, NK) long, bools (B, NB) float 0/1,
    n_layers (B,) long in 0..5, layer_cont (B, 5, NLC) float in [0, 1],
    layer_opt (B, 5, NLO) float 0/1, layer_geom (B, 5) long (see encoding.Encoded).
    """
    encs = [encoding.encode_params(p).as_dict() for p in params_list]
    out: dict[str, torch.Tensor] = {}
    for k in ENCODED_KEYS:
        arr = np.stack([e[k] for e in encs]) if encs else np.zeros((0,))
        out[k] = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    return out


def fourier(x: torch.Tensor, n_freq: int) -> torch.Tensor:
    """(..., D) values in [0, 1] → (..., D·(1 + 2·n_freq)): x, sin and cos of
    π·2^k·x for k < n_freq (periodic angles get an exact period at k = 1)."""
    if n_freq <= 0:
        return x
    k = torch.pi * 2.0 ** torch.arange(n_freq, device=x.device, dtype=x.dtype)
    ang = x[..., None] * k  # (..., D, F)
    return torch.cat([x, ang.sin().flatten(-2), ang.cos().flatten(-2)], dim=-1)
