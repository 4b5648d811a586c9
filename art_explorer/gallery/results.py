"""The results grid: output/'s pictures newest first, each with where it came from
(predict, explore, editor) and whether it is a ref already.

predict's results are known by their contact sheet (output/predict-NNNNNN.png);
explore's and the editor's made through the gallery are noted in
output/.gallery-sources.jsonl; results made otherwise have no source."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from art_explorer.data import dataset
from art_explorer.scene import schema

SOURCES = ("predict", "explore", "editor")
_append_lock = threading.Lock()


def list_results(output: Path) -> list[int]:
    """Indices of output/images/NNNNNN.png, newest (highest) first."""
    return sorted(dataset.Layout(output).indices("png"), reverse=True)


def sources_path(output: Path) -> Path:
    return output / ".gallery-sources.jsonl"


def note_source(output: Path, indices: list[int], source: str) -> None:
    """Remember that these results came from `source` (explore or editor)."""
    lines = "".join(json.dumps({"n": i, "source": source}) + "\n" for i in indices)
    output.mkdir(parents=True, exist_ok=True)
    with _append_lock, open(sources_path(output), "a", encoding="utf-8") as f:
        f.write(lines)


def noted_sources(output: Path) -> dict[int, str]:
    """Result index → source from the notes (unreadable lines skipped)."""
    out: dict[int, str] = {}
    try:
        text = sources_path(output).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        try:
            obj = json.loads(line)
            if obj["source"] in SOURCES and type(obj["n"]) is int:
                out[obj["n"]] = obj["source"]
        except (ValueError, KeyError, TypeError):
            continue
    return out


def is_ref(output: Path, i: int, refs: set[str]) -> bool:
    """Whether result i's params are one of the refs (canonical JSON in `refs`).

    About 2-4 ms a result (canonical_json validates), so the grid asks for these
    flags after its first paint (ref_flags), not with the page."""
    try:
        p = json.loads(dataset.Layout(output).params_path(i).read_text("utf-8"))
        return schema.canonical_json(p) in refs
    except (OSError, ValueError, TypeError, RecursionError):
        return False


def ref_flags(output: Path, offset: int, limit: int, refs: set[str]) -> list[str]:
    """The ids of the grid page's results that are refs already."""
    ids = list_results(output)[offset : offset + limit]
    return [f"out:{i}" for i in ids if is_ref(output, i, refs)]


def page(output: Path, offset: int, limit: int) -> dict[str, Any]:
    """One page of the grid: {"total", "offset", "items": [...]}."""
    ids = list_results(output)
    noted = noted_sources(output)
    items = []
    for i in ids[offset : offset + limit]:
        source = "predict" if (output / f"predict-{i:06d}.png").is_file() else ""
        items.append(
            {
                "id": f"out:{i}",
                "n": i,
                "image": f"/files/output/images/{i:06d}.png",
                "thumb": f"/thumbs/output/images/{i:06d}.png",
                "params": f"/files/output/params/{i:06d}.json",
                "source": source or noted.get(i, ""),
            }
        )
    return {"total": len(ids), "offset": offset, "items": items}
