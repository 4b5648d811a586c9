"""Loading the learned models predict uses (forward, inverse) from their checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from art_explorer import utils


def load_models(
    forward_path: str | None = None,
    inverse_path: str | None = None,
    device: str | torch.device | None = None,
) -> tuple[Any, Any, list[str]]:
    """(forward model | None, inverse model | None, lines saying what is in use).

    Paths default to model.py's (checkpoints/forward, checkpoints/inverse). A
    missing checkpoint or model.py means that stage is skipped; a checkpoint that
    does not match this code (checkpoint_io.CheckpointError) is reported and skipped. The
    models go to `device` (default: CUDA when there is one, else the CPU)."""
    notes: list[str] = []
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        from art_explorer.nets import checkpoint_io
    except ImportError as e:
        return None, None, [f"models: model.py cannot be imported ({e}); no models"]
    loaded: list[Any] = []
    if inverse_path is None and not any(
        Path(checkpoint_io.DEFAULT_INVERSE_PATH).with_suffix(s).exists()
        for s in (".json", ".safetensors")
    ):
        inverse_path = str(utils.ROOT / checkpoint_io.BUNDLED_INVERSE_PATH)
        notes.append(
            "inverse model: no round checkpoint; the pretrained one bundled in "
            f"{checkpoint_io.BUNDLED_INVERSE_PATH} (pretrain_inverse.py)"
        )
    for name, path, loader in (
        ("forward", forward_path, checkpoint_io.load_forward),
        ("inverse", inverse_path, checkpoint_io.load_inverse),
    ):
        where = path or f"checkpoints/{name}"
        try:
            m = loader(path)
        except checkpoint_io.CheckpointError as e:
            notes.append(
                f"{name} model: {where} does not match this code ({e}); not used"
            )
            m = None
        else:
            notes.append(
                f"{name} model: {where}"
                if m is not None
                else f"{name} model: none at {where}"
            )
        if m is not None and hasattr(m, "eval"):
            m.eval()
            m.to(dev)
        loaded.append(m)
    if any(m is not None for m in loaded):
        notes.append(f"models run on: {dev}")
    return loaded[0], loaded[1], notes


def device_of(net: Any) -> torch.device:
    """The device a model's parameters are on (the CPU for one without any)."""
    p = next(iter(net.parameters()), None) if hasattr(net, "parameters") else None
    return p.device if p is not None else torch.device("cpu")
