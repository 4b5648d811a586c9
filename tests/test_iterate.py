"""Smoke run of a whole round (iterate.py) with tiny settings, end to end, against
the real renderer; then a second call starts round 2 and adds to the data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

import iterate
from art_explorer.data import dataset

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def tiny_round(tmp: Path, url: str) -> Path:
    argv = ["--profile", "cpu", "--n", "24", "--nq", "12", "--size", "32"]
    argv += ["--forward-epochs", "1", "--inverse-epochs", "1"]
    argv += ["--explore-n", "2", "--candidates", "8"]
    argv += ["--data", str(tmp / "data"), "--checkpoints", str(tmp / "ck")]
    argv += ["--output", str(tmp / "out"), "--refs", str(tmp / "refs.jsonl")]
    argv += ["--renderer-url", url]
    return iterate.main(iterate.parse_args(argv))


def test_a_round_leaves_every_artefact_readable(
    tmp_path: Path, renderer_url: str
) -> None:
    shutil.copy(ROOT / "references" / "refs.jsonl", tmp_path / "refs.jsonl")
    report = tiny_round(tmp_path, renderer_url)

    assert report == tmp_path / "out" / "round-001" / "report.md"
    text = report.read_text()
    for stage in iterate.STAGES:
        assert f"| {stage} |" in text
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(pictures) >= 7
    assert len(set(pictures)) == len(pictures)  # one file per picture
    for name in pictures:
        with Image.open(report.parent / name) as im:
            im.load()
            assert im.width > 0
    state = json.loads((report.parent / "state.json").read_text())
    assert state["finished"]
    assert set(state["stages"]) == set(iterate.STAGES)
    assert dataset.Layout(tmp_path / "data").count_pairs() == 24
    assert dataset.Layout(tmp_path / "data" / "quality").count_pairs() == 12
    assert (tmp_path / "ck" / "forward.safetensors").exists()
    assert (tmp_path / "ck" / "inverse.safetensors").exists()
    assert len(list((tmp_path / "out" / "images").glob("*.png"))) == 2
    assert (tmp_path / "refs-scored.jsonl").exists()

    # The next call is round 2: it adds new data instead of redoing round 1.
    report2 = tiny_round(tmp_path, renderer_url)
    assert report2.parent.name == "round-002"
    assert dataset.Layout(tmp_path / "data").count_pairs() == 48


def test_an_unfinished_round_is_carried_on(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rnd = iterate.Round(out, new=False)
    rnd.dir.mkdir(parents=True)
    rnd.state["stages"]["generate"] = {"seconds": 1.0, "summary": "24 items"}
    rnd.state["started_stages"] = ["generate", "train-forward"]
    rnd.save()

    again = iterate.Round(out, new=False)
    assert again.resumed and again.number == 1
    assert again.done("generate") and not again.done("train-forward")
    assert again.interrupted("train-forward")
    assert iterate.Round(out, new=True).number == 2
