"""Scaling out: tar shards (format, converter round trip, generate --shards, train on
shards), generate --ray on a local Ray, and train.py under torchrun with 2 CPU
processes (DDP) against one process."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import generate
import shards as shards_cli
import train
from art_explorer import atomic
from art_explorer.data import shards
from art_explorer.nets import checkpoint_io
from art_explorer.scene import rendering, sampling, schema
from art_explorer.training import loader

ROOT = Path(__file__).resolve().parent.parent
SIZE = 32
HAS_RAY = importlib.util.find_spec("ray") is not None


def fake_folder(out: Path, n: int, start: int = 0) -> None:
    """n pairs in the folder layout without a renderer (noise PNGs, random params)."""
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        params = sampling.sample_params(random.Random(i))
        atomic.write_json(out / "params" / f"{i:06d}.json", params)
        img = Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8))
        atomic.write_png(out / "images" / f"{i:06d}.png", img)


def folder_bytes(out: Path) -> dict[str, bytes]:
    return {
        f"{sub}/{p.name}": p.read_bytes()
        for sub in ("images", "params")
        for p in sorted((out / sub).iterdir())
    }


def gen(out: Path, url: str, n: int, *extra: str) -> int:
    args = ["--n", str(n), "--out", str(out), "--size", str(SIZE), "--seed", "5"]
    args += ["--renderer-url", url, "--no-autostart", "--no-sheet", *extra]
    return generate.main(generate.parse_args(args))


def test_pack_unpack_round_trip_is_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "folder"
    fake_folder(src, 7)
    sh = tmp_path / "sh"
    assert (
        shards_cli.main(
            shards_cli.parse_args(["pack", str(src), str(sh), "--per-shard", "3"])
        )
        == 7
    )
    index = json.loads((sh / "index.json").read_text())
    assert index["samples"] == 7
    assert [(s["count"], s["first"], s["last"]) for s in index["shards"]] == [
        (3, 0, 2),
        (3, 3, 5),
        (1, 6, 6),
    ]
    with tarfile.open(sh / "shard-000000.tar") as tar:  # WebDataset's member names
        assert tar.getnames() == [
            f"00000{i}.{e}" for i in range(3) for e in ("json", "png")
        ]
    assert shards_cli.main(shards_cli.parse_args(["info", str(sh)])) == 7
    back = tmp_path / "back"
    assert shards_cli.main(shards_cli.parse_args(["unpack", str(sh), str(back)])) == 7
    assert folder_bytes(back) == folder_bytes(src)
    with pytest.raises(SystemExit, match="exists"):
        shards.unpack(sh, back)  # never overwrites
    # appending continues after the last sample; an earlier index is refused
    more = tmp_path / "more"
    fake_folder(more, 2, start=7)
    assert shards.pack(more, sh, per_shard=3) == 2
    assert shards.read_index(sh)["samples"] == 9
    with pytest.raises(SystemExit, match="already holds"):
        shards.pack(src, sh)
    # the index is rebuilt from the shards when it is missing
    (sh / "index.json").unlink()
    assert shards.read_index(sh)["samples"] == 9
    assert len(shards.Samples(sh)) == 9
    assert [k for k, _, _ in shards.Samples(sh, rank=1, world=2)] == [
        "000003", "000004", "000005", "000007", "000008",
    ]  # fmt: skip


@pytest.mark.skipif(
    importlib.util.find_spec("webdataset") is None, reason="webdataset not installed"
)
def test_webdataset_reads_the_shards(tmp_path: Path) -> None:
    import webdataset as wds

    src = tmp_path / "folder"
    fake_folder(src, 5)
    shards.pack(src, tmp_path / "sh", per_shard=2)
    urls = [str(tmp_path / "sh" / f"shard-{k:06d}.tar") for k in range(3)]
    got = list(wds.WebDataset(urls, shardshuffle=False))  # type: ignore[attr-defined]
    assert [s["__key__"] for s in got] == [f"{i:06d}" for i in range(5)]
    for s in got:
        assert s["json"] == (src / "params" / f"{s['__key__']}.json").read_bytes()
        assert s["png"] == (src / "images" / f"{s['__key__']}.png").read_bytes()


def test_killed_writer_leaves_only_complete_shards(tmp_path: Path) -> None:
    sh = tmp_path / "sh"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    png = buf.getvalue()
    w = shards.ShardWriter(sh, per_shard=2)
    for i in range(3):
        w.add(i, {"i": i}, png)
    # killed here: shard 0 is listed, shard 1 is a .tmp holding sample 2
    assert (sh / "shard-000001.tar.tmp").exists()
    again = shards.ShardWriter(sh, per_shard=2)
    assert again.tmp_removed == 1 and again.next_index == 2
    assert not list(sh.glob("*.tmp"))
    assert shards.read_index(sh)["samples"] == 2


def test_generate_shards_equal_the_folder_run_and_resume(
    tmp_path: Path, renderer_url: str
) -> None:
    folder, sh = tmp_path / "folder", tmp_path / "sh"
    assert gen(folder, renderer_url, 7) == 7
    assert gen(sh, renderer_url, 4, "--shards", "--per-shard", "3") == 4
    # resumed up to a total of 7: OUT holds shards, so --shards is implied;
    # numbering continues
    assert gen(sh, renderer_url, 7, "--per-shard", "3") == 3
    assert not (sh / "images").exists()
    index = shards.read_index(sh)
    assert [(s["first"], s["last"]) for s in index["shards"]] == [
        (0, 2),
        (3, 3),
        (4, 6),
    ]
    back = tmp_path / "back"
    shards.unpack(sh, back)
    assert folder_bytes(back) == folder_bytes(folder)
    # train reads either layout into the same arrays
    a = loader.load_pairs([str(folder)], SIZE)
    b = loader.load_pairs([str(sh)], SIZE)
    assert [Path(n).name for n in a.names] == [Path(n).name for n in b.names]
    assert (a.images == b.images).all()
    for k in a.enc:
        assert (a.enc[k] == b.enc[k]).all(), k
    assert (sh / ".cache" / f"train-{SIZE}.npz").is_file()
    c = loader.load_pairs([str(sh)], SIZE)  # from the cache
    assert (c.images == b.images).all()


def test_resume_command_names_shards_and_ray() -> None:
    args = generate.parse_args(["--n", "5", "--ray", "--ray-workers", "3", "--shards"])
    cmd = generate.resume_command(args, 64)
    assert "--ray local --ray-workers 3" in cmd and "--shards" in cmd
    assert generate.parse_args(["--ray", "auto"]).ray == "auto"
    assert generate.parse_args([]).ray is None


def test_import_generate_does_not_import_ray() -> None:
    code = "import sys, generate, train; print('ray' in sys.modules)"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'ray>=2.9')")
def test_ray_generation_stops_gracefully_and_equals_the_thread_pool_run(
    tmp_path: Path, renderer_url: str
) -> None:
    """2 render actors on a local Ray, each starting its own bundled renderer;
    SIGTERM stops the run gracefully (Ray's own handler does not end it at once),
    and the shards, resumed, hold exactly what the thread pool writes, in order."""
    sh = tmp_path / "sh"
    cmd = [sys.executable, str(ROOT / "generate.py"), "--n", "5000", "--out", str(sh)]
    cmd += ["--size", str(SIZE), "--seed", "5", "--no-sheet", "--shards"]
    cmd += ["--per-shard", "5", "--ray", "--ray-workers", "2"]
    env = {k: v for k, v in os.environ.items() if k != "RENDERER_URL"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(sh.glob("shard-*.tar"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    log, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, log
    assert "2 render actors (a bundled renderer each)" in log
    assert "stopped by SIGTERM" in log and "--ray local --ray-workers 2" in log
    total = shards.read_index(sh)["samples"]
    assert total >= 10
    assert gen(sh, renderer_url, total + 3) == 3  # resumed by the thread pool
    folder = tmp_path / "folder"
    assert gen(folder, renderer_url, total + 3) == total + 3
    back = tmp_path / "back"
    shards.unpack(sh, back)
    assert folder_bytes(back) == folder_bytes(folder)
    # the actors and their renderers are gone with the run
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "RenderActor" not in ps


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2"]
    cmd += ["--master_port", str(rendering.free_port()), "train.py", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--stage", "forward", "--data", str(data), "--size", str(SIZE),
        "--profile", "cpu", "--batch-size", "8", "--out", str(out), "--threads", "1",
        "--perceptual", "sqrt-ms-l1", *extra,
    ]  # fmt: skip


def test_torchrun_two_processes_match_one_and_resume(
    tmp_path: Path, renderer_url: str
) -> None:
    data = tmp_path / "sh"
    assert gen(data, renderer_url, 48, "--shards", "--per-shard", "20") == 48
    one = train.main(
        train.parse_args(
            train_args(data, tmp_path / "one" / "forward", "--epochs", "2")
        )
    )
    out = tmp_path / "two" / "forward"
    r = torchrun(*train_args(data, out, "--epochs", "2"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "distributed: 2 processes (DDP, gloo), global batch 8 = 2 × 4" in r.stdout
    # rank 0 alone logs and writes
    assert r.stdout.count("epoch   2/2") == 1
    side = json.loads(out.with_name("forward-last.json").read_text())
    hist = side["history"]
    assert [h["epoch"] for h in hist] == [1, 2]
    # same data, init and global batch; only the order of samples differs
    for a, b in zip(one["history"], hist, strict=True):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=0.1)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.15)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] * 1.05
    # resume under torchrun continues from epoch 2
    r = torchrun(*train_args(data, out, "--epochs", "3", "--resume"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resume:" in r.stdout and r.stdout.count("epoch   3/3") == 1
    side = json.loads(out.with_name("forward-last.json").read_text())
    assert [h["epoch"] for h in side["history"]] == [1, 2, 3]
    # the checkpoint loads in one process like any other (no "module." prefix)
    fwd = checkpoint_io.load_forward(out)
    assert fwd is not None and fwd.cfg.size == SIZE


@pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'ray>=2.9')")
def test_explore_on_ray_picks_what_the_local_run_picks(
    tmp_path: Path, renderer_url: str
) -> None:
    """explore --ray with a given renderer URL (both actors share it): the same
    candidates rendered by the actors give the same picks and pictures."""
    import predict

    refs = tmp_path / "refs.jsonl"
    lines = [
        json.dumps(schema.to_prefixed(sampling.sample_params(random.Random(300 + i))))
        for i in range(3)
    ]
    refs.write_text("\n".join(lines) + "\n")

    def argv(out: str, *extra: str) -> list[str]:
        return [
            "--explore", "-n", "2", "--candidates", "8", "--final-size", "64",
            "--refs", str(refs), "--scored-refs", str(tmp_path / "none.jsonl"),
            "--out", str(tmp_path / out), "--renderer-url", renderer_url,
            "--forward", str(tmp_path / "none"), "--perceptual", "sqrt-ms-l1",
            *extra,
        ]  # fmt: skip

    local = predict.main(predict.parse_args(argv("local")))
    on_ray = predict.main(
        predict.parse_args(argv("ray", "--ray", "--ray-workers", "2"))
    )
    assert on_ray["params"] == local["params"]
    assert on_ray["novelty"] == pytest.approx(local["novelty"])
    for i in on_ray["ids"]:
        name = f"images/{i:06d}.png"
        assert (tmp_path / "ray" / name).read_bytes() == (
            tmp_path / "local" / name
        ).read_bytes()


def test_stopped_and_killed_shard_runs_resume_to_the_same_samples(
    tmp_path: Path, renderer_url: str
) -> None:
    """SIGTERM closes the shard in progress (listed, resumable); SIGKILL leaves a
    .tmp shard that the next run removes and draws again. Either way the samples
    end up those of one uninterrupted run, in order."""
    sh = tmp_path / "sh"
    cmd = [sys.executable, str(ROOT / "generate.py"), "--n", "5000", "--out", str(sh)]
    cmd += ["--size", str(SIZE), "--seed", "5", "--renderer-url", renderer_url]
    cmd += ["--no-autostart", "--no-sheet", "--shards", "--per-shard", "4"]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 60
        while len(list(sh.glob("shard-*.tar"))) < 2 + (sig == signal.SIGKILL) * 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(sig)
        log, _ = proc.communicate(timeout=60)
        if sig == signal.SIGTERM:
            assert proc.returncode == 128 + sig and "stopped by SIGTERM" in log, log
            assert "--shards --per-shard 4" in log  # the resume command
            assert not list(sh.glob("*.tmp"))
    total = shards.read_index(sh)["samples"]
    assert gen(sh, renderer_url, total + 3, "--per-shard", "4") == 3
    keys = [k for k, _, _ in shards.Samples(sh)]
    assert keys == [f"{i:06d}" for i in range(total + 3)]
    one = tmp_path / "one"
    assert gen(one, renderer_url, total + 3) == total + 3
    back = tmp_path / "back"
    shards.unpack(sh, back)
    assert folder_bytes(back) == folder_bytes(one)


def test_shards_refused_where_the_folder_layout_is(
    tmp_path: Path, renderer_url: str
) -> None:
    out = tmp_path / "data"
    fake_folder(out, 2)
    with pytest.raises(SystemExit, match=r"shards\.py pack"):
        gen(out, renderer_url, 1, "--shards")
