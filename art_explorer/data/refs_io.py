"""Reading references/refs.jsonl (plain or Leva-prefixed lines, numbered, with clear
errors naming the line), the scored refs and the gallery's star ratings. Every write
of these files goes through art_explorer.refs.store (one lock for all programs)."""

from __future__ import annotations

import codecs
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from art_explorer.scene import schema


class RefsError(ValueError):
    """A refs file line that cannot be read: the message names the file and line."""


def load_refs(path: str | Path) -> list[dict[str, Any]]:
    """refs.jsonl (one Leva-prefixed object a line; blank lines skipped) → flat params.

    A line that is not JSON or not valid params raises RefsError naming file and line.
    A missing file is an empty list."""
    return [p for _, p in load_refs_numbered(path)]


def load_refs_numbered(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """Like load_refs, with each ref's 1-based line number."""
    path = Path(path)
    out: list[tuple[int, dict[str, Any]]] = []
    for n, obj in _jsonl(path):
        try:
            out.append((n, schema.validate_params(obj)))
        except schema.ParamError as e:
            raise RefsError(f"{path} line {n}: {e.message}") from None
    return out


def read_refs_lines(path: str | Path) -> dict[int, Any]:
    """{1-based line number: the line's JSON as written} of a refs file (blank lines
    left out; RefsError as load_refs). refs-scored.jsonl stores these, as the
    original pipeline does, so that its score map keys on the same objects."""
    return dict(_jsonl(Path(path)))


def load_scored_refs(path: str | Path) -> list[tuple[dict[str, Any], float]]:
    """refs-scored.jsonl lines {"params": ..., "score": s} → [(flat params, score)].

    params is the ref line as written (the original pipeline's layout: prefixed);
    files from before hold flat params, read just as well (any spelling). A line
    that is not such an object raises RefsError naming file and line; a missing file
    is an empty list."""
    path = Path(path)
    out: list[tuple[dict[str, Any], float]] = []
    for n, obj in _jsonl(path):
        score = obj.get("score") if isinstance(obj, dict) else None
        if (
            not isinstance(obj, dict)
            or "params" not in obj
            or isinstance(score, bool)
            or not isinstance(score, (int, float))
            or not math.isfinite(score)
        ):
            raise RefsError(
                f'{path} line {n}: expected {{"params": {{...}}, "score": a number}}'
            )
        try:
            out.append((schema.validate_params(obj["params"]), float(score)))
        except schema.ParamError as e:
            raise RefsError(f"{path} line {n}: {e.message}") from None
    return out


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, decoded JSON) of each non-blank line of a JSON-lines
    file; nothing for a missing file. RefsError names the file, and the line, when
    the file cannot be read, a line is not UTF-8 or not JSON. Lines end at LF, CR or
    CRLF only (a JSON string may hold U+2028), as `refs.py rm` counts them."""
    if not path.exists():
        return
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RefsError(f"{path}: cannot read it ({e.strerror})") from None
    lines = data.removeprefix(codecs.BOM_UTF8).splitlines()
    for n, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RefsError(
                f"{path} line {n}: not UTF-8 text (byte {e.start + 1})"
            ) from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise RefsError(
                f"{path} line {n}: not JSON ({e.msg} at column {e.colno})"
            ) from None
        except RecursionError:
            raise RefsError(f"{path} line {n}: not JSON (nested too deeply)") from None
        except ValueError as e:  # an integer of more than 4300 digits
            raise RefsError(f"{path} line {n}: not readable JSON ({e})") from None
        yield n, obj


# Ratings: the stars a person gives refs in the gallery (RefsStore.rate), kept in a
# sidecar beside the refs file so that refs.jsonl stays the source of truth and keeps
# its format. Keyed by ref_key(params); a rating whose ref is gone is ignored.

RATINGS_NAME = "ratings.json"


def ref_key(params: dict[str, Any]) -> str:
    """Short stable key of a ref: sha256 of canonical_json, 16 hex digits."""
    return hashlib.sha256(schema.canonical_json(params).encode()).hexdigest()[:16]


def ratings_path(refs: str | Path) -> Path:
    """references/refs.jsonl → references/ratings.json."""
    return Path(refs).with_name(RATINGS_NAME)


def load_ratings(refs: str | Path) -> dict[str, int]:
    """{ref_key: stars 1-5} from the ratings file beside `refs` ({} when there is
    none); RefsError naming the file when it is not such an object."""
    path = ratings_path(refs)
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RefsError(f"{path}: not a ratings file ({e})") from None
    ratings = obj.get("ratings") if isinstance(obj, dict) else None
    if not isinstance(ratings, dict) or not all(
        type(v) is int and 1 <= v <= 5 for v in ratings.values()
    ):
        raise RefsError(f'{path}: expected {{"ratings": {{key: stars 1-5}}}}')
    return ratings


def rating_weight(stars: int | None) -> float:
    """A rating as a breeding-weight factor, 2 ** (stars - 3): 1 star 0.25, 3 stars
    (or unrated) 1, 5 stars 4."""
    return 1.0 if stars is None else 2.0 ** (stars - 3)


def rated_weights(
    parents: Sequence[dict[str, Any]],
    refs: str | Path,
    weights: Sequence[float] | None = None,
) -> list[float] | None:
    """Parent weights for breed: `weights` (scores; None = 1 each) times each
    parent's rating factor from the ratings beside `refs`. None (uniform) when
    neither weights nor any rating apply."""
    ratings = load_ratings(refs)
    stars = [ratings.get(ref_key(p)) for p in parents] if ratings else []
    if weights is None and not any(s is not None for s in stars):
        return None
    base = list(weights) if weights is not None else [1.0] * len(parents)
    if not stars:
        return base
    return [w * rating_weight(s) for w, s in zip(base, stars, strict=True)]
