"""Smoke run of a whole round (iterate.py) with tiny settings, end to end, against
the real renderer; then a second call starts round 2 and adds to the data. The round
gate (tiny stand-in inverse models, scores monkeypatched) and the round's stages
logged to a file (no carriage-return walls)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import iterate
from art_explorer import config, utils
from art_explorer import round as round_
from art_explorer.data import dataset
from art_explorer.nets import checkpoint_io
from art_explorer.nets import model as M
from art_explorer.predict import models
from art_explorer.training import selection

ROOT = Path(__file__).resolve().parent.parent


def tiny_round(tmp: Path, url: str) -> Path:
    argv = ["--profile", "cpu", "--n", "24", "--nq", "12", "--size", "32"]
    argv += ["--forward-epochs", "1", "--inverse-epochs", "1"]
    argv += ["--explore-n", "2", "--explore-renders", "40"]
    argv += ["--data", str(tmp / "data"), "--checkpoints", str(tmp / "ck")]
    argv += ["--output", str(tmp / "out"), "--refs", str(tmp / "refs.jsonl")]
    argv += ["--renderer-url", url, "--gate-draws", "8"]
    return iterate.main(iterate.parse_args(argv))


@pytest.mark.slow
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
    # the gate kept one inverse model; a losing candidate was moved aside
    chosen = state["inverse_selection"]["chosen"]
    kept = "inverse" if chosen == "candidate" else "inverse-rejected"
    assert (tmp_path / "ck" / f"{kept}.safetensors").exists()
    assert "## Inverse model predict uses" in text
    assert state["inverse_selection"]["reason"] in text
    assert len(list((tmp_path / "out" / "images").glob("*.png"))) == 2
    assert (tmp_path / "refs-scored.jsonl").exists()

    # The next call is round 2: it adds new data instead of redoing round 1.
    report2 = tiny_round(tmp_path, renderer_url)
    assert report2.parent.name == "round-002"
    assert dataset.Layout(tmp_path / "data").count_pairs() == 48
    # round 2 trains afresh on the grown data (not a resume of round 1's finished run)
    state2 = json.loads((report2.parent / "state.json").read_text())
    for stage in ("train-forward", "train-inverse"):
        assert state2["stages"][stage]["summary"] != state["stages"][stage]["summary"]


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


def stand_in(path: Path, hidden: int) -> Path:
    """A tiny inverse checkpoint; `hidden` tells it apart in the scores below."""
    net = M.InverseModel(
        M.InverseConfig(backbone=M.SCENE_CNN, input_size=32, hidden=hidden)
    )
    return checkpoint_io.save_checkpoint(net, path)


@pytest.fixture
def scores() -> dict[int, float]:
    """The gate's score of each stand-in by its hidden width: the bundled one (8)
    and the round's candidate (4, worse unless a test raises it)."""
    return {8: 0.6, 4: 0.4}


