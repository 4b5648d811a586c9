"""refs.py on temp files: list, save (IDs, duplicates), rm (lines), broken lines."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import refs
from art_explorer import atomic, utils
from art_explorer.data import refs_io
from art_explorer.scene import sampling, schema


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """data/params/000000..000002, data/quality/params/000012, output/params/000000,
    and a refs file with two refs."""
    rng = random.Random(0)
    samples = [sampling.sample_params(rng) for _ in range(6)]
    for i in range(3):
        atomic.write_json(tmp_path / "data" / "params" / f"{i:06d}.json", samples[i])
    atomic.write_json(tmp_path / "data/quality/params/000012.json", samples[3])
    atomic.write_json(tmp_path / "output/params/000000.json", samples[4])
    f = tmp_path / "refs.jsonl"
    f.write_text(
        "".join(json.dumps(schema.to_prefixed(samples[i])) + "\n" for i in (1, 5)),
        encoding="utf-8",
    )
    return {"root": tmp_path, "refs": f}


def run(tree: dict[str, Path], *argv: str) -> int:
    root = tree["root"]
    base = ["--refs", str(tree["refs"]), "--data", str(root / "data")]
    return refs.main(refs.parse_args([*base, "--output", str(root / "output"), *argv]))


def lines(tree: dict[str, Path]) -> list[str]:
    return tree["refs"].read_text(encoding="utf-8").splitlines()


def no_temp_files(tree: dict[str, Path]) -> bool:
    return not list(tree["refs"].parent.glob("*.tmp"))


def test_list_numbers_by_line(tree: dict[str, Path], capsys: Any) -> None:
    text = tree["refs"].read_text()
    tree["refs"].write_text(text.replace("\n", "\n\n", 1))  # a blank line 2
    assert run(tree, "list") == 0
    out = capsys.readouterr().out.splitlines()
    first, second = refs_io.load_refs(tree["refs"])
    assert out[0] == f"  1. {schema.describe(first)}"
    assert out[1] == f"  3. {schema.describe(second)}"  # numbered as file lines
    assert out[0].startswith("  1. geo=") and "rep=" in out[0] and "layers=" in out[0]
    assert "2 refs" in out[2]


def test_list_empty_or_missing(tree: dict[str, Path], capsys: Any) -> None:
    tree["refs"].unlink()
    assert run(tree, "list") == 0
    assert "no refs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("ref_id", "source"),
    [
        ("0", "data/params/000000.json"),
        ("2", "data/params/000002.json"),
        ("q:12", "data/quality/params/000012.json"),
        ("out:0", "output/params/000000.json"),
    ],
)
def test_save_appends_prefixed(tree: dict[str, Path], ref_id: str, source: str) -> None:
    before = lines(tree)
    assert run(tree, "save", ref_id) == 0
    after = lines(tree)
    assert after[:2] == before and len(after) == 3
    saved = json.loads(after[2])
    assert schema.is_prefixed(saved)
    want = json.loads((tree["root"] / source).read_text())
    assert schema.canonical_json(saved) == schema.canonical_json(want)
    assert no_temp_files(tree)


def test_save_creates_a_missing_refs_file(tree: dict[str, Path]) -> None:
    tree["refs"].unlink()
    assert run(tree, "save", "0") == 0
    assert len(refs_io.load_refs(tree["refs"])) == 1


def test_save_adds_a_newline_to_an_unterminated_last_line(
    tree: dict[str, Path],
) -> None:
    tree["refs"].write_text(tree["refs"].read_text().rstrip("\n"))
    assert run(tree, "save", "0") == 0
    assert len(refs_io.load_refs(tree["refs"])) == 3


def test_save_rejects_a_duplicate(tree: dict[str, Path], capsys: Any) -> None:
    before = tree["refs"].read_bytes()
    assert run(tree, "save", "1") == 1  # sample 1 is already line 1
    err = capsys.readouterr().err
    assert "already a ref" in err and "line 1" in err
    assert tree["refs"].read_bytes() == before
    assert run(tree, "save", "0") == 0
    assert run(tree, "save", "0") == 1  # and the one just saved


def test_save_duplicate_despite_messy_spelling(tree: dict[str, Path]) -> None:
    params = json.loads((tree["root"] / "data/params/000000.json").read_text())
    messy = schema.to_prefixed(params)
    messy["Element.color"] = messy["Element.color"].lower()
    messy["Scalars.repetitions"] = {
        "value": messy["Scalars.repetitions"],
        "disabled": False,
    }
    messy["Scalars.unknownKey"] = 1
    with tree["refs"].open("a") as f:
        f.write(json.dumps(messy) + "\n")
    assert run(tree, "save", "0") == 1


@pytest.mark.parametrize(
    ("ref_id", "message"),
    [
        ("abc", "bad ID"),
        ("q:", "bad ID"),
        ("x:3", "bad ID"),
        ("-1", "bad ID"),
        ("999", "000999.json does not exist"),
        ("q:1", "quality/params/000001.json does not exist"),
        ("out:7", "output/params/000007.json does not exist"),
    ],
)
def test_save_rejects_bad_ids(
    tree: dict[str, Path], capsys: Any, ref_id: str, message: str
) -> None:
    before = tree["refs"].read_bytes()
    assert run(tree, "save", ref_id) == 1
    assert message in capsys.readouterr().err
    assert tree["refs"].read_bytes() == before


def test_save_rejects_a_broken_sample(tree: dict[str, Path], capsys: Any) -> None:
    bad = tree["root"] / "data/params/000002.json"
    bad.write_text('{"geometry": "blob"}')
    assert run(tree, "save", "2") == 1
    assert "000002.json: geometry: unknown option 'blob'" in capsys.readouterr().err
    bad.write_text("{trunc")
    assert run(tree, "save", "2") == 1
    assert "not JSON" in capsys.readouterr().err


def test_rm_removes_the_line(tree: dict[str, Path], capsys: Any) -> None:
    assert run(tree, "save", "0") == 0
    before = lines(tree)
    assert run(tree, "rm", "2") == 0
    assert lines(tree) == [before[0], before[2]]
    assert "removed" in capsys.readouterr().out
    assert no_temp_files(tree)


@pytest.mark.parametrize("line", ["0", "3", "-1"])
def test_rm_refuses_a_missing_line(
    tree: dict[str, Path], capsys: Any, line: str
) -> None:
    before = tree["refs"].read_bytes()
    assert run(tree, "rm", line) == 1
    assert "has no line" in capsys.readouterr().err
    assert tree["refs"].read_bytes() == before


def test_rm_refuses_a_blank_line(tree: dict[str, Path], capsys: Any) -> None:
    tree["refs"].write_text(tree["refs"].read_text().replace("\n", "\n\n", 1))
    assert run(tree, "rm", "2") == 1
    assert "blank" in capsys.readouterr().err


def test_broken_line_reported_with_its_number(
    tree: dict[str, Path], capsys: Any
) -> None:
    good = lines(tree)
    tree["refs"].write_text(f"{good[0]}\n{{oops\n{good[1]}\n")
    before = tree["refs"].read_bytes()
    for argv in (["list"], ["save", "0"]):
        assert run(tree, *argv) == 1
        err = capsys.readouterr().err
        assert f"{tree['refs']} line 2: not JSON" in err
        assert tree["refs"].read_bytes() == before  # never corrupted
    # rm is how a broken line gets fixed.
    assert run(tree, "rm", "2") == 0
    assert lines(tree) == good
    assert run(tree, "list") == 0


def test_line_that_is_not_utf8_is_reported_and_removable(
    tree: dict[str, Path], capsys: Any
) -> None:
    good = tree["refs"].read_bytes().splitlines()
    # U+2028 in a JSON string (line 1) does not split a line for `list` nor `rm`
    note = json.dumps({**json.loads(good[0]), "Note": "a\u2028b"}, ensure_ascii=False)
    tree["refs"].write_bytes(note.encode() + b"\n\xff\xfe\n" + good[1] + b"\n")
    for argv in (["list"], ["save", "0"]):
        assert run(tree, *argv) == 1
        assert f"{tree['refs']} line 2: not UTF-8" in capsys.readouterr().err
    assert run(tree, "rm", "2") == 0
    assert "unreadable line" in capsys.readouterr().out
    assert run(tree, "list") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("2 refs")
    assert tree["refs"].read_bytes() == note.encode() + b"\n" + good[1] + b"\n"


def test_unreadable_sample_or_refs_file_is_a_clear_error(
    tree: dict[str, Path], capsys: Any
) -> None:
    sample = tree["root"] / "data/params/000002.json"
    sample.write_bytes(b'{"color": "\xff"}')
    assert run(tree, "save", "2") == 1
    assert "000002.json: not UTF-8 text" in capsys.readouterr().err
    sample.unlink()
    sample.mkdir()
    assert run(tree, "save", "2") == 1
    assert "000002.json: cannot read it" in capsys.readouterr().err
    tree["refs"] = tree["root"]  # a folder where the refs file should be
    for argv in (["list"], ["rm", "1"], ["save", "0"]):
        assert run(tree, *argv) == 1
        assert "cannot read it" in capsys.readouterr().err


def test_invalid_params_line_reported(tree: dict[str, Path], capsys: Any) -> None:
    good = lines(tree)
    tree["refs"].write_text(f'{good[0]}\n{good[1]}\n{{"Element.geometry": "blob"}}\n')
    assert run(tree, "list") == 1
    assert "line 3: geometry: unknown option 'blob'" in capsys.readouterr().err


def test_cli_exit_codes(tree: dict[str, Path]) -> None:
    root = tree["root"]

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        script = str(utils.ROOT / "refs.py")
        files = ["--refs", str(tree["refs"]), "--data", str(root / "data")]
        return subprocess.run(
            [sys.executable, script, *files, *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = cli("list")
    assert ok.returncode == 0 and ok.stdout.startswith("  1. geo=")
    missing = cli("rm", "9")
    assert missing.returncode == 1 and "has no line 9" in missing.stderr
    assert "Traceback" not in missing.stderr
    for usage in ([], ["rm", "three"], ["frobnicate"]):  # argparse: exit 2
        with pytest.raises(SystemExit) as e:
            refs.parse_args(usage)
        assert e.value.code == 2


def test_sheet_renders_every_ref(tree: dict[str, Path], renderer_url: str) -> None:
    from PIL import Image

    out = tree["root"] / "refs.png"
    argv = ["sheet", "--out", str(out), "--size", "48", "--cols", "4"]
    assert run(tree, *argv, "--renderer-url", renderer_url) == 0
    with Image.open(out) as im:
        assert im.size == (2 * 50 + 2, 48 + 12 + 4)  # 2 tiles, one captioned row
        assert im.getextrema() != ((40, 40), (40, 40), (40, 40))  # not all grid


def test_sheet_of_no_refs_is_an_error(tree: dict[str, Path], capsys: Any) -> None:
    tree["refs"].write_text("\n")
    assert run(tree, "sheet", "--out", str(tree["root"] / "x.png")) == 1
    assert "no refs" in capsys.readouterr().err


def test_full_disk_is_one_line_and_leaves_the_refs_as_they_were(
    tree: dict[str, Path], full_disk: Any
) -> None:
    """Issue 32 C4: `refs.py save` on a full disk names the file, no traceback."""
    root, before = tree["root"], tree["refs"].read_bytes()
    files = ["--refs", str(tree["refs"]), "--data", str(root / "data")]
    res = full_disk(0, "refs.py", *files, "save", "0")
    assert res.returncode == 1 and "Traceback" not in res.stderr + res.stdout
    assert res.stderr.strip() == (
        f"error: cannot write {tree['refs']}: No space left on device"
    )
    assert tree["refs"].read_bytes() == before and no_temp_files(tree)
    res = full_disk(0, "refs.py", *files, "rm", "1")
    assert res.returncode == 1 and "No space left" in res.stderr
    assert tree["refs"].read_bytes() == before and no_temp_files(tree)
