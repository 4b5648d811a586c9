"""utils.py doctor (art_explorer.doctor): one line per part, FAIL on a problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import utils as utils_cli
from art_explorer.scene import rendering, schema


def doctor(tmp_path: Path, url: str, capsys: Any) -> tuple[int, list[str]]:
    argv = ["doctor", "--renderer-url", url, "--checkpoints", str(tmp_path / "ck")]
    argv += ["--data", str(tmp_path / "data"), "--refs", str(tmp_path / "refs.jsonl")]
    rc = utils_cli.main(utils_cli.parse_args(argv))
    return rc, capsys.readouterr().out.splitlines()


def test_doctor_names_each_part(tmp_path: Path, renderer_url: str, capsys: Any) -> None:
    rc, lines = doctor(tmp_path, renderer_url, capsys)
    assert rc == 0
    by_name = {line.split()[1]: line for line in lines}
    assert {"schema", "renderer", "forward", "inverse", "perceptual", "scorer"} <= set(
        by_name
    )
    assert schema.schema_hash() in by_name["schema"]
    assert by_name["renderer"].startswith("ok") and "answers" in by_name["renderer"]
    assert "train it first" in by_name["forward"]
    assert "sqrt-ms-l1" in by_name["perceptual"] or "lpips" in by_name["perceptual"]
    assert "heuristic" in by_name["scorer"] or "qwen2-vl" in by_name["scorer"]


def test_doctor_fails_on_a_broken_refs_file_and_notes_a_dead_renderer(
    tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "refs.jsonl").write_text("{oops\n")
    dead = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    rc, lines = doctor(tmp_path, dead, capsys)
    assert rc == 1
    refs = next(line for line in lines if line.split()[1] == "refs")
    assert refs.startswith("FAIL") and "line 1: not JSON" in refs
    renderer = next(line for line in lines if line.split()[1] == "renderer")
    assert renderer.startswith("note") and "does not answer" in renderer


def test_schema_hash_and_usage(capsys: Any) -> None:
    assert utils_cli.main(utils_cli.parse_args(["schema-hash"])) == 0
    assert capsys.readouterr().out.split() == [
        f"v{schema.SCHEMA_VERSION}",
        schema.schema_hash(),
    ]
    with pytest.raises(SystemExit) as e:
        utils_cli.parse_args(["frobnicate"])
    assert e.value.code == 2
