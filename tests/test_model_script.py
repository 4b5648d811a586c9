"""model.py: a checkpoint's kind, config, schema, parameter count and metrics; another
schema refused with a message."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import model
from art_explorer.nets import checkpoint_io

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_inverse_model_is_described(capsys: object) -> None:
    info = model.main(model.parse_args([checkpoint_io.BUNDLED_INVERSE_PATH]))
    assert info["kind"] == "inverse"
    assert info["config"]["backbone"] == "scene-cnn"
    assert info["parameters"] > 1_000_000
    assert 0 < info["metrics"]["geometry"] <= 1


def test_another_schema_is_refused_with_a_message(tmp_path: Path) -> None:
    stem = tmp_path / "old"
    for ext in (".safetensors", ".json"):
        shutil.copy(
            Path(checkpoint_io.BUNDLED_INVERSE_PATH).with_suffix(ext),
            stem.with_suffix(ext),
        )
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["schema_version"], meta["schema_hash"] = 1, "0000000000000000"
    stem.with_suffix(".json").write_text(json.dumps(meta))
    done = subprocess.run(
        [sys.executable, "model.py", str(stem)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "made for parameter schema v1" in done.stderr
    assert "Traceback" not in done.stderr
    missing = subprocess.run(
        [sys.executable, "model.py", str(tmp_path / "none"), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "no checkpoint at" in missing.stderr
