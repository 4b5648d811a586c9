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


BAD_PARAMS = (
    '{"scale": null}',
    '{"geometry": 5, "scale": 0.5}',
    "[" * 5000 + "]" * 5000,
)


def test_bad_params_files_in_data_are_skipped_by_predict_and_train(
    bank_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Params files a person or a broken tool left in data/ no longer stop predict
    or train (issue 32 C1: a TypeError, a ParamError and a RecursionError): a null
    scale reads as the default scale, as everywhere the schema parses params; a
    geometry that is a number and 5000-deep nesting are skipped with one line, by
    predict's retrieval bank and by train's loader, as a truncated PNG is."""
    import shutil

    from art_explorer.training import loader

    d = tmp_path / "data"
    shutil.copytree(bank_dir, d)
    for i, text in enumerate(BAD_PARAMS):
        (d / "params" / f"{i:06d}.json").write_text(text)
    n = len(list(bank_dir.glob("images/*.png")))
    bank = RetrievalBank.load([d], res=16)
    assert bank is not None and len(bank) == n - 2
    assert "left out 2 unreadable pair(s)" in capsys.readouterr().err
    assert bank.params(0)["scale"] == 0.4  # the null scale: the schema's default
    lines: list[str] = []
    arrays = loader.load_folder(d, 16, log=lines.append)
    assert len(arrays["names"]) == n - 2
    assert any("skipped 2 unreadable pair(s)" in line for line in lines)
