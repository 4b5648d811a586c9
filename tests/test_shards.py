"""art_explorer.data.shards and shards.py: a damaged shard is named, its good
samples kept (issue 32 C3)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import shards as shards_cli
from art_explorer import atomic
from art_explorer.data import shards
from art_explorer.scene import sampling


def shard_folder(folder: Path, n: int = 30, per_shard: int = 30) -> None:
    """n samples of random params and noise PNGs written as shards."""
    rng = np.random.default_rng(0)
    with shards.ShardWriter(folder, per_shard) as w:
        for i in range(n):
            img = Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8))
            buf = Path(folder / "tmp.png")
            atomic.write_png(buf, img)
            w.add(i, sampling.sample_params(random.Random(i)), buf.read_bytes())
            buf.unlink()


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """Two shards of 30; the first cut to half its bytes."""
    sh = tmp_path / "sh"
    shard_folder(sh, 60, 30)
    truncate_half(sh / "shard-000000.tar")
    return sh


def test_unpack_keeps_the_good_samples_and_names_the_broken_shard(
    broken: Path, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "out"
    args = shards_cli.parse_args(["unpack", str(broken), str(out)])
    n = shards_cli.main(args)  # no tarfile.ReadError
    err = capsys.readouterr()
    good = len(list((out / "images").glob("*.png")))
    assert 0 < good - 30 < 30 and n == good  # the half shard's good ones + shard 1
    assert len(list((out / "params").glob("*.json"))) == good
    assert "shard-000000.tar: damaged after" in err.err + err.out
    assert f"damaged after {good - 30} samples" in err.err + err.out


def test_info_counts_what_the_shards_really_hold(broken: Path, capsys: Any) -> None:
    n = shards_cli.main(shards_cli.parse_args(["info", str(broken)]))
    out = capsys.readouterr()
    assert 30 < n < 60  # index.json still says 60
    assert f"{n} samples in 2 shards (1 damaged)" in out.out
    assert "shard-000000.tar: damaged" in out.err


def test_samples_reports_damage_without_raising(broken: Path) -> None:
    said: list[str] = []
    samples = shards.Samples(broken, log=said.append)
    keys = [k for k, _, _ in samples]
    assert keys[-30:] == [f"{i:06d}" for i in range(30, 60)]
    assert len(samples.damaged) == 1 and len(said) == 1
    with pytest.raises(shards.ShardError, match=r"shard-000000\.tar: damaged"):
        list(shards.iter_shard(broken / "shard-000000.tar"))


@pytest.mark.parametrize("keep", [0, 100, 512, 5000])
def test_any_cut_is_a_shard_error(tmp_path: Path, keep: int) -> None:
    sh = tmp_path / "sh"
    shard_folder(sh, 4, 4)
    path = sh / "shard-000000.tar"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(shards.ShardError):
        list(shards.iter_shard(path))
    index, errors = shards.verify(sh)
    assert len(errors) == 1 and index["samples"] < 4


def test_train_reads_the_good_samples_of_a_damaged_shard(
    broken: Path, capsys: Any
) -> None:
    from art_explorer.training import loader

    arrays = loader.load_shards(broken, 16, log=print)
    assert 30 < len(arrays["names"]) < 60
    assert "shard-000000.tar: damaged" in capsys.readouterr().err


def test_parse_args_usage() -> None:
    assert shards_cli.parse_args(["info", "x"]).dst is None
    for bad in (["pack", "x"], ["pack", "a", "b", "--per-shard", "0"], ["zip", "a"]):
        with pytest.raises(SystemExit) as e:
            shards_cli.parse_args(bad)
        assert e.value.code == 2
