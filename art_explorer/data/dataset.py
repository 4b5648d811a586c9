"""Data folders: DIR/images/NNNNNN.png + DIR/params/NNNNNN.json pairs (`Layout`) and
the schema marker DIR/schema.json that says which parameter schema they were written
for. generate.py writes them, train.py and the retrieval bank read them, predict.py
writes its results to output/ in the same layout, refs.py saves refs from them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from art_explorer import atomic
from art_explorer.scene import schema

PAIR_RE = re.compile(r"^([0-9]{6,9})\.(png|json)$")  # ASCII digits, bounded


@dataclass(frozen=True)
class Layout:
    """A data folder: DIR/images/NNNNNN.png + DIR/params/NNNNNN.json (flat params),
    numbered from 0, six to nine digits."""

    folder: Path

    @property
    def images(self) -> Path:
        return self.folder / "images"

    @property
    def params(self) -> Path:
        return self.folder / "params"

    def image_path(self, i: int) -> Path:
        return self.images / f"{i:06d}.png"

    def params_path(self, i: int) -> Path:
        return self.params / f"{i:06d}.json"

    def indices(self, kind: str) -> set[int]:
        """The numbers of the files of one kind: "png" (images/) or "json" (params/)."""
        d = self.images if kind == "png" else self.params
        if not d.is_dir():
            return set()
        out = set()
        for f in d.iterdir():
            m = PAIR_RE.match(f.name)
            if m and m.group(2) == kind:
                out.add(int(m.group(1)))
        return out

    def next_index(self) -> int:
        """1 + the highest number in images/ or params/ (0 when both are empty)."""
        return max(self.indices("png") | self.indices("json"), default=-1) + 1

    def pair_stems(self) -> list[str]:
        """Stems NNNNNN with both an image and params, sorted."""
        imgs = {p.stem for p in self.images.glob("*.png")}
        pars = {p.stem for p in self.params.glob("*.json")}
        return sorted(imgs & pars)

    def pairs(self) -> list[tuple[Path, Path]]:
        """(image, params) paths of every complete pair, sorted."""
        return [
            (self.images / f"{s}.png", self.params / f"{s}.json")
            for s in self.pair_stems()
        ]

    def count_pairs(self) -> int:
        """How many complete (image, params) pairs the folder holds."""
        return len(self.indices("png") & self.indices("json"))


# ----------------------------------------------------------------------------------
# Which schema a folder's params were written for

DATA_SCHEMA_FILE = "schema.json"  # DIR/schema.json beside DIR/images and DIR/params


class DataSchemaError(ValueError):
    """A data folder written for another parameter schema; the message says to
    regenerate it."""


def write_data_schema(folder: str | Path) -> None:
    """Record this code's schema in a data folder (generate.py, when it writes)."""
    atomic.write_json(
        Path(folder) / DATA_SCHEMA_FILE,
        {"version": schema.SCHEMA_VERSION, "hash": schema.schema_hash()},
    )


def check_data_schema(folder: str | Path) -> None:
    """Raise DataSchemaError when a data folder's params were written for another
    schema: its DIR/schema.json names another one, or (folders from before the
    marker) a params file lacks keys this schema writes. An empty folder passes."""
    folder = Path(folder)
    marker = folder / DATA_SCHEMA_FILE
    if marker.exists():
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError):
            meta = {}
        if not isinstance(meta, dict):
            meta = {}
        if (
            meta.get("version") == schema.SCHEMA_VERSION
            and meta.get("hash") == schema.schema_hash()
        ):
            return
        found = f"v{meta.get('version')} ({meta.get('hash')})"
    else:
        first = next(iter(sorted((folder / "params").glob("*.json"))), None)
        if first is None:
            return
        try:
            keys = set(json.loads(first.read_text()))
        except (OSError, ValueError):
            return  # unreadable pairs are skipped one by one
        if {p.key for p in schema.SCHEMA} <= keys:
            return
        found = (
            "v1 (params without "
            + ", ".join(sorted({p.key for p in schema.SCHEMA} - keys)[:3])
            + ")"
        )
    raise DataSchemaError(
        f"{folder}: data written for parameter schema {found}; this code has "
        f"v{schema.SCHEMA_VERSION} ({schema.schema_hash()}), whose params mean other pictures. "
        f"Regenerate it: move or delete {folder}, then run `make generate`"
    )
