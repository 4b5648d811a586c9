"""dataset.Layout: the one spelling of DIR/images/NNNNNN.png + DIR/params/NNNNNN.json."""

from __future__ import annotations

from pathlib import Path

from art_explorer.data import dataset


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
