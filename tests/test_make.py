"""Smoke tests of the Makefile front door: every target documented, usage errors."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC_TARGETS = (
    "iterate generate generate-quality generate-preview train train-forward "
    "train-inverse-quality train-inverse-all predict explore explore-clip list-refs "
    "save-ref rm-ref score-refs score-refs-fresh clean clean-data clean-quality "
    "clean-output setup test check bench renderer renderer-gallery help"
).split()


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_target_of_the_spec() -> None:
    out = make("help").stdout
    listed = set(re.findall(r"^\s+(?:\x1b\[\d+m)?([a-z-]+)", out, re.M))
    missing = [t for t in SPEC_TARGETS if t not in listed]
    assert not missing, f"make help lacks {missing}"


def test_every_target_is_phony_and_documented() -> None:
    text = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):", text, re.M)
    phony = " ".join(re.findall(r"^\.PHONY:((?:.*\\\n)*.*)", text, re.M)).replace(
        "\\", ""
    )
    for t in targets:
        assert t in phony.split(), f"{t} is not .PHONY"
        assert re.search(rf"^{t}:.*## ", text, re.M), f"{t} has no ## help line"


@pytest.mark.parametrize(
    ("target", "usage"),
    [("predict", "IMG="), ("save-ref", "ID="), ("rm-ref", "LINE=")],
)
def test_targets_that_need_a_variable_say_so(target: str, usage: str) -> None:
    r = make(target)
    assert r.returncode != 0
    assert usage in r.stdout + r.stderr


def test_list_refs_numbers_the_starter_refs() -> None:
    r = make("list-refs")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if re.match(r"\s*\d+\. geo=", x)]
    assert len(lines) >= 20
    assert lines[0].strip().startswith("1. geo=")
