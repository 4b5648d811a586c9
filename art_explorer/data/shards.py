"""Sharded datasets for large rounds: tar shards of PNG + JSON (shards.py converts).

The folder layout (DIR/images/NNNNNN.png + DIR/params/NNNNNN.json) stays the format
of small rounds and of `save-ref ID=`; a million files in two folders is where it
stops being practical, and shards take over. Layout of a shard folder:

    DIR/shard-000000.tar   up to --per-shard (1000) samples, each NNNNNN.png (the
    DIR/shard-000001.tar   render) + NNNNNN.json (flat params, as in params/)
    DIR/index.json         {"format": "webdataset", "samples": N, "shards": [
                            {"name", "count", "first", "last"}, …]}

This is WebDataset's convention (files grouped by the key before the first dot), so
`webdataset.WebDataset("DIR/shard-{000000..000009}.tar")` reads them too; this module
needs only the standard library's tarfile. A shard is written as shard-K.tar.tmp and
renamed when complete, and index.json is rewritten atomically after each shard, so
a folder only ever lists complete shards; a killed writer loses at most the shard in
progress (its samples are drawn again on resume: generate.py seeds sample i by i).
A shard damaged later (truncated by a full disk or a copy cut short) is read up to
the damage: its good samples are kept, and the reader says which shard is broken
(`ShardError`, `Samples.damaged`, `verify`).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from art_explorer import atomic

INDEX = "index.json"
FORMAT = "webdataset"
PER_SHARD = 1000
SHARD_RE = re.compile(r"^shard-(\d{6,})\.tar$")
KEY_RE = re.compile(r"^(\d{6,})\.(png|json)$")


def params_bytes(params: dict[str, Any]) -> bytes:
    """Flat params as the JSON bytes of a params/NNNNNN.json file (atomic.write_json)."""
    return (json.dumps(params, indent=1) + "\n").encode("utf-8")


def is_shard_folder(folder: str | Path) -> bool:
    """True when `folder` holds an index.json or shard-*.tar files."""
    folder = Path(folder)
    if (folder / INDEX).is_file():
        return True
    return folder.is_dir() and any(SHARD_RE.match(p.name) for p in folder.iterdir())


class ShardError(ValueError):
    """A shard that cannot be read to its end; the message names it and says how
    many samples came before the damage."""


def _damage(path: Path, good: int, e: BaseException) -> ShardError:
    why = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ShardError(
        f"{path}: damaged after {good} samples ({why}); truncated? "
        "the samples before the damage are kept"
    )


_TAR_ERRORS = (tarfile.TarError, EOFError, OSError)


def _scan_shard(path: Path, errors: list[str] | None = None) -> dict[str, Any]:
    """Index entry of one shard read from its members (count, first and last key).
    A damaged shard counts the samples before the damage; its message goes to
    `errors` (None: ShardError)."""
    keys: set[int] = set()
    try:
        size = path.stat().st_size
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                k = KEY_RE.match(m.name)
                if k and k.group(2) == "png":
                    if m.offset_data + m.size > size:
                        raise tarfile.ReadError("unexpected end of data")
                    keys.add(int(k.group(1)))
    except _TAR_ERRORS as e:
        if errors is None:
            raise _damage(path, len(keys), e) from None
        errors.append(str(_damage(path, len(keys), e)))
    return {
        "name": path.name,
        "count": len(keys),
        "first": min(keys) if keys else -1,
        "last": max(keys) if keys else -1,
    }


def read_index(folder: str | Path) -> dict[str, Any]:
    """index.json of a shard folder; rebuilt from the shards themselves when it is
    missing, unreadable or lists other files than the complete shards present."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.glob("shard-*.tar") if SHARD_RE.match(p.name))
    try:
        index = json.loads((folder / INDEX).read_text())
        if [s["name"] for s in index["shards"]] == names:
            return index
    except (OSError, ValueError, KeyError, TypeError):
        pass
    shards = [_scan_shard(folder / n, []) for n in names]  # damaged: what is good
    return {
        "format": FORMAT,
        "samples": sum(s["count"] for s in shards),
        "shards": shards,
    }


