"""nets/config.py: a sidecar's config is held to its fields' types and bounds before
any layer is built (issue 32 C2), and the shipped checkpoint still loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from art_explorer.nets import checkpoint_io
from art_explorer.nets.config import (
    ConfigError,
    ForwardConfig,
    InverseConfig,
    make_config,
)
from art_explorer.nets.forward import ForwardModel
from art_explorer.nets.inverse import InverseModel

TINY: dict[str, Any] = dict(
    size=16, width=2, hidden=16, embed=2, n_freq=1, attn_res=0, layout_k=2
)


def _forward_checkpoint(tmp_path: Path) -> Path:
    stem = tmp_path / "fwd"
    checkpoint_io.save_checkpoint(ForwardModel(ForwardConfig(**TINY)), stem)
    return stem


def _tamper(stem: Path, **config: Any) -> None:
    side = stem.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["config"].update(config)
    side.write_text(json.dumps(meta))


def test_the_shipped_inverse_model_loads() -> None:
    net = checkpoint_io.load_checkpoint(checkpoint_io.BUNDLED_INVERSE_PATH, "inverse")
    assert isinstance(net, InverseModel)
    assert net.cfg.backbone == "scene-cnn"
    assert net.meta["kind"] == "inverse"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("width", "8", "an integer"),
        ("width", -1, "[1, 256]"),
        ("hidden", 200000, "[2, 4096]"),
        ("n_freq", 1e9, "an integer"),
        ("n_freq", 10**9, "[0, 16]"),
        ("embed", None, "an integer"),
        ("width", True, "an integer"),
        ("canvas", float("nan"), "a number"),
        ("composite", "yes", "true/false"),
        ("density", 4000.0, "[0.01, 4]"),
    ],
)
def test_a_forward_sidecar_out_of_bounds_is_refused(
    tmp_path: Path, field: str, value: Any, says: str
) -> None:
    stem = _forward_checkpoint(tmp_path)
    _tamper(stem, **{field: value})
    with pytest.raises(checkpoint_io.CheckpointError) as err:
        checkpoint_io.load_checkpoint(stem, "forward")
    assert f"ForwardConfig.{field}" in str(err.value) and says in str(err.value)


def test_a_huge_canvas_is_refused_though_each_value_is_in_bounds(
    tmp_path: Path,
) -> None:
    stem = _forward_checkpoint(tmp_path)
    _tamper(stem, size=1024, canvas=16.0, density=4.0)
    with pytest.raises(checkpoint_io.CheckpointError, match="canvas side"):
        checkpoint_io.load_checkpoint(stem, "forward")


@pytest.mark.parametrize(
    ("field", "value"),
    [("hidden", "256"), ("hidden", 10**7), ("backbone", None), ("backbone", "")],
)
def test_an_inverse_sidecar_out_of_bounds_is_refused(
    tmp_path: Path, field: str, value: Any
) -> None:
    stem = tmp_path / "inv"
    for ext in (".safetensors", ".json"):
        shutil.copy(
            Path(checkpoint_io.BUNDLED_INVERSE_PATH).with_suffix(ext),
            stem.with_suffix(ext),
        )
    _tamper(stem, **{field: value})
    with pytest.raises(checkpoint_io.CheckpointError, match=f"InverseConfig.{field}"):
        checkpoint_io.load_checkpoint(stem, "inverse")


def test_make_config_takes_defaults_whole_floats_and_refuses_unknown_fields() -> None:
    assert make_config(ForwardConfig, {}) == ForwardConfig()
    assert make_config(ForwardConfig, {"canvas": 2}).canvas == 2
    assert make_config(InverseConfig, {"hidden": 64}) == InverseConfig(hidden=64)
    with pytest.raises(ConfigError, match="does not know"):
        make_config(ForwardConfig, {"depth": 3})
    with pytest.raises(ConfigError, match="not an object"):
        make_config(ForwardConfig, [1, 2])
