"""The one writer of references/: every edit of refs.jsonl, its ratings sidecar and
the scored refs, under one file lock, whichever program makes it.

refs.py (the command line), the gallery and score_refs.py all edit through a
`RefsStore`. Each edit is a read-modify-write of the whole file held under
`fcntl.flock` on `.refs.jsonl.lock` beside the refs file, and ends in an atomic
replace (a temp file renamed over the old one), so two programs saving at once both
land and a removed ref cannot come back from a stale copy; a reader never sees half a
file. flock locks belong to an open file, so two threads of one process exclude each
other as two processes do; `locked()` may be nested within one thread of one store.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from art_explorer import atomic
from art_explorer.data import refs_io
from art_explorer.scene import schema


class RefEditError(Exception):
    """An edit of the refs that cannot be done (a duplicate, no such line); the
    message says what."""


class RefConflict(RefEditError):
    """The edit no longer matches the file: another program changed it first."""


def lock_path(refs: str | Path) -> Path:
    """references/refs.jsonl → references/.refs.jsonl.lock (the lock every writer
    takes)."""
    refs = Path(refs)
    return refs.with_name(f".{refs.name}.lock")


def ref_line(params: dict[str, Any]) -> str:
    """Params (any spelling) → one refs.jsonl line in the canonical spelling: what
    `save` writes and `canonicalize` rewrites to."""
    return json.dumps(schema.to_prefixed(params), separators=(", ", ": "))


def describe_line(raw: bytes) -> str:
    """A refs line as `refs.py list` describes it, or a note that it is unreadable."""
    try:
        return schema.describe(schema.validate_params(json.loads(raw)))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, not params
        return f"unreadable line {raw[:60].decode('utf-8', 'replace')!r}"


class RefsStore:
    """references/refs.jsonl and its sidecars (ratings.json, refs-scored.jsonl):
    every edit locked, read-modify-write, atomically replaced."""

    def __init__(self, path: str | Path, scored: str | Path | None = None) -> None:
        self.path = Path(path)
        self.scored = (
            Path(scored) if scored else self.path.with_name("refs-scored.jsonl")
        )
        self._thread_lock = threading.RLock()
        self._depth = 0  # nesting of locked() in the thread holding _thread_lock

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the refs lock (every thread and process editing these refs waits)."""
        with self._thread_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
            finally:
                os.close(fd)  # closing releases the flock

    def _lines(self) -> list[bytes]:
        """The refs file's lines as bytes, split as refs_io numbers them."""
        try:
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as e:
            raise refs_io.RefsError(
                f"{self.path}: cannot read it ({e.strerror})"
            ) from None
        return data.splitlines()

    def save(self, params: dict[str, Any], source: str = "") -> int:
        """Append `params` (any spelling) as a new last line; returns its 1-based
        line number. RefEditError when the same params are already a ref; RefsError
        when a line of the file is broken (fix it with `refs.py rm`)."""
        params = schema.validate_params(params)
        key = schema.canonical_json(params)
        with self.locked():
            for n, existing in refs_io.load_refs_numbered(self.path):
                if schema.canonical_json(existing) == key:
                    what = source or schema.describe(params)
                    raise RefEditError(f"{what} is already a ref: {self.path} line {n}")
            text = self.path.read_bytes() if self.path.exists() else b""
            if text and not text.endswith((b"\n", b"\r")):
                text += b"\n"
            text += ref_line(params).encode("utf-8") + b"\n"
            atomic.atomic_write_bytes(self.path, text)
            return len(text.splitlines())

    def remove(self, line: int, key: str | None = None) -> str:
        """Remove line `line` (1-based; a broken line can be removed too, which is
        how one fixes it); returns what it held, described. With `key`, only if the
        line still holds that ref (RefConflict otherwise)."""
        with self.locked():
            if key is not None:
                here = dict(refs_io.load_refs_numbered(self.path)).get(line)
                if here is None or refs_io.ref_key(here) != key:
                    raise RefConflict(
                        f"line {line} of {self.path} is no longer that ref (changed "
                        "by another program or tab?)"
                    )
            lines = self._lines()
            if not 1 <= line <= len(lines):
                raise RefEditError(
                    f"{self.path} has no line {line} (it has {len(lines)} lines; "
                    "`python refs.py list` numbers them)"
                )
            removed = lines[line - 1]
            if not removed.strip():
                raise RefEditError(
                    f"{self.path} line {line} is blank: nothing to remove"
                )
            rest = lines[: line - 1] + lines[line:]
            atomic.atomic_write_bytes(self.path, b"".join(x + b"\n" for x in rest))
            return describe_line(removed)

    def rate(self, key: str, stars: int) -> None:
        """Set (1-5) or clear (0) the stars of the ref `key` in ratings.json; the
        ratings of refs that are gone are dropped on the way."""
        if type(stars) is not int or not 0 <= stars <= 5:
            raise RefEditError("stars must be 0 (none) to 5")
        with self.locked():
            keys = {refs_io.ref_key(p) for p in refs_io.load_refs(self.path)}
            if key not in keys:
                raise RefConflict("no such ref (removed by another program or tab?)")
            ratings = {
                k: v for k, v in refs_io.load_ratings(self.path).items() if k in keys
            }
            if stars:
                ratings[key] = stars
            else:
                ratings.pop(key, None)
            atomic.write_json(
                refs_io.ratings_path(self.path), {"version": 1, "ratings": ratings}
            )

    def canonicalize(self) -> tuple[int, int]:
        """Rewrite every ref line with `ref_line` (blank lines kept, so the line
        numbers stay); a broken line stops it before anything is written. Returns
        (lines changed, refs)."""
        with self.locked():
            numbered = dict(refs_io.load_refs_numbered(self.path))  # RefsError
            if not numbered:
                return 0, 0
            lines = self.path.read_bytes().removeprefix(codecs.BOM_UTF8).splitlines()
            out = [
                ref_line(numbered[n]) if n in numbered else ""
                for n in range(1, len(lines) + 1)
            ]
            changed = sum(
                new.encode() != old for new, old in zip(out, lines, strict=True)
            )
            if changed:
                atomic.atomic_write_text(self.path, "".join(x + "\n" for x in out))
            return changed, len(numbered)

    def write_scored(self, text: str) -> None:
        """Replace refs-scored.jsonl (score_refs.py) under the lock."""
        with self.locked():
            atomic.atomic_write_text(self.scored, text)
