"""Data folders: DIR/images/NNNNNN.png + DIR/params/NNNNNN.json pairs (`Layout`) and
the schema marker DIR/schema.json that says which parameter schema they were written
for. generate.py writes them, train.py and the retrieval bank read them, predict.py
writes its results to output/ in the same layout, refs.py saves refs from them; the
one safe reader of a params file (`load_params`, `read_params`) and of a sample ID
(`sample_path`: 328, q:12, out:0)."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from art_explorer import atomic, utils
from art_explorer.scene import schema

PAIR_RE = re.compile(r"^([0-9]{6,9})\.(png|json)$")  # ASCII digits, bounded
ID_RE = re.compile(r"^(?:(q|out):)?(.+)$")
MAX_ID_DIGITS = 9


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
# Reading one sample's params, safely


class SampleError(ValueError):
    """A sample that cannot be named or read; the one-line message names the file."""


def params_from_json(data: str | bytes, where: str | Path) -> dict[str, Any]:
    """The JSON text of a params file (any spelling) → complete flat params,
    validated through the schema; SampleError naming `where` when it is not UTF-8,
    not JSON, nested too deeply, or not params."""
    try:
        return schema.validate_params(json.loads(data))
    except UnicodeDecodeError:
        raise SampleError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise SampleError(f"{where}: not JSON ({e.msg} at line {e.lineno})") from None
    except schema.ParamError as e:
        raise SampleError(f"{where}: {e.message}") from None
    except RecursionError:
        raise SampleError(f"{where}: not readable JSON (nested too deeply)") from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise SampleError(f"{where}: not readable JSON ({e})") from None


def load_params(path: str | Path) -> dict[str, Any]:
    """A params .json file → complete flat params, or SampleError saying why not
    (missing, unreadable, not JSON, not params)."""
    path = Path(path)
    if not path.exists():
        raise SampleError(f"no such sample: {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SampleError(f"{path}: cannot read it ({e.strerror})") from None
    return params_from_json(data, path)


def read_params(path: str | Path, log: Any = None) -> dict[str, Any] | None:
    """Like load_params, but a bad file is None and one line through `log` (default:
    stderr), as a truncated PNG is skipped: for readers of many samples (predict's
    retrieval bank, train) where one broken file must not stop the run."""
    try:
        return load_params(path)
    except SampleError as e:
        if log is None:
            print(f"skipped: {e}", file=sys.stderr)
        else:
            log(f"skipped: {e}")
        return None


def sample_path(sample_id: str, data: str | Path, output: str | Path) -> Path:
    """A sample ID → its params file: '328' → DATA/params/000328.json, 'q:12' →
    DATA/quality/params/000012.json, 'out:0' → OUTPUT/params/000000.json; a path
    ending in .json is taken as it is. SampleError for anything else."""
    s = sample_id.strip()
    if s.endswith(".json"):
        return Path(s)
    m = ID_RE.match(s)
    if not m:
        raise SampleError(
            f"bad ID {schema.clip_text(sample_id)}: expected a sample number (328), "
            "q:N (quality data), out:N (output/) or a path to a params .json"
        )
    try:
        n = schema.parse_uint(m.group(2), "number", MAX_ID_DIGITS)
    except schema.NumberError as e:
        raise SampleError(
            f"bad ID {schema.clip_text(sample_id)}: {e} (a sample number like 328, "
            "q:N or out:N)"
        ) from None
    folder = {None: Path(data), "q": Path(data) / "quality", "out": Path(output)}
    return Layout(folder[m.group(1)]).params_path(n)


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


def set_aside_other_schema(folder: str | Path) -> Path | None:
    """When `folder` holds data of another parameter schema (check_data_schema),
    keep it renamed FOLDER.vN (N: its version) and return that path; else None."""
    folder = Path(folder)
    try:
        check_data_schema(folder)
        return None
    except DataSchemaError:
        pass
    try:
        meta = json.loads((folder / DATA_SCHEMA_FILE).read_text())
        version = meta.get("version", 1) if isinstance(meta, dict) else 1
    except (OSError, ValueError):
        version = 1
    aside = utils.aside_path(folder, f"v{version}")
    folder.rename(aside)
    return aside


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