def verify(folder: str | Path) -> tuple[dict[str, Any], list[str]]:
    """(the index rebuilt from what each shard really holds, one message per damaged
    shard): reads every shard's member headers, not its pictures."""
    folder = Path(folder)
    errors: list[str] = []
    shards = [
        _scan_shard(folder / s["name"], errors) for s in read_index(folder)["shards"]
    ]
    index = {
        "format": FORMAT,
        "samples": sum(s["count"] for s in shards),
        "shards": shards,
    }
    return index, errors


def write_index(folder: Path, shards: list[dict[str, Any]]) -> None:
    index = {
        "format": FORMAT,
        "samples": sum(s["count"] for s in shards),
        "shards": shards,
    }
    atomic.write_json(folder / INDEX, index)


class ShardWriter:
    """Appends samples to a shard folder, `per_shard` to a tar; use as a context
    manager (or call close) so that the last, partial shard is kept.

    Opening removes *.tar.tmp files left by a killed writer (tmp_removed says how
    many); next_index is one past the highest sample index already stored."""

    def __init__(self, folder: str | Path, per_shard: int = PER_SHARD) -> None:
        if per_shard < 1:
            raise ValueError("per_shard must be >= 1")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.per_shard = per_shard
        self.tmp_removed = 0
        for p in self.folder.glob("*.tmp"):
            p.unlink(missing_ok=True)
            self.tmp_removed += 1
        self.shards: list[dict[str, Any]] = read_index(self.folder)["shards"]
        numbers = [int(SHARD_RE.match(s["name"]).group(1)) for s in self.shards]  # type: ignore[union-attr]
        self.next_shard = max(numbers) + 1 if numbers else 0
        lasts = [s["last"] for s in self.shards if s["count"]]
        self.next_index = max(lasts) + 1 if lasts else 0
        self._tar: tarfile.TarFile | None = None
        self._keys: list[int] = []
        self._broken = False

    @property
    def _tmp_path(self) -> Path:
        return self.folder / f"shard-{self.next_shard:06d}.tar.tmp"

    def add(self, index: int, params: dict[str, Any], png: bytes) -> None:
        """Store sample `index`: NNNNNN.json (flat params) then NNNNNN.png."""
        self.add_bytes(index, params_bytes(params), png)

    def add_bytes(self, index: int, params_json: bytes, png: bytes) -> None:
        if self._tar is None:
            self._tar = tarfile.open(self._tmp_path, "w")  # noqa: SIM115 (flush closes)
            self._keys, self._broken = [], False
        now = time.time()
        try:
            for ext, data in (("json", params_json), ("png", png)):
                info = tarfile.TarInfo(f"{index:06d}.{ext}")
                info.size, info.mtime, info.mode = len(data), now, 0o644
                self._tar.addfile(info, io.BytesIO(data))
        except BaseException:
            self._broken = True  # a half-written member: flush drops this shard
            raise
        self._keys.append(index)
        self.next_index = max(self.next_index, index + 1)
        if len(self._keys) >= self.per_shard:
            self.flush()

    def flush(self) -> None:
        """Close the shard in progress (if it holds samples), rename it into place
        and rewrite index.json."""
        if self._tar is None:
            return
        tar, self._tar = self._tar, None
        tar.close()
        tmp = self._tmp_path
        if not self._keys or self._broken:
            # an interrupted add (a second Ctrl-C): the samples of this shard are
            # drawn again by the next run, which starts after the last listed one
            tmp.unlink(missing_ok=True)
            self.next_index = max((s["last"] + 1 for s in self.shards), default=0)
            self._keys = []
            return
        final = tmp.with_suffix("")  # shard-K.tar
        with open(tmp, "rb+") as f:  # durable before it is listed
            os.fsync(f.fileno())
        tmp.replace(final)
        self.shards.append(
            {
                "name": final.name,
                "count": len(self._keys),
                "first": min(self._keys),
                "last": max(self._keys),
            }
        )
        write_index(self.folder, self.shards)
        self.next_shard += 1
        self._keys = []

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_shard(path: Path) -> Iterator[tuple[str, bytes, bytes]]:
    """(key NNNNNN, params JSON bytes, PNG bytes) of one shard, in stored order. A
    damaged shard yields the samples before the damage, then raises ShardError."""
    pending: dict[str, dict[str, bytes]] = {}
    good = 0
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 (closed below; yields between)
    except _TAR_ERRORS as e:
        raise _damage(path, 0, e) from None
    with tar:
        while True:
            try:
                m = tar.next()
                if m is None:
                    return
                k = KEY_RE.match(m.name)
                f = tar.extractfile(m) if k else None
                if k is None or f is None:
                    continue
                data = f.read()
                if len(data) != m.size:
                    raise tarfile.ReadError("unexpected end of data")
            except _TAR_ERRORS as e:
                raise _damage(path, good, e) from None
            got = pending.setdefault(k.group(1), {})
            got[k.group(2)] = data
            if len(got) == 2:
                del pending[k.group(1)]
                good += 1
                yield k.group(1), got["json"], got["png"]


