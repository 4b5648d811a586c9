"""config.py's profiles as train.py's flag defaults: --help shows them, flags win."""

from __future__ import annotations

import pytest

import train
from art_explorer import config
from art_explorer.training import forward_stage


def test_a_profile_fills_the_flags_left_out() -> None:
    args = train.parse_args(["--stage", "inverse", "--profile", "gpu", "--lr", "5e-4"])
    gpu = config.GPU
    assert args.lr == 5e-4  # given: wins
    assert (args.size, args.epochs, args.batch_size) == (
        gpu.size,
        gpu.inverse.epochs,
        gpu.batch_size,
    )
    assert args.perceptual_batch == gpu.inverse.perceptual_batch
    assert args.sqrt_input is True and args.out.endswith("inverse")
    fwd = train.parse_args(["--stage", "forward", "--profile", "cpu", "--width", "4"])
    cfg = forward_stage.forward_config(fwd)
    assert cfg == config.ForwardConfig(size=64, width=4, density=0.3)


def test_help_shows_the_profile_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        train.parse_args(["--stage", "forward", "--profile", "gpu", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"training resolution in px (default: {config.GPU.size})" in out
    assert f"epochs (default: {config.GPU.forward.epochs})" in out
    assert f"decoder width (default: {config.GPU.forward.model.width})" in out


def test_knobs_without_a_profile_entry_have_flags() -> None:
    args = train.parse_args(
        ["--stage", "inverse", "--no-sqrt-input", "--perceptual-weight", "0"]
    )
    assert args.sqrt_input is False and args.perceptual_weight == 0.0
    with pytest.raises(SystemExit):
        train.parse_args(["--stage", "inverse", "--perceptual-weight", "-1"])


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        config.get_profile("tpu")
