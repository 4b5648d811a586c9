"""A training run's checkpoints survive kill -9 (issue 32 C5): a real train.py process
killed between the weights' and the sidecar's renames resumes from the weights it
left, with their own sidecar, and one killed before the renames leaves no temp files
behind once the next save runs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from art_explorer.data import dataset
from art_explorer.nets import checkpoint_io
from art_explorer.scene import sampling, schema
from renderer.scene import render

ROOT = Path(__file__).resolve().parents[1]
SIZE = 16


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 pairs at 16 px drawn in-process by the bundled renderer."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("data")
    layout = dataset.Layout(folder)
    layout.images.mkdir(parents=True)
    layout.params.mkdir(parents=True)
    rng = random.Random(5)
    for i in range(8):
        params = schema.validate_params(sampling.sample_params(rng))
        Image.fromarray(render(params, SIZE)).save(layout.images / f"{i:06d}.png")
        (layout.params / f"{i:06d}.json").write_text(json.dumps(params))
    return folder


def _command(data: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-u",
        str(ROOT / "train.py"),
        "--stage", "forward", "--profile", "cpu", "--device", "cpu",
        "--data", str(data), "--out", str(out), "--size", str(SIZE),
        "--epochs", str(epochs), "--batch-size", "4", "--width", "2",
        "--hidden", "16", "--attn-res", "0", "--layout-k", "2",
        "--layout-res", "8", "--perceptual", "sqrt-ms-l1", "--threads", "1",
        *extra,
    ]  # fmt: skip


def _train(data: Path, out: Path, epochs: int, *extra: str) -> str:
    done = subprocess.run(
        _command(data, out, epochs, *extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # a log file gets plain lines (art_explorer.progress), no bar redraws
    assert "\r" not in done.stdout + done.stderr
    assert "epoch   1/" in done.stdout or "resume:" in done.stdout
    return done.stdout


def _kill_at(data: Path, out: Path, epochs: int, point: str) -> None:
    """Run train.py --resume until its save of OUT-last stops at `point`; kill -9."""
    env = {**os.environ, checkpoint_io.PAUSE_ENV: f"{point}:{out}-last"}
    proc = subprocess.Popen(
        _command(data, out, epochs, "--resume"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(f"save_checkpoint paused: {point}"):
                os.kill(proc.pid, signal.SIGKILL)
                break
        assert proc.wait(timeout=60) == -signal.SIGKILL, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _one_epoch_then_kill(pairs: Path, tmp_path: Path, point: str) -> tuple[Path, bytes]:
    """Train one epoch, then resume for a second killed at `point` of its OUT-last
    save → (the OUT-last stem, its weights before the kill)."""
    out = tmp_path / "forward"
    _train(pairs, out, 1)
    last = Path(f"{out}-last")
    before = last.with_suffix(".safetensors").read_bytes()
    _kill_at(pairs, out, 2, point)
    return last, before


def test_kill_9_between_the_renames_resumes_from_the_weights(
    pairs: Path, tmp_path: Path
) -> None:
    last, _ = _one_epoch_then_kill(pairs, tmp_path, "renamed")
    out = tmp_path / "forward"
    # the mismatch the kill leaves: epoch-2 weights beside the epoch-1 sidecar
    on_disk = json.loads(last.with_suffix(".json").read_text())
    assert on_disk["epoch"] == 1
    assert checkpoint_io.committed_sidecar(last)["epoch"] == 2
    log = _train(pairs, out, 3, "--resume")
    assert "after epoch 2" in log, log
    meta = json.loads(last.with_suffix(".json").read_text())
    assert [h["epoch"] for h in meta["history"]] == [1, 2, 3]


def test_kill_9_before_the_renames_keeps_the_old_pair_and_no_temp_files(
    pairs: Path, tmp_path: Path
) -> None:
    last, before = _one_epoch_then_kill(pairs, tmp_path, "written")
    out = tmp_path / "forward"
    temps = sorted(p.name for p in tmp_path.glob(".forward-last.*.tmp"))
    assert len(temps) == 2, temps  # the weights' and the sidecar's
    assert last.with_suffix(".safetensors").read_bytes() == before
    log = _train(pairs, out, 2, "--resume")
    assert "after epoch 1" in log, log
    assert list(tmp_path.glob(".forward-last.*.tmp")) == []