@pytest.fixture
def gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scores: dict[int, float]
) -> round_.Plan:
    """A round run from tmp_path: models/inverse-pretrained and the candidate
    checkpoints/inverse are stand-ins scored by `scores` (no held-out renders)."""
    monkeypatch.setattr(utils, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    stand_in(tmp_path / checkpoint_io.BUNDLED_INVERSE_PATH, hidden=8)
    stand_in(tmp_path / checkpoint_io.DEFAULT_INVERSE_PATH, hidden=4)

    def score(net: M.InverseModel, n: int) -> dict[str, float]:
        s = scores[net.cfg.hidden]
        return {"geometry": s, "layers": s, "score": s}

    monkeypatch.setattr(selection, "score_inverse", score)
    args = iterate.parse_args(["--gate-draws", "5"])
    plan = round_.Plan(
        args, config.get_profile("cpu"), 32, round_.Round(tmp_path / "out", False)
    )
    plan.rnd.dir.mkdir(parents=True)
    plan.rnd.state.update(profile="cpu", started="now")
    return plan


def predict_uses() -> tuple[int, list[str]]:
    """The hidden width of the inverse model predict loads, and its notes."""
    _, inverse, notes = models.load_models(device="cpu")
    assert inverse is not None
    return inverse.cfg.hidden, notes


def test_a_worse_round_model_keeps_the_bundled_one(
    gate: round_.Plan, tmp_path: Path
) -> None:
    logged: list[str] = []
    gate.rnd.run(
        "choose-inverse",
        lambda: round_.choose_stage(gate, logged.append),
        logged.append,
    )
    cand = tmp_path / checkpoint_io.DEFAULT_INVERSE_PATH
    assert not checkpoint_io.checkpoint_exists(cand)
    assert cand.with_name("inverse-rejected.safetensors").exists()
    hidden, notes = predict_uses()
    assert hidden == 8  # the bundled one
    assert any("bundled" in n for n in notes)

    report = round_.write_report(
        gate.rnd, gate.data, gate.ckpt, gate.output, gate.scored
    ).read_text()
    sel = gate.rnd.state["inverse_selection"]
    assert sel["chosen"] == "bundled" and sel["reason"] in report
    assert "| bundled | 60.0% | 60.0% | 0.600 |" in report
    assert "| candidate | 40.0% | 40.0% | 0.400 |" in report
    assert "| choose-inverse |" in report and "bundled inverse model" in report


def test_a_better_round_model_replaces_the_bundled_one(
    gate: round_.Plan, tmp_path: Path, scores: dict[int, float]
) -> None:
    scores[4] = 0.8
    summary = round_.choose_stage(gate, lambda _: None)
    assert summary.startswith("candidate")
    assert checkpoint_io.checkpoint_exists(
        tmp_path / checkpoint_io.DEFAULT_INVERSE_PATH
    )
    hidden, _ = predict_uses()
    assert hidden == 4  # the round's


def test_the_train_stage_builds_the_profiles_options(
    gate: round_.Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    import train

    seen: list[train.TrainArgs] = []
    monkeypatch.setattr(train, "main", lambda a: seen.append(a) or {"history": []})
    gate.url = "http://renderer"
    round_.train_stage(gate, "forward")
    round_.train_stage(gate, "inverse")
    fwd, inv = seen
    prof = config.get_profile("cpu")
    assert (
        fwd.stage == "forward"
        and fwd.data == ["data"]
        and fwd.out == "checkpoints/forward"
    )
    assert fwd.lr == prof.forward.lr and fwd.epochs == prof.forward.epochs
    assert fwd.size == 32 and fwd.renderer_url == "http://renderer" and not fwd.resume
    assert inv.data == ["data/quality", "data"] and inv.out == "checkpoints/inverse"
    assert inv.forward == "checkpoints/forward" and inv.lr == prof.inverse.lr
    assert inv.init == str(utils.ROOT / checkpoint_io.BUNDLED_INVERSE_PATH)


def test_the_train_stage_carries_on_an_interrupted_run(
    gate: round_.Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    import train

    seen: list[train.TrainArgs] = []
    monkeypatch.setattr(train, "main", lambda a: seen.append(a) or {"history": []})
    gate.args.forward_epochs = 2
    # this run starts the stage: a fresh training, even though OUT-last may be there
    # from an earlier round
    gate.rnd.run("train-forward", lambda: round_.train_stage(gate, "forward"), print)
    assert not seen[0].resume and seen[0].epochs == 2
    # an earlier run started it and did not finish: carry on from OUT-last
    gate.rnd.state["started_stages"].append("train-inverse")
    gate.rnd.save()
    gate.rnd = round_.Round(gate.rnd.dir.parent, new=False)
    assert gate.rnd.interrupted("train-inverse")
    gate.rnd.run("train-inverse", lambda: round_.train_stage(gate, "inverse"), print)
    assert seen[1].resume


def test_stages_logged_to_a_file_have_no_carriage_returns(
    tmp_path: Path, renderer_url: str
) -> None:
    """`make iterate > round.log`: a redirected stage prints plain lines, not a
    bar redrawn with carriage returns."""
    log = tmp_path / "round.log"
    refs = shutil.copy(ROOT / "references" / "refs.jsonl", tmp_path / "refs.jsonl")
    runs = [
        ["generate.py", "--n", "4", "--size", "32", "--out", str(tmp_path / "d"),
         "--refs", str(refs)],
        ["refs.py", "sheet", "--refs", str(refs), "--size", "32",
         "--out", str(tmp_path / "sheet.png")],
    ]  # fmt: skip
    for script, *argv in runs:
        with log.open("a") as f:
            subprocess.run(
                [sys.executable, str(ROOT / script), *argv, "--renderer-url", renderer_url],
                stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path, check=True, timeout=120,
            )  # fmt: skip
    text = log.read_text()
    assert "\r" not in text
    assert "generate  4/4 (100%)" in text  # the closing line of the progress
    assert "rendering refs" in text


def test_a_round_keeps_data_of_an_older_schema_version_and_starts_over(
    tmp_path: Path,
) -> None:
    """After an update that draws the same params otherwise, the unfinished round's
    data is kept as DATA.vN and its stages rerun on new data (no renderer needed to
    open the round)."""
    from art_explorer.scene import schema

    older = schema.SCHEMA_VERSION - 1
    data = tmp_path / "data"
    (data / "params").mkdir(parents=True)
    (data / "params" / "000000.json").write_text("{}")
    marker = {"version": older, "hash": schema.schema_hash(older)}
    (data / dataset.DATA_SCHEMA_FILE).write_text(json.dumps(marker))
    out = tmp_path / "out"
    (out / "round-001").mkdir(parents=True)
    state = {"stages": {"generate": {"seconds": 1.0, "summary": ""}}}
    (out / "round-001" / "state.json").write_text(json.dumps(state))
    lines: list[str] = []
    args = round_.IterateArgs(
        profile="cpu", n=10, data=str(data), output=str(out),
        checkpoints=str(tmp_path / "ck"),
    )  # fmt: skip
    plan = round_.start(args, lines.append)
    assert (tmp_path / f"data.v{older}" / "params" / "000000.json").exists()
    assert not data.exists() and f"kept as {tmp_path / f'data.v{older}'}" in lines[0]
    assert plan.rnd.number == 1 and not plan.rnd.done("generate")
    assert plan.rnd.state["target_data"] == 10
