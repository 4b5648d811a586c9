"""The networks' configs (ForwardConfig, InverseConfig) and their checking: a config
read from a checkpoint's sidecar is held to each field's type and bounds before any
layer is built, so a broken or hostile sidecar is refused with a message instead of
a TypeError deep in torch or an attempt to allocate hundreds of gigabytes."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from art_explorer.config import ForwardConfig
from art_explorer.nets.backbones import DEFAULT_FREE_BACKBONE
from art_explorer.scene import schema


@dataclass
class InverseConfig:
    """The inverse network's shape (InverseModel), recorded in its checkpoint."""

    backbone: str = DEFAULT_FREE_BACKBONE
    """timm name (see backbones.create_backbone)"""
    input_size: int = 0
    """the backbone's input side in px (0 = the image's own size)"""
    hidden: int = 512
    """head MLP width"""
    features: int = 512
    """the backbone's pooled feature size (filled in from the backbone)"""
    sqrt_input: bool = True
    """the backbone sees √image, which lifts thin dim lines out of the black"""


# Inclusive bounds of each numeric field: generous around every profile (the GPU
# profile has size 256, width 40, hidden 512, layout_res 192) yet small enough that
# building the model cannot exhaust a machine's memory.
BOUNDS: dict[type, dict[str, tuple[float, float]]] = {
    ForwardConfig: {
        "size": (8, 1024),
        "width": (1, 256),
        "hidden": (2, 4096),
        "embed": (1, 256),
        "n_freq": (0, 16),
        "attn_res": (0, 1024),
        "canvas": (0.1, 16.0),
        "density": (0.01, 4.0),
        "pattern_ch": (0, 64),
        "layout_k": (0, 1024),
        "layout_res": (1, 1024),
        "template": (2, 256),
    },
    InverseConfig: {
        "input_size": (0, 1024),
        "hidden": (1, 8192),
        "features": (1, 65536),
    },
}
MAX_CANVAS_SIZE = 2048
"""The forward model's canonical canvas side (size·canvas·density) at most, in px."""
MAX_NAME_LENGTH = 200


class ConfigError(ValueError):
    """A config value of the wrong type or out of its bounds; the message names it."""


def _check_value(cls: type, name: str, tp: Any, value: Any) -> None:
    """Raise ConfigError unless `value` is of type `tp` and within BOUNDS."""
    what = f"{cls.__name__}.{name} = {value!r}"
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{what} is {schema.json_type(value)}, not true/false")
        return
    if tp is str:
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
            raise ConfigError(
                f"{what} is not a name (a string of 1-{MAX_NAME_LENGTH} characters)"
            )
        return
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind = "an integer"
    else:  # float: JSON may spell a whole number without a point
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        kind = "a number"
    lo, hi = BOUNDS.get(cls, {}).get(name, (-math.inf, math.inf))
    if not ok or not lo <= value <= hi:
        raise ConfigError(f"{what}: expected {kind} in [{lo:g}, {hi:g}]")


def make_config(cls: type, raw: Any) -> Any:
    """A config dataclass from a sidecar's dict, every field checked (ConfigError):
    no unknown fields, each value of its field's type and within BOUNDS; fields left
    out take their defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config is {schema.json_type(raw)}, not an object")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"config has fields this code does not know: {unknown}")
    for name, value in raw.items():
        _check_value(cls, name, hints[name], value)
    cfg = cls(**raw)
    if isinstance(cfg, ForwardConfig) and cfg.canvas_size > MAX_CANVAS_SIZE:
        raise ConfigError(
            f"ForwardConfig: canvas side {cfg.canvas_size} px (size·canvas·density) "
            f"is over {MAX_CANVAS_SIZE}"
        )
    return cfg


__all__ = ["BOUNDS", "ConfigError", "ForwardConfig", "InverseConfig", "make_config"]
