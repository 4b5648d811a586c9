"""art_explorer.cli: a dataclass becomes a command line with its docstrings as help."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from art_explorer import cli


@dataclass
class Args:
    """A test script."""

    target: str = field(metadata={"positional": True})
    """the picture to invert"""
    budget: int = 500
    """renders predict may spend"""
    quality: Literal["fast", "best"] = "fast"
    """how hard to try"""
    out: str | None = None
    """where the result goes"""
    refs: list[str] = field(default_factory=list)
    """reference files"""
    gpu: bool = False
    """use the GPU"""
    max_seconds: float = 58.0
    """time limit per picture"""


def test_defaults_and_help_come_from_the_dataclass(capsys):
    args = cli.parse(Args, ["t.png"])
    assert args == Args(target="t.png")
    with pytest.raises(SystemExit):
        cli.parse(Args, ["--help"])
    text = capsys.readouterr().out
    assert "renders predict may spend (default: 500)" in text
    assert "--max-seconds" in text and "(default: 58.0)" in text
    assert "A test script." in text


def test_every_type_parses():
    args = cli.parse(
        Args,
        [
            "t.png",
            "--budget",
            "50",
            "--quality",
            "best",
            "--out",
            "o",
            "--refs",
            "a",
            "b",
            "--gpu",
            "--max-seconds",
            "1.5",
        ],
    )
    assert args == Args("t.png", 50, "best", "o", ["a", "b"], True, 1.5)
    assert cli.parse(Args, ["t", "--no-gpu", "--out", "none"]).out is None


def test_bad_values_are_refused_with_a_message(capsys):
    for argv in (["t", "--budget", "x"], ["t", "--quality", "slow"], []):
        with pytest.raises(SystemExit):
            cli.parse(Args, argv)
    assert "invalid choice" in capsys.readouterr().err
