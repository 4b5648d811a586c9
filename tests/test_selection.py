"""training/selection.py: the round gate keeps the inverse model that scores better
on held-out curated-like draws (tiny stand-in checkpoints)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from art_explorer.nets import checkpoint_io
from art_explorer.nets import model as M
from art_explorer.scene import schema
from art_explorer.training import selection

N = 16  # held-out draws per test: enough to tell the stand-ins apart


def stand_in(path: Path, geometry: str, layers: int) -> Path:
    """A tiny inverse checkpoint that answers `geometry` and `layers` for every
    picture (its structure heads are constant)."""
    net = M.InverseModel(M.InverseConfig(backbone=M.SCENE_CNN, input_size=32, hidden=8))
    geometry_head = net.cat[schema.CAT_KEYS.index("geometry")]
    assert isinstance(geometry_head, torch.nn.Linear)
    with torch.no_grad():
        for head, k in (
            (geometry_head, schema.GEOMETRIES.index(geometry)),
            (net.n_layers, layers),
        ):
            head.weight.zero_()
            head.bias.fill_(-10.0)
            head.bias[k] = 10.0
    return checkpoint_io.save_checkpoint(net, path)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("selection")
    # curated-like scenes are mostly "u" with 2 layers, rarely "ring" with 0
    return {
        "good": stand_in(d / "good", "u", 2),
        "poor": stand_in(d / "poor", "ring", 0),
    }


def test_a_better_candidate_replaces_the_bundled_model(models: dict[str, Path]) -> None:
    sel = selection.choose_inverse(models["good"], bundled=models["poor"], n=N)
    assert sel.chosen == "candidate" and sel.use == str(models["good"])
    assert sel.candidate["score"] > sel.bundled["score"]
    assert sel.held_out == N
    assert "candidate" in sel.reason and "geometry" in sel.reason


def test_a_worse_candidate_is_set_aside(
    models: dict[str, Path], tmp_path: Path
) -> None:
    cand = tmp_path / "inverse"
    for suffix in (".json", ".safetensors"):
        cand.with_suffix(suffix).write_bytes(
            models["poor"].with_suffix(suffix).read_bytes()
        )
    sel = selection.keep_better_inverse(cand, bundled=models["good"], n=N)
    assert sel.chosen == "bundled" and sel.use == str(models["good"])
    assert "must score higher" in sel.reason
    # predict loads checkpoints/inverse when it is there: the loser is moved away
    assert not checkpoint_io.checkpoint_exists(cand)
    assert (tmp_path / "inverse-rejected.safetensors").exists()
    report = json.loads((tmp_path / "inverse-selection.json").read_text())
    assert report["chosen"] == "bundled" and report["reason"] == sel.reason


def test_a_tie_keeps_the_bundled_model(models: dict[str, Path]) -> None:
    sel = selection.choose_inverse(models["good"], bundled=models["good"], n=N)
    assert sel.chosen == "bundled"
    assert sel.candidate == sel.bundled


def test_an_unusable_candidate_keeps_the_bundled_model(
    models: dict[str, Path], tmp_path: Path
) -> None:
    sel = selection.choose_inverse(tmp_path / "missing", bundled=models["poor"], n=N)
    assert sel.chosen == "bundled" and sel.candidate == {}
    assert "no checkpoint" in sel.reason
    bad = tmp_path / "bad"
    bad.with_suffix(".json").write_text('{"kind": "forward"}')
    bad.with_suffix(".safetensors").write_bytes(b"")
    sel = selection.choose_inverse(bad, bundled=models["poor"], n=N)
    assert sel.chosen == "bundled" and "does not match" in sel.reason


def test_held_out_draws_are_fixed_and_show_something() -> None:
    a = selection.curated_like_targets(4, 32)
    b = selection.curated_like_targets(3, 32)
    assert [p for p, _ in a[:3]] == [p for p, _ in b]
    for _, img in a:
        lit = float((img.max(-1) >= selection.LIT_LEVEL).mean())
        assert selection.MIN_LIT <= lit <= selection.MAX_LIT
