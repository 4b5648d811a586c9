"""Checkpoints: NAME.safetensors (weights) + NAME.json (sidecar: kind, model config,
schema version and hash, training args and metrics). One loader for train.py and
predict.py; a checkpoint of another schema or config is refused with a message, and
nothing is ever unpickled."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from art_explorer import atomic
from art_explorer.nets import model as M
from art_explorer.nets.config import ConfigError, ForwardConfig, make_config
from art_explorer.scene import schema

DEFAULT_FORWARD_PATH = "checkpoints/forward"
DEFAULT_INVERSE_PATH = "checkpoints/inverse"
# the pretrained inverse model shipped in the repository (pretrain_inverse.py), used
# when a round has not trained one; a round fine-tunes from it (train.py --init)
BUNDLED_INVERSE_PATH = "models/inverse-pretrained"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, broken, or made for another kind/schema/config."""


KINDS = {
    "forward": (M.ForwardModel, ForwardConfig),
    "inverse": (M.InverseModel, M.InverseConfig),
}


def _stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def model_kind(model: nn.Module) -> str:
    for kind, (cls, _) in KINDS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"not a checkpointable model: {type(model).__name__}")


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    meta: dict[str, Any] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write NAME.safetensors (weights, plus `extra` tensors under their own names)
    and NAME.json (kind, config, schema version and hash, `meta`), each atomically;
    returns the stem. `path` is given without extension."""
    from safetensors.torch import save

    stem = _stem(path)
    kind = model_kind(model)
    cfg: Any = model.cfg
    tensors = {
        f"model.{k}": v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    for k, v in (extra or {}).items():
        tensors[k] = v.detach().contiguous().cpu()
    sidecar = {
        "kind": kind,
        "config": asdict(cfg),
        "schema_version": schema.SCHEMA_VERSION,
        "schema_hash": schema.schema_hash(),
        **(meta or {}),
    }
    if kind == "inverse":
        sidecar["backbone"] = {k: v for k, v in model.backbone_info.items()}  # type: ignore[union-attr]
    atomic.atomic_write_bytes(stem.with_suffix(".safetensors"), save(tensors))
    atomic.write_json(stem.with_suffix(".json"), sidecar)
    return stem


def checkpoint_exists(path: str | Path) -> bool:
    """Whether either file of the checkpoint NAME(.safetensors/.json) is there (a
    half of one is then refused by `load_checkpoint` with a message)."""
    stem = _stem(path)
    return (
        stem.with_suffix(".safetensors").exists() or stem.with_suffix(".json").exists()
    )


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """NAME.json of a checkpoint as a dict (CheckpointError when missing or broken)."""
    side = _stem(path).with_suffix(".json")
    if not side.is_file():
        raise CheckpointError(f"checkpoint sidecar {side} is missing")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"checkpoint sidecar {side} is not UTF-8 text") from None
    except OSError as e:
        raise CheckpointError(
            f"checkpoint sidecar {side}: cannot read it ({e.strerror})"
        ) from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, 4300+ digit ints
        raise CheckpointError(f"checkpoint sidecar {side} is not JSON: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"checkpoint sidecar {side} is not a JSON object "
            f"(it is {schema.json_type(meta)})"
        )
    return meta


def load_checkpoint(
    path: str | Path,
    kind: str,
    expect: dict[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
    other_schema_version: bool = False,
) -> nn.Module:
    """NAME(.safetensors/.json) → the model, in eval mode, with its sidecar as
    `model.meta`. Refuses (CheckpointError) a checkpoint of another kind, schema
    version or schema hash, a config with unknown fields or differing from `expect`
    (e.g. {"size": 64}), config values of the wrong type or out of bounds
    (nets/config.py's BOUNDS: checked before any layer is built), and weights that
    do not fit the config.

    `other_schema_version` accepts a checkpoint whose schema *version* differs while
    its parameter layout (the hash of the params' keys, kinds, ranges, options)
    would still be this code's: only to warm-start training on new data
    (`pretrain_inverse.py --init-other-version`), never to predict with."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    stem = _stem(path)
    meta = read_sidecar(stem)
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    if meta.get("kind") != kind:
        raise CheckpointError(
            f"{stem}: a {meta.get('kind')!r} checkpoint, not {kind!r}"
        )
    same_version = meta.get("schema_version") == schema.SCHEMA_VERSION
    same_hash = meta.get("schema_hash") == schema.schema_hash()
    if other_schema_version and isinstance(meta.get("schema_version"), int):
        same_version = True
        same_hash = meta.get("schema_hash") == schema.schema_hash(
            meta["schema_version"]
        )
    if not (same_version and same_hash):
        raise CheckpointError(
            f"{stem}: made for parameter schema v{meta.get('schema_version')} "
            f"({meta.get('schema_hash')}), this code has v{schema.SCHEMA_VERSION} "
            f"({schema.schema_hash()}); regenerate the data it learned from and "
            "retrain it (make generate, make train)"
        )
    cls, cfg_cls = KINDS[kind]
    try:
        cfg = make_config(cfg_cls, meta.get("config", {}))
    except ConfigError as e:
        raise CheckpointError(f"{stem}: {e}; retrain it") from None
    for k, v in (expect or {}).items():
        if getattr(cfg, k, None) != v:
            raise CheckpointError(
                f"{stem}: config {k}={getattr(cfg, k, None)!r}, expected {v!r}"
            )
    weights = stem.with_suffix(".safetensors")
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights {weights} are missing")
    try:
        tensors = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{weights}: not a readable safetensors file ({e})"
        ) from None
    state = {
        k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")
    }
    model = cls(cfg)  # type: ignore[arg-type]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        raise CheckpointError(
            f"{stem}: weights do not fit the config: {' '.join(first)}"
        ) from None
    model.meta = meta  # type: ignore[attr-defined]
    return model.to(map_location).eval()


def load_extra_tensors(path: str | Path, prefix: str) -> dict[str, torch.Tensor]:
    """The non-model tensors of a checkpoint whose names start with `prefix`."""
    from safetensors.torch import load_file

    tensors = load_file(str(_stem(path).with_suffix(".safetensors")))
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_forward(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> M.ForwardModel | None:
    """The forward model at `path` (default checkpoints/forward), or None when there is
    no such checkpoint. A broken or mismatched one raises CheckpointError."""
    stem = _stem(path or DEFAULT_FORWARD_PATH)
    if (
        not stem.with_suffix(".safetensors").exists()
        and not stem.with_suffix(".json").exists()
    ):
        return None
    m = load_checkpoint(stem, "forward", map_location=device)
    assert isinstance(m, M.ForwardModel)
    return m


def load_inverse(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> M.InverseModel | None:
    """The inverse model at `path` (default checkpoints/inverse), or None when absent."""
    stem = _stem(path or DEFAULT_INVERSE_PATH)
    if not checkpoint_exists(stem):
        return None
    m = load_checkpoint(stem, "inverse", map_location=device)
    assert isinstance(m, M.InverseModel)
    return m
