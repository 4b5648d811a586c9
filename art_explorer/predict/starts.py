"""Starting points from the inverse model: its guess, alternatives and top structures."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer.predict.models import device_of
from art_explorer.scene import encoding, schema
from art_explorer.scene.tensors import to_tensor

ENC_KEYS = ("cont", "cat", "bools", "n_layers", "layer_cont", "layer_opt", "layer_geom")


def inverse_input_size(inverse: Any) -> int:
    """The side in px the inverse model was trained at: its backbone's input size,
    else the training size in its checkpoint sidecar, else 64."""
    size = getattr(getattr(inverse, "cfg", None), "input_size", 0)
    if size:
        return int(size)
    meta = getattr(inverse, "meta", None) or {}
    return int((meta.get("args") or {}).get("size") or 64)


def predict_one(inverse: Any, target: np.ndarray) -> dict[str, Any]:
    """The inverse model's predict_encoded for one target (batch of 1), resized to
    its input size, with the geometry's probabilities (and its argmax) averaged
    over the picture and its mirror images (left-right, up-down, both): a mirrored
    scene has the same geometry (the scene draws mirrors by a negative layer
    scale), and on the 300 held-out refs-like draws the average is right more often
    (top-1 69.0% → 72.3%, top-3 91.0% → 92.0%: `python pretrain_inverse.py
    --evaluate models/inverse-pretrained`). The other heads are the picture's own
    (an origin is not mirror-free; for the others the average gained nothing)."""
    res = inverse_input_size(inverse)
    img = F.interpolate(to_tensor(target), size=(res, res), mode="area")
    img = img.to(device_of(inverse))
    views = torch.cat([img, img.flip(3), img.flip(2), img.flip((2, 3))])
    with torch.no_grad():
        enc = inverse.predict_encoded(views)
    one: dict[str, Any] = {
        k: (v[:1] if isinstance(v, torch.Tensor) else [p[:1] for p in v])
        for k, v in enc.items()
    }
    j = schema.CAT_KEYS.index("geometry")
    geo = enc["cat_probs"][j].mean(0, keepdim=True)
    one["cat_probs"][j] = geo
    one["cat"] = one["cat"].clone()
    one["cat"][0, j] = geo[0].argmax()
    return one


def inverse_candidates(
    inverse: Any, target: np.ndarray, n_alt: int = 3
) -> list[dict[str, Any]]:
    """The inverse model's guess, then up to n_alt alternatives in the discrete
    choices it is least sure of (the next likely layer counts, the runner-up option
    of the least confident categoricals), most likely first."""
    enc = predict_one(inverse, target)
    one = {k: enc[k][0].detach().cpu() for k in ENC_KEYS}
    alts: list[tuple[float, dict[str, Any]]] = []
    n_probs = enc["n_layers_probs"][0].detach().cpu()
    n0 = int(one["n_layers"])
    for n in torch.argsort(n_probs, descending=True).tolist():
        if n != n0:
            alts.append((float(n_probs[n]), {**one, "n_layers": torch.tensor(n)}))
    for j, probs in enumerate(enc["cat_probs"]):
        p = probs[0].detach().cpu()
        top2 = torch.topk(p, 2).indices.tolist()
        cat = one["cat"].clone()
        if int(cat[j]) != top2[0]:
            continue
        cat[j] = top2[1]
        alts.append((float(p[top2[1]]), {**one, "cat": cat}))
    alts.sort(key=lambda a: -a[0])
    out = [encoding.decode_params(one)]
    out += [encoding.decode_params(a) for _, a in alts[:n_alt]]
    return out


def structure_candidates(
    inverse: Any, target: np.ndarray, k: int = 8, per_head: int = 3
) -> list[tuple[float, dict[str, Any]]]:
    """The inverse model's k most likely structures (structure.STRUCTURE_KEYS and the
    layer count, the heads taken as independent), each with the model's continuous
    guess → [(probability, params)], most likely first. The k // 2 likeliest
    geometries each get their likeliest structure in (the geometry decides the
    picture most), the rest are the next likeliest overall."""
    from art_explorer.scene import structure

    enc = predict_one(inverse, target)
    one = {key: enc[key][0].detach().cpu() for key in ENC_KEYS}
    heads: list[tuple[str | None, torch.Tensor]] = [
        (key, enc["cat_probs"][schema.CAT_KEYS.index(key)][0].detach().cpu())
        for key in structure.STRUCTURE_KEYS
    ]
    n_probs = enc["n_layers_probs"][0].detach().cpu().clone()
    n_probs[0] = 0.0  # a scene always has a layer (0 layers means the default one)
    heads.append((None, n_probs / n_probs.sum().clamp(min=1e-8)))
    beam: list[tuple[float, dict[str | None, int]]] = [(0.0, {})]
    n_geo = max(1, k // 2)
    for key, probs in heads:
        width = max(per_head, n_geo) if key == "geometry" else per_head
        top = torch.topk(probs, min(width, probs.numel()))
        beam = sorted(
            (
                (lp + math.log(max(float(pv), 1e-12)), {**ch, key: int(i)})
                for lp, ch in beam
                for pv, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            ),
            key=lambda t: -t[0],
        )[: 8 * k]
    chosen: list[tuple[float, dict[str | None, int]]] = []
    for lp, ch in beam:  # the likeliest structure of each of the top geometries
        if len(chosen) < n_geo and all(
            ch["geometry"] != c["geometry"] for _, c in chosen
        ):
            chosen.append((lp, ch))
    chosen += [b for b in beam if b not in chosen][: k - len(chosen)]
    chosen.sort(key=lambda t: -t[0])
    out = []
    for lp, ch in chosen:
        cat = one["cat"].clone()
        for key, i in ch.items():
            if key is not None:
                cat[schema.CAT_KEYS.index(key)] = i
        e = {**one, "cat": cat, "n_layers": torch.tensor(ch[None])}
        out.append((math.exp(lp), encoding.decode_params(e)))
    return out
