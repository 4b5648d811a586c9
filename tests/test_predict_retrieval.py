"""art_explorer/predict/retrieval.py: the nearest rendered training images."""

from __future__ import annotations

from pathlib import Path

import pytest

from art_explorer.predict.retrieval import RetrievalBank

pytest_plugins = ["predict_fixtures"]  # client, target_params, bank_dir, refs_file


def test_retrieval_bank_leaves_out_broken_pairs(
    bank_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One truncated PNG and one broken JSON among good pairs: the bank holds the
    rest and says what it left out; the data folder is untouched."""
    import shutil

    d = tmp_path / "data"
    shutil.copytree(bank_dir, d)
    (d / "images" / "000001.png").write_bytes(b"\x89PNG\r\n\x1a\n trunc")
    (d / "params" / "000002.json").write_text("{not json")
    bank = RetrievalBank.load([d], res=16)
    assert bank is not None
    n = len(list(bank_dir.glob("images/*.png")))
    assert len(bank) == n - 2
    assert "000001.png" in capsys.readouterr().err
    assert (d / "params" / "000002.json").read_text() == "{not json"
