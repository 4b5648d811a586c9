"""atomic.py's writes and utils.py's contact sheet."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from art_explorer import atomic, utils

# ----------------------------------------------------------------------------------
# Files and sheets


def test_atomic_write_leaves_no_temp_file(tmp_path: Any) -> None:
    target = tmp_path / "sub" / "x.json"
    atomic.write_json(target, {"a": 1})
    atomic.atomic_write_text(target, "replaced\n")
    assert target.read_text() == "replaced\n"
    assert [f.name for f in target.parent.iterdir()] == ["x.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Any) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["x.txt"]


def test_contact_sheet_layout() -> None:
    white = np.ones((32, 32, 3), np.float32)
    black = np.zeros((32, 32, 3), np.uint8)
    sheet = utils.contact_sheet([white, black, white], ["a", "b", "c"], cols=2, cell=64)
    assert sheet.mode == "RGB"
    # 2 columns and 2 rows of 64 px tiles, 2 px gaps, a 12 px caption under each.
    assert sheet.size == (2 * 66 + 2, 2 * (64 + 12 + 2) + 2)
    a = np.asarray(sheet)
    assert (a[2:66, 2:66] == 255).all()  # first tile: white, enlarged
    assert (a[2:66, 68:132] == 0).all()  # second tile: black
    assert (a[0, :] == 40).all()  # dark grey grid around tiles
    no_labels = utils.contact_sheet([white], None, cols=8)
    assert no_labels.size == (36, 36)


def test_a_full_disk_names_the_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 32 C4: the error of a failed atomic write carries the target's path,
    so a script prints one line naming it; the old file and no temp file stay."""
    import errno
    import os

    target = tmp_path / "refs.jsonl"
    target.write_text("old\n")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError) as e:
        atomic.atomic_write_text(target, "new\n")
    assert e.value.filename == str(target) and e.value.errno == errno.ENOSPC
    assert utils.os_error_line(e.value) == (
        f"cannot write {target}: No space left on device"
    )
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["refs.jsonl"]
    assert utils.os_error_line(PermissionError(13, "Permission denied", "x")) == (
        "cannot use x: Permission denied"
    )
