"""train.py on a tiny dataset rendered by the real renderer (over HTTP): losses fall,
checkpoints / curves / sheets are written, --resume continues, bad input is refused."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import generate
import train
from art_explorer import config
from art_explorer.nets import checkpoint_io, perceptual_distance
from art_explorer.nets import model as M
from art_explorer.scene import schema
from art_explorer.training import inverse_stage, loader, losses, schedule

SIZE = 32


@pytest.fixture(scope="module")
def tiny_data(renderer_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 pairs at 32 px from generate.py through the HTTP renderer."""
    out = tmp_path_factory.mktemp("data")
    args = ["--n", "48", "--size", str(SIZE), "--out", str(out)]
    args += ["--renderer-url", renderer_url, "--no-sheet", "--seed", "3"]
    generate.main(generate.parse_args(args))
    return out


@pytest.fixture(scope="module")
def tiny_forward(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A forward model trained for one epoch on tiny_data (checkpoint path)."""
    out = tmp_path_factory.mktemp("fwd") / "forward"
    train.main(train.parse_args(run_args(tiny_data, out, "forward", "--epochs", "1")))
    return out


def run_args(data: Path, out: Path, stage: str, *extra: str) -> list[str]:
    return [
        "--stage", stage, "--data", str(data), "--size", str(SIZE), "--profile", "cpu",
        "--batch-size", "8", "--out", str(out), "--threads", "2", *extra,
    ]  # fmt: skip


def test_forward_loss_does_not_prefer_black() -> None:
    """The all-black picture must score worse than a near miss (evaluation.md)."""
    target = torch.zeros(2, 3, 32, 32)
    target[:, :, 8, 4:28] = 0.6
    target[:, :, 4:28, 20] = 0.3
    near = torch.roll(target, 1, dims=-1)
    black = torch.zeros_like(target)
    perc = perceptual_distance.create_perceptual("sqrt-ms-l1")
    w = losses.ForwardLossWeights()
    l_near, _ = losses.forward_loss(near, target, perc, w)
    l_black, _ = losses.forward_loss(black, target, perc, w)
    assert float(l_near) < float(l_black)


def test_lr_schedule() -> None:
    lrs = [schedule.lr_at(s, 100, 1.0, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0)
    assert all(x >= y for x, y in itertools.pairwise(lrs[10:]))
    assert lrs[-1] == pytest.approx(0.05, abs=0.01)


def test_forward_training_lowers_the_loss_and_writes_its_files(
    tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ck" / "forward"
    res = train.main(
        train.parse_args(
            run_args(tiny_data, out, "forward", "--epochs", "4", "--lr", "3e-3")
        )
    )
    hist = res["history"]
    assert len(hist) == 4 and not res["interrupted"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    for suffix in (
        ".safetensors",
        ".json",
        "-curves.png",
        "-val.png",
        "-last.safetensors",
    ):
        assert (out.parent / f"forward{suffix}").is_file(), suffix
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["kind"] == "forward" and side["config"]["size"] == SIZE
    assert side["metrics"]["ncc"] == pytest.approx(res["best"])
    fwd = checkpoint_io.load_forward(out)
    assert fwd is not None and fwd.cfg.size == SIZE
    # the cache of decoded pictures is in place for the next run
    assert (tiny_data / ".cache" / f"train-{SIZE}-{schema.schema_hash()}.npz").is_file()


def test_resume_continues_where_it_stopped(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "forward"
    first = train.main(
        train.parse_args(run_args(tiny_data, out, "forward", "--epochs", "1"))
    )
    assert len(first["history"]) == 1
    state = checkpoint_io.load_extra_tensors(out.with_name("forward-last"), "optim.")
    assert state  # the optimizer's moments travel with the last checkpoint
    res = train.main(
        train.parse_args(
            run_args(tiny_data, out, "forward", "--epochs", "2", "--resume")
        )
    )
    assert [h["epoch"] for h in res["history"]] == [1, 2]
    with pytest.raises(checkpoint_io.CheckpointError, match="size"):
        train.main(
            train.parse_args(
                run_args(
                    tiny_data,
                    out,
                    "forward",
                    "--epochs",
                    "3",
                    "--resume",
                    "--size",
                    "16",
                )
            )
        )


def test_inverse_training_with_forward_model_and_renderer_sheet(
    tiny_data: Path,
    tiny_forward: Path,
    tmp_path: Path,
    renderer_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "inverse"
    args = run_args(tiny_data, out, "inverse", "--epochs", "2", "--lr", "1e-3")
    args += ["--forward", str(tiny_forward), "--renderer-url", renderer_url]
    res = train.main(train.parse_args(args))
    assert len(res["history"]) == 2
    last = res["history"][-1]
    for k in ("val_loss", "cont_nrmse", "cat_acc", "layers_acc", "render_ncc"):
        assert np.isfinite(last[k]), k
    log = capsys.readouterr().out
    assert "perceptual loss: sqrt-ms-l1 through the frozen forward model" in log
    assert "backbone: resnet10t (512-dim features), weights: none" in log
    assert f"sheet renders: renderer {renderer_url}" in log
    assert (tmp_path / "inverse-val.png").is_file()
    inv = checkpoint_io.load_inverse(out)
    assert inv is not None
    imgs = torch.rand(2, 3, SIZE, SIZE)
    for p in inv.predict_params(imgs):
        schema.validate_params(p)


def test_inverse_without_forward_model_or_renderer(
    tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "inverse"
    args = run_args(tiny_data, out, "inverse", "--epochs", "1", "--no-renderer")
    args += ["--forward", str(tmp_path / "no-forward")]
    res = train.main(train.parse_args(args))
    assert "render_ncc" not in res["history"][-1]
    assert (tmp_path / "inverse-val.png").is_file()


def test_explicit_dinov2_without_weights_is_a_clear_error(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    args = run_args(
        tiny_data, tmp_path / "inv", "inverse", "--epochs", "1", "--backbone", "dinov2"
    )
    with pytest.raises(M.BackboneError, match="--backbone-weights"):
        train.main(train.parse_args(args))


def test_profile_dinov2_falls_back_with_a_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    args = train.parse_args(["--stage", "inverse"])
    name, weights = inverse_stage.choose_backbone(
        args, config.get_profile("gpu"), print
    )
    assert name == M.DEFAULT_FREE_BACKBONE and weights is None
    assert "DINOv2 weights not found" in capsys.readouterr().out


def test_missing_data_is_skipped_or_refused(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="make generate"):
        train.main(
            train.parse_args(run_args(tmp_path / "nothing", tmp_path / "f", "forward"))
        )
    pairs = loader.load_pairs([str(tmp_path / "nothing"), str(tiny_data)], SIZE)
    assert len(pairs) == 48
    assert "skipped" in capsys.readouterr().out


def test_cache_picks_up_new_pairs(tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "d"
    shutil.copytree(tiny_data, data)
    first = loader.load_pairs([str(data)], 16)
    assert first.images.shape == (48, 3, 16, 16)
    # add one pair by hand: a new image and its params
    src = sorted((data / "params").glob("*.json"))[0]
    shutil.copy(src, data / "params" / "999999.json")
    shutil.copy(data / "images" / (src.stem + ".png"), data / "images" / "999999.png")
    second = loader.load_pairs([str(data)], 16)
    assert len(second) == 49
    assert torch.equal(second.images[-1], second.images[0])
    # a pair with unreadable params is skipped with a note, not a crash
    (data / "params" / "999998.json").write_text("{not json")
    shutil.copy(data / "images" / (src.stem + ".png"), data / "images" / "999998.png")
    assert len(loader.load_pairs([str(data)], 16)) == 49


def test_split_is_seeded() -> None:
    a = train.split(100, 0.1, 0)
    b = train.split(100, 0.1, 0)
    c = train.split(100, 0.1, 1)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])
    assert len(a[1]) == 10 and len(set(a[0]) | set(a[1])) == 100


def test_parse_args_rejects_bad_values() -> None:
    with pytest.raises(SystemExit):
        train.parse_args(["--stage", "forward", "--epochs", "0"])
    with pytest.raises(SystemExit):
        train.parse_args(["--stage", "sideways"])
    random.seed(0)


def test_inverse_fine_tunes_from_init(tiny_data: Path, tmp_path: Path) -> None:
    """--init: the round's inverse model starts from a checkpoint (the bundled
    pretrained one in a round) and keeps its config."""
    init = tmp_path / "init"
    cfg = M.InverseConfig(backbone=M.SCENE_CNN, input_size=SIZE, hidden=64)
    checkpoint_io.save_checkpoint(M.InverseModel(cfg), init)
    out = tmp_path / "inverse"
    args = run_args(tiny_data, out, "inverse", "--epochs", "1", "--no-renderer")
    args += ["--forward", str(tmp_path / "no-forward"), "--init", str(init)]
    train.main(train.parse_args(args))
    net = checkpoint_io.load_inverse(out)
    assert net is not None and net.cfg.backbone == M.SCENE_CNN and net.cfg.hidden == 64
