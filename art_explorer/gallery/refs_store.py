"""The gallery's view of references/: refs lines, star ratings and the scores shown
beside them. Every edit goes through art_explorer.refs.store, the one writer of
references/ (under its lock, whichever program edits), with its errors turned into
the page's 4xx answers."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from art_explorer import atomic
from art_explorer.data import dataset, refs_io
from art_explorer.gallery.errors import ApiError, Conflict
from art_explorer.refs import store
from art_explorer.scene import schema

SAMPLE_ID_RE = re.compile(r"^(?:(?:out|q):)?[0-9]{1,9}$")  # out:N, q:N, N (ASCII)
REF_ID_RE = re.compile(r"^ref:([0-9]{1,9})$")
MAX_ID_LENGTH = 40


def check_id(any_id: Any) -> str:
    """ref:N, out:N, q:N or N (ASCII digits) → the id; ApiError 400 otherwise (never a
    path the page names)."""
    if not isinstance(any_id, str):
        raise ApiError(400, "an ID is a string: ref:N, out:N, q:N or N")
    s = any_id.strip()
    if not (REF_ID_RE.match(s) or SAMPLE_ID_RE.match(s)):
        shown = json.dumps(s[:MAX_ID_LENGTH])
        raise ApiError(400, f"bad ID {shown}: ref:N, out:N, q:N or N")
    return s


class RefsStore:
    """The refs file, its ratings sidecar and the scored refs, for the gallery."""

    def __init__(self, refs: Path, scored: Path, data: Path, output: Path) -> None:
        self.path, self.scored = refs, scored
        self.data, self.output = data, output
        self.writer = store.RefsStore(refs, scored)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the refs lock (the one every program editing these refs takes)."""
        with self.writer.locked():
            yield

    @contextlib.contextmanager
    def edit(self) -> Iterator[None]:
        """The writer's refusals as the page's answers: 409 for a conflict, 400 else."""
        try:
            yield
        except store.RefConflict as e:
            raise Conflict(str(e)) from None
        except store.RefEditError as e:
            raise ApiError(400, str(e)) from None

    # -- reading

    def numbered(self) -> dict[int, dict[str, Any]]:
        """Line number → flat params of every ref."""
        return dict(refs_io.load_refs_numbered(self.path))

    def params_of(self, any_id: Any) -> dict[str, Any]:
        """ref:N (refs line), out:N, q:N, N (data sample) → complete flat params."""
        s = check_id(any_id)
        m = REF_ID_RE.match(s)
        if m:
            p = self.numbered().get(int(m.group(1)))
            if p is None:
                raise ApiError(404, f"{self.path} has no ref on line {m.group(1)}")
            return p
        return self.read_sample(self.sample_path(s))

    def sample_path(self, sample_id: str) -> Path:
        """out:N, q:N or N → its params file."""
        try:
            return dataset.sample_path(check_id(sample_id), self.data, self.output)
        except dataset.SampleError as e:
            raise ApiError(404, str(e)) from None

    @staticmethod
    def read_sample(path: Path) -> dict[str, Any]:
        """A sample's params file → complete flat params (404 / 400 with the reason)."""
        try:
            return dataset.load_params(path)
        except dataset.SampleError as e:
            raise ApiError(400, str(e)) from None

    def listing(self) -> list[dict[str, Any]]:
        """Every ref: line, key, params, describe, stars, weight, score, scorer."""
        ratings = refs_io.load_ratings(self.path)
        scores = self.scores()
        out = []
        for n, p in refs_io.load_refs_numbered(self.path):
            key = refs_io.ref_key(p)
            score, scorer = scores.get(key, (None, None))
            out.append(
                {
                    "line": n,
                    "key": key,
                    "params": p,
                    "describe": schema.describe(p),
                    "stars": ratings.get(key),
                    "weight": refs_io.rating_weight(ratings.get(key)),
                    "score": score,
                    "scorer": scorer,
                }
            )
        return out

    def scores(self) -> dict[str, tuple[float, str]]:
        """ref_key → (score, scorer) from refs-scored.jsonl (empty when unreadable)."""
        out: dict[str, tuple[float, str]] = {}
        try:
            lines = self.scored.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return out
        for line in lines:
            try:
                obj = json.loads(line)
                key = refs_io.ref_key(obj["params"])
                out[key] = (float(obj["score"]), str(obj.get("scorer", "")))
            except (ValueError, KeyError, TypeError, RecursionError, schema.ParamError):
                continue
        return out

    def breeding_files(self, folder: Path) -> tuple[Path, Path, str]:
        """(refs, scored refs, note) for explore to breed from what the page shows as
        the refs: refs.jsonl as curated now. The scores are used only when every
        current ref has one (written to `folder`, removed refs left out); otherwise
        breeding goes by the refs and their stars, and the note says why."""
        refs = self.numbered()
        scores = self.scores()
        keys = [refs_io.ref_key(p) for p in refs.values()]
        none = folder / "no-scores.jsonl"
        if not refs or not scores:
            return self.path, none, "the refs (by rating: no scores)"
        missing = [k for k in keys if k not in scores]
        if missing:
            note = f"the refs (by rating: {len(missing)} of {len(keys)} unscored)"
            return self.path, none, note
        scored = folder / "refs-scored.jsonl"
        lines = [
            json.dumps({"params": schema.to_prefixed(p), "score": scores[k][0]})
            for k, p in zip(keys, refs.values(), strict=True)
        ]
        scored.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.path, scored, "the refs (by score × rating)"

    # -- editing

    def line_of(self, params: dict[str, Any]) -> int | None:
        """The refs line holding these params, if any."""
        key = schema.canonical_json(params)
        for n, p in refs_io.load_refs_numbered(self.path):
            if schema.canonical_json(p) == key:
                return n
        return None

    def save(self, source: Path) -> int:
        """Append the params at `source` (refs.py save); returns the line number."""
        params = self.read_sample(source)
        with self.edit():
            return self.writer.save(params, source=str(source))

    def save_params(self, params: dict[str, Any], png: bytes) -> tuple[int, int]:
        """Edited params (from the editor) → a new result in output/ and a new refs
        line: (result index, line). Params that are already a ref are refused before
        anything is written (Conflict), so an unchanged Save leaves no files."""
        with self.locked(), self.edit():
            line = self.line_of(params)
            if line is not None:
                raise Conflict(f"these params are already a ref: line {line}")
            layout = dataset.Layout(self.output)
            idx = layout.next_index()
            atomic.write_json(layout.params_path(idx), params)
            atomic.atomic_write_bytes(layout.image_path(idx), png)
            return idx, self.writer.save(params, source=f"out:{idx}")

    def remove(self, line: int, key: str) -> None:
        """Remove line `line` if it still holds the ref `key` (another tab may have
        moved it): refs.py rm, atomic."""
        with self.edit():
            self.writer.remove(line, key)

    def restore(self, params: dict[str, Any], line: int) -> int:
        """Put a removed ref back at `line` (the remove's undo; later lines move down
        by one); returns the line it went to. Refused when it is a ref again."""
        with self.locked():
            here = self.line_of(params)
            if here is not None:
                raise Conflict(f"these params are already a ref: line {here}")
            lines = self.path.read_bytes().splitlines() if self.path.exists() else []
            at = max(1, min(line, len(lines) + 1))
            lines.insert(at - 1, store.ref_line(params).encode("utf-8"))
            atomic.atomic_write_bytes(self.path, b"".join(x + b"\n" for x in lines))
            return at

    def rate(self, key: str, stars: int) -> None:
        """Set (1-5) or clear (0) the stars of ref `key`."""
        with self.edit():
            self.writer.rate(key, stars)
