"""The archive's solutions: params ↔ one flat vector in [0, 1]^SOLUTION_DIM.

pyribs keeps every elite as a row of floats and its emitters step in that space, so
the params are laid out as the models' encoding (encoding.Encoded) with every part
scaled to [0, 1]: continuous values as encoded, a categorical index i of n options as
i / (n − 1), booleans 0/1, the layer count (n − 1) / (MAX_LAYERS − 1), each layer's
continuous values, override flags and geometry index. Decoding rounds the discrete
parts, so a small step leaves them as they are and a large one changes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from art_explorer.scene import encoding, sampling, schema

_L = schema.MAX_LAYERS
_CAT_N = np.array(encoding.CAT_SIZES, np.float64)
_GEOM_N = len(schema.GEOMETRIES)
# the parts, in order: (name, length)
PARTS = (
    ("cont", encoding.NUM_CONT),
    ("cat", len(encoding.CAT_SIZES)),
    ("bools", len(schema.BOOL_KEYS)),
    ("n_layers", 1),
    ("layer_cont", _L * encoding.NUM_LAYER_CONT),
    ("layer_opt", _L * encoding.NUM_LAYER_OPT),
    ("layer_geom", _L),
)
SOLUTION_DIM = sum(n for _, n in PARTS)


def _split(x: np.ndarray) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for name, n in PARTS:
        out[name] = x[i : i + n]
        i += n
    return out


def to_vector(params: dict[str, Any]) -> np.ndarray:
    """Params (any spelling, ≤ MAX_LAYERS layers) → (SOLUTION_DIM,) float64 in [0, 1]."""
    flat = schema.validate_params(params)
    flat["layers"] = flat["layers"][:_L] or [dict(schema.DEFAULT_LAYER)]
    e = encoding.encode_params(flat)
    parts = [
        e.cont.astype(np.float64),
        e.cat / np.maximum(_CAT_N - 1, 1),
        e.bools.astype(np.float64),
        np.array([(int(e.n_layers) - 1) / max(_L - 1, 1)]),
        e.layer_cont.ravel().astype(np.float64),
        e.layer_opt.ravel().astype(np.float64),
        e.layer_geom / max(_GEOM_N - 1, 1),
    ]
    return np.clip(np.concatenate(parts), 0.0, 1.0)


def to_params(x: np.ndarray) -> dict[str, Any]:
    """(SOLUTION_DIM,) vector → flat params, valid and under the blow-up guard
    (sampling.apply_guard), so what is rendered is what the vector decodes to."""
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    if x.shape != (SOLUTION_DIM,):
        raise ValueError(f"a solution has {SOLUTION_DIM} values, got shape {x.shape}")
    p = _split(x)
    enc = {
        "cont": p["cont"],
        "cat": np.rint(p["cat"] * (_CAT_N - 1)).astype(np.int64),
        "bools": p["bools"],
        "n_layers": np.array(1 + round(float(p["n_layers"][0]) * (_L - 1))),
        "layer_cont": p["layer_cont"].reshape(_L, encoding.NUM_LAYER_CONT),
        "layer_opt": p["layer_opt"].reshape(_L, encoding.NUM_LAYER_OPT),
        "layer_geom": np.rint(p["layer_geom"] * (_GEOM_N - 1)).astype(np.int64),
    }
    params = schema.validate_params(encoding.decode_params(enc))
    return sampling.apply_guard(params)