@dataclass
class Samples:
    """The (key, params JSON bytes, PNG bytes) of a dataset in either layout: a
    folder with images/ + params/ or a shard folder. rank/world: read only every
    world-th shard from the rank-th (the stream one training process of several
    would read); folders are split by sample. A damaged shard gives the samples
    before the damage; its message goes to `log` (None: stderr) and `damaged`."""

    path: Path
    rank: int = 0
    world: int = 1
    log: Any = None
    damaged: list[str] = field(default_factory=list)

    @property
    def sharded(self) -> bool:
        return is_shard_folder(self.path)

    def __len__(self) -> int:
        if self.sharded:
            shards = read_index(self.path)["shards"][self.rank :: self.world]
            return sum(s["count"] for s in shards)
        return len(_folder_keys(self.path)[self.rank :: self.world])

    def __iter__(self) -> Iterator[tuple[str, bytes, bytes]]:
        if self.sharded:
            for s in read_index(self.path)["shards"][self.rank :: self.world]:
                try:
                    yield from iter_shard(self.path / s["name"])
                except ShardError as e:
                    self.damaged.append(str(e))
                    if self.log is None:
                        print(f"warning: {e}", file=sys.stderr)
                    else:
                        self.log(f"warning: {e}")
            return
        for key in _folder_keys(self.path)[self.rank :: self.world]:
            yield (
                key,
                (self.path / "params" / f"{key}.json").read_bytes(),
                (self.path / "images" / f"{key}.png").read_bytes(),
            )


def _folder_keys(folder: Path) -> list[str]:
    """Keys NNNNNN with both images/NNNNNN.png and params/NNNNNN.json, sorted."""
    imgs = {p.stem for p in (folder / "images").glob("*.png")}
    pars = {p.stem for p in (folder / "params").glob("*.json")}
    return sorted(k for k in imgs & pars if k.isdigit())


# ----------------------------------------------------------------------------------
# The converter


def pack(src: Path, dst: Path, per_shard: int = PER_SHARD, log: Any = print) -> int:
    """Folder layout → shard folder (appending after what dst holds); returns the
    samples written. The params JSON goes in byte for byte."""
    if not (src / "images").is_dir():
        raise SystemExit(f"{src} has no images/ and params/ (a generate.py folder)")
    n = 0
    with ShardWriter(dst, per_shard) as w:
        for key, js, png in Samples(src):
            if int(key) < w.next_index:
                raise SystemExit(
                    f"{dst} already holds samples up to {w.next_index - 1:06d}; "
                    f"{src}/images/{key}.png would not come after them"
                )
            w.add_bytes(int(key), js, png)
            n += 1
    log(f"packed {n} samples from {src} into {dst} ({len(w.shards)} shards in all)")
    return n


def unpack(src: Path, dst: Path, log: Any = print) -> int:
    """Shard folder → folder layout (dst/images, dst/params); returns the samples
    written. Refuses to overwrite a pair that dst already holds."""
    if not is_shard_folder(src):
        raise SystemExit(f"{src} holds no shards (shard-NNNNNN.tar + {INDEX})")
    n = 0
    samples = Samples(src, log=log)
    for key, js, png in samples:
        img = dst / "images" / f"{key}.png"
        if img.exists():
            raise SystemExit(f"{img} exists; unpack into an empty folder")
        atomic.atomic_write_bytes(dst / "params" / f"{key}.json", js)
        atomic.atomic_write_bytes(img, png)
        n += 1
    broken = (
        f" ({len(samples.damaged)} damaged shards, see above)"
        if samples.damaged
        else ""
    )
    log(f"unpacked {n} samples from {src} into {dst}/images + {dst}/params{broken}")
    return n
