"""dataset.Layout: the one spelling of DIR/images/NNNNNN.png + DIR/params/NNNNNN.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from art_explorer.data import dataset
from art_explorer.scene import schema


def test_layout_counts_complete_pairs_and_numbers_on(tmp_path: Path) -> None:
    lay = dataset.Layout(tmp_path / "d")
    assert lay.count_pairs() == 0 and lay.next_index() == 0 and lay.pairs() == []
    lay.images.mkdir(parents=True)
    lay.params.mkdir()
    for i in (0, 1, 3):
        lay.image_path(i).write_bytes(b"png")
        lay.params_path(i).write_text("{}")
    lay.params_path(7).write_text("{}")  # params without an image: not a pair
    (lay.images / "notes.png").write_bytes(b"")  # not a sample number
    (lay.images / "000004.png.tmp").write_bytes(b"")
    assert lay.image_path(3).name == "000003.png"
    assert lay.indices("png") == {0, 1, 3} and lay.indices("json") == {0, 1, 3, 7}
    assert lay.count_pairs() == 3 and lay.next_index() == 8
    assert [img.name for img, _ in lay.pairs()] == [
        "000000.png",
        "000001.png",
        "000003.png",
    ]
    assert all(par == lay.params_path(int(img.stem)) for img, par in lay.pairs())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"geometry": 5, "scale": 0.5}', "geometry: unknown option 5"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"scale": ' + "9" * 5000 + "}", "not readable JSON"),
        ("{trunc", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (b'{"color": "\xff"}', "not UTF-8"),
    ],
)
def test_read_params_skips_a_bad_file_with_one_line(
    tmp_path: Path, text: str | bytes, why: str
) -> None:
    """Issue 32 C1: predict and train read params through read_params, so a bad
    file in data/ is one message, not a TypeError, ParamError or RecursionError."""
    path = tmp_path / "000001.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    said: list[str] = []
    assert dataset.read_params(path, log=said.append) is None
    assert len(said) == 1 and "\n" not in said[0]
    assert str(path) in said[0] and why in said[0]
    with pytest.raises(dataset.SampleError, match=why):
        dataset.load_params(path)
    with pytest.raises(ValueError):  # callers that catch ValueError keep working
        dataset.params_from_json(path.read_bytes(), path)


def test_read_params_completes_good_params(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "000002.json"
    path.write_text('{"scale": null}')  # null: the default, as the renderer reads it
    params = dataset.read_params(path)
    assert params == schema.default_params()
    assert dataset.read_params(tmp_path / "missing.json") is None
    assert "does not exist" in capsys.readouterr().err


def test_sample_path_names_the_three_folders(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "output"
    assert dataset.sample_path("328", data, out) == data / "params/000328.json"
    assert dataset.sample_path("q:12", data, out) == data / "quality/params/000012.json"
    assert dataset.sample_path("out:0", data, out) == out / "params/000000.json"
    assert dataset.sample_path("x/y.json", data, out) == Path("x/y.json")
    for bad in ("q:", "out:-1", "1" * 12, "ref:3"):
        with pytest.raises(dataset.SampleError, match="bad ID"):
            dataset.sample_path(bad, data, out)


def test_data_of_another_schema_is_set_aside_not_lost(tmp_path: Path) -> None:
    """A round keeps data of an older schema version renamed DIR.vN and starts
    anew; data of this schema, or no folder, stays where it is."""
    older = schema.SCHEMA_VERSION - 1
    old = tmp_path / "data"
    (old / "params").mkdir(parents=True)
    (old / "params" / "000001.json").write_text("{}")
    marker = {"version": older, "hash": schema.schema_hash(older)}
    (old / dataset.DATA_SCHEMA_FILE).write_text(json.dumps(marker))
    aside = dataset.set_aside_other_schema(old)
    assert aside == tmp_path / f"data.v{older}" and not old.exists()
    assert (tmp_path / f"data.v{older}" / "params" / "000001.json").read_text() == "{}"
    now = tmp_path / "now"
    now.mkdir()
    dataset.write_data_schema(now)
    assert dataset.set_aside_other_schema(now) is None and now.exists()
    assert dataset.set_aside_other_schema(tmp_path / "none") is None
