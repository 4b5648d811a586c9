"""art_explorer/predict/target.py: any picture a person drops in, read as a letterboxed RGB square; what cannot be read is one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import predict
from art_explorer.predict.target import load_target

ROOT = Path(__file__).resolve().parent.parent


def test_odd_pictures_become_letterboxed_rgb_squares(tmp_path: Path) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:20, 10:20] = (255, 255, 255, 128)  # half-transparent white → grey
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    sq = load_target(tmp_path / "a.png")
    a = np.asarray(sq)
    assert sq.mode == "RGB" and sq.size == (40, 40)
    assert abs(int(a[15, 15, 0]) - 128) <= 1 and a[0, 0].max() == 0

    Image.fromarray(np.full((20, 30), 200, np.uint8), "L").save(tmp_path / "g.png")
    g = np.asarray(load_target(tmp_path / "g.png"))
    assert g.shape == (30, 30, 3) and g[15, 15].tolist() == [200, 200, 200]
    assert g[0, 15].max() == 0  # letterbox rows above the picture are black

    Image.fromarray(np.full((300, 37, 3), 255, np.uint8)).save(tmp_path / "t.jpg")
    t = np.asarray(load_target(tmp_path / "t.jpg"))
    assert t.shape == (300, 300, 3)
    assert t[150, 150].min() > 240 and t[150, 5].max() == 0

    pal = Image.fromarray(np.full((8, 8, 3), (0, 255, 0), np.uint8)).convert("P")
    pal.save(tmp_path / "p.png")
    assert np.asarray(load_target(tmp_path / "p.png"))[4, 4, 1] > 200

    deep = np.full((16, 16), 65535, np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    assert np.asarray(load_target(tmp_path / "d.png")).min() == 255

    Image.fromarray(np.full((10, 10, 3), 90, np.uint8)).save(tmp_path / "w.webp")
    assert load_target(tmp_path / "w.webp").size == (10, 10)


def test_unreadable_files_get_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    with pytest.raises(predict.UserError, match="not an image"):
        load_target(bad)
    with pytest.raises(predict.UserError, match="no such file"):
        load_target(tmp_path / "missing.png")
    r = subprocess.run(
        [sys.executable, "predict.py", "--target", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: cannot read {bad}: not an image (PNG, JPEG, WebP, ... expected)"
    ]
