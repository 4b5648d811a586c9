"""training/args.py and schedule.py: a profile's values as the flags' defaults, bad
options refused, the LR schedules as pure functions."""

from __future__ import annotations

import itertools

import pytest

from art_explorer import config
from art_explorer.training import args as train_args
from art_explorer.training.schedule import clock_lr, lr_at


def test_the_profile_and_stage_set_the_defaults_and_help_shows_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gpu = config.get_profile("gpu")
    a = train_args.parse_args(["--stage", "inverse", "--profile", "gpu"])
    assert (a.epochs, a.lr, a.size) == (gpu.inverse.epochs, gpu.inverse.lr, gpu.size)
    assert a.out == "checkpoints/inverse" and a.width == gpu.forward.model.width
    assert train_args.TrainArgs.of_profile(gpu, "inverse") == a
    b = train_args.parse_args(["--stage", "forward", "--profile", "cpu", "--lr", "0.5"])
    assert b.lr == 0.5 and b.out == "checkpoints/forward"
    assert b.renderer and b.compile
    with pytest.raises(SystemExit):
        train_args.parse_args(["--stage", "forward", "--profile", "gpu", "--help"])
    shown = capsys.readouterr().out
    assert f"(default: {gpu.forward.epochs})" in shown
    assert "--no-renderer" in shown and "--no-compile" in shown


@pytest.mark.parametrize(
    "bad",
    [["--epochs", "0"], ["--lr", "0"], ["--val-frac", "1"], ["--freeze-epochs", "-1"]],
)
def test_bad_options_are_refused(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        train_args.parse_args(["--stage", "forward", *bad])


def test_the_schedules() -> None:
    lrs = [lr_at(s, 100, 1.0, 10) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1.0) and lrs[-1] >= 0.05
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert clock_lr(0.0, 2.0) == pytest.approx(0.1)
    assert clock_lr(0.02, 2.0) == pytest.approx(2.0)
    assert clock_lr(1.0, 2.0) == pytest.approx(0.1)
