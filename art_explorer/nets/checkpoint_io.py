"""Checkpoints: NAME.safetensors (weights) + NAME.json (sidecar: kind, model config,
schema version and hash, training args and metrics). One loader for train.py and
predict.py; a checkpoint of another schema or config is refused with a message, and
nothing is ever unpickled."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

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


PAUSE_ENV = "ART_EXPLORER_PAUSE_SAVE"
"""A test hook: "POINT:STEM" makes save_checkpoint of STEM stop (sleep) at POINT,
"written" (both temp files written, nothing renamed) or "renamed" (the weights in
place, the sidecar not yet), so a test can kill -9 the process there."""


def _pause_point(stem: Path, point: str) -> None:
    if os.environ.get(PAUSE_ENV) == f"{point}:{stem}":
        print(f"save_checkpoint paused: {point}", flush=True)
        time.sleep(3600)


def _temp_prefix(path: Path) -> str:
    """The temp-file prefix of `path` written by this process (its pid in the name,
    so that another save can tell a dead writer's leftovers from a live one's)."""
    return f".{path.name}.pid{os.getpid()}."


def _write_temp(path: Path, data: bytes) -> Path:
    """`data` in a temp file next to `path`, synced to disk (not yet renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STALE_TEMP_S = 3600.0
"""A temp file without a writer's pid (atomic.py's) is stale after this long."""


def _is_stale(tmp: Path, name: str) -> bool:
    """Whether a temp file of `name` belongs to a save that can no longer finish."""
    rest = tmp.name[len(name) + 2 :]  # after ".NAME."
    pid = rest[3:].split(".", 1)[0] if rest.startswith("pid") else ""
    if pid.isdigit():
        return int(pid) != os.getpid() and not _pid_alive(int(pid))
    try:
        return time.time() - tmp.stat().st_mtime > STALE_TEMP_S
    except OSError:
        return False


def remove_stale_temps(stem: Path) -> list[Path]:
    """Delete the temp files of an interrupted save of this checkpoint: those whose
    writer's pid is no longer running, and pid-less ones older than STALE_TEMP_S."""
    removed = []
    for suffix in (".safetensors", ".json"):
        name = stem.with_suffix(suffix).name
        for tmp in stem.parent.glob(f".{name}.*.tmp"):
            if _is_stale(tmp, name):
                with contextlib.suppress(OSError):
                    tmp.unlink()
                    removed.append(tmp)
    return removed


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    meta: dict[str, Any] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write NAME.safetensors (weights, plus `extra` tensors under their own names)
    and NAME.json (kind, config, schema version and hash, `meta`) as one commit;
    returns the stem. `path` is given without extension.

    Both files carry one `pair` id, and the weights' header carries the whole
    sidecar too: the weights' rename is the commit, so a save killed before it
    leaves the old pair, and one killed between the renames leaves weights whose
    own sidecar `load_checkpoint` reads instead of the stale NAME.json. Temp files
    of saves whose process died are removed."""
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
        "pair": uuid.uuid4().hex,
    }
    if kind == "inverse":
        sidecar["backbone"] = {k: v for k, v in model.backbone_info.items()}  # type: ignore[union-attr]
    text = json.dumps(sidecar, indent=1) + "\n"
    remove_stale_temps(stem)
    weights, side = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    tmp_w = _write_temp(weights, save(tensors, metadata={SIDECAR_KEY: text}))
    try:
        tmp_s = _write_temp(side, text.encode("utf-8"))
    except BaseException:
        tmp_w.unlink(missing_ok=True)
        raise
    _pause_point(stem, "written")
    os.replace(tmp_w, weights)  # the commit
    _pause_point(stem, "renamed")
    os.replace(tmp_s, side)
    return stem


SIDECAR_KEY = "art_explorer.sidecar"
"""The weights' safetensors header entry that holds the sidecar written with them."""


def _weights_sidecar(stem: Path) -> dict[str, Any] | None:
    """The sidecar stored in NAME.safetensors' header (None: none, or unreadable)."""
    from safetensors import SafetensorError, safe_open

    weights = stem.with_suffix(".safetensors")
    if not weights.is_file():
        return None
    try:
        with safe_open(str(weights), "pt") as f:  # type: ignore[no-untyped-call]
            text = (f.metadata() or {}).get(SIDECAR_KEY)
    except (SafetensorError, OSError, ValueError):
        return None
    try:
        meta = json.loads(text) if text else None
    except (ValueError, RecursionError):
        return None
    return meta if isinstance(meta, dict) else None


def committed_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar that belongs to the checkpoint's weights: NAME.json, unless the
    weights carry their own with another `pair` id (NAME.json is then from an earlier
    save, left behind by one interrupted between its renames)."""
    stem = _stem(path)
    own = _weights_sidecar(stem)
    if own is None:
        return read_sidecar(stem)
    if not stem.with_suffix(".json").is_file():
        return own
    meta = read_sidecar(stem)
    return meta if meta.get("pair") == own.get("pair") else own


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
    meta = committed_sidecar(stem)
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


def describe(path: str | Path) -> dict[str, Any]:
    """What a checkpoint is, for a person: its kind, config, schema version and hash,
    parameter count, metrics (a training run's last epoch, or pretraining's figures)
    and epoch. Loads it, so a checkpoint of another schema or a broken one raises
    CheckpointError like any load."""
    stem = _stem(path)
    if not checkpoint_exists(stem):
        raise CheckpointError(f"no checkpoint at {stem} (.safetensors + .json)")
    kind = committed_sidecar(stem).get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"{stem}: unknown kind {kind!r}")
    model = load_checkpoint(stem, str(kind))
    meta: dict[str, Any] = getattr(model, "meta", {})
    pre = meta.get("pretrain") if isinstance(meta.get("pretrain"), dict) else None
    metrics = meta.get("metrics") or (pre or {}).get("accuracy") or {}
    return {
        "checkpoint": str(stem),
        "kind": kind,
        "config": meta.get("config", {}),
        "schema_version": meta.get("schema_version"),
        "schema_hash": meta.get("schema_hash"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epoch": meta.get("epoch"),
        "metrics": metrics,
        **({"backbone": meta["backbone"]} if "backbone" in meta else {}),
    }
