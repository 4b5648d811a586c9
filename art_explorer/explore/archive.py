"""The persistent archive: one elite per descriptor cell, kept in output/archive/.

A pyribs GridArchive (MAP-Elites: a picture enters a cell when it scores above the
cell's elite, and above MIN_SCORE at all, so blank and blown-out renders never do)
saved without pickle, each file written atomically (a temp file, fsync, rename):

- archive.npz: the state, everything a restart needs: the elites' solution vectors,
  scores, descriptors and ids, the id and render counters, the growth history, the
  schema hash and the axes (as JSON text). Loading re-adds the elites to a fresh
  GridArchive, which rebuilds it exactly.
- archive.json: the same counters and a summary, for people and the gallery.
- elites.jsonl: one line per elite: {"id", "cell", "score", "measures", "params"}
  (params prefixed, as refs.jsonl writes them).
- thumbs/ID.png: the elite's render at the explore size; map.png and growth.png:
  the pictures of maps.draw_map and maps.draw_growth, redrawn after each call.

A kill at any moment leaves the last archive.npz whole: at most the batch in flight
is lost. An archive made under another schema or other axes is refused with a
message naming the folder to move away.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from art_explorer import atomic
from art_explorer.explore import descriptors, solution
from art_explorer.scene import schema

MIN_SCORE = 0.05  # an elite scores above this (the scorer's gate sends junk to ~0)
FORMAT = 1  # archive.npz layout version


class ArchiveError(ValueError):
    """An archive that cannot be used here (other schema, other axes, unreadable)."""


class ArchiveRedrawn(ArchiveError):
    """An archive made under an older schema version with these same params: its
    elites decode here, but their pictures (scores, cells) are drawn otherwise now."""

    def __init__(self, message: str, version: int, solutions: np.ndarray) -> None:
        super().__init__(message)
        self.version, self.solutions = version, solutions


@dataclass
class Archive:
    """The grid of elites and the counters that go with it.

    grid: the pyribs GridArchive; next_id: the id the next elite gets; renders: real
    renders evaluated so far (refs included); history: one (renders, cells, QD-score)
    row per save, how the archive grew."""

    folder: Path
    grid: Any
    next_id: int = 0
    renders: int = 0
    history: list[tuple[int, int, float]] = field(default_factory=list)

    # ------------------------------------------------------------------------------
    # Making, loading, saving

    @classmethod
    def empty(cls, folder: str | Path, seed: int = 0) -> Archive:
        return cls(Path(folder), new_grid(seed))

    @classmethod
    def open(cls, folder: str | Path, seed: int = 0) -> Archive:
        """The archive in `folder` (archive.npz), or a new empty one when there is
        none. ArchiveError when it was made under another schema or other axes."""
        path = Path(folder) / "archive.npz"
        if not path.exists():
            return cls.empty(folder, seed)
        try:
            with np.load(path, allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as e:
            raise ArchiveError(f"{path}: unreadable archive ({e})") from None
        check_compatible(path, state)
        arch = cls(Path(folder), new_grid(seed))
        if len(state["objective"]):
            arch.grid.add(
                state["solution"],
                state["objective"],
                state["measures"],
                elite_id=state["elite_id"],
            )
        arch.next_id = int(state["next_id"])
        arch.renders = int(state["renders"])
        arch.history = [(int(r), int(c), float(q)) for r, c, q in state["history"]]
        return arch

    def save(self) -> None:
        """archive.npz (the state), then archive.json and elites.jsonl, each atomic;
        thumbnails of elites that were replaced are removed last."""
        d = self.elites()
        stats = self.grid.stats
        self.history.append(
            (self.renders, int(stats.num_elites), float(stats.qd_score))
        )
        buf = io.BytesIO()
        np.savez(
            buf,
            format=np.array(FORMAT),
            schema_hash=np.array(schema.schema_hash()),
            axes=np.array(json.dumps(descriptors.axes_json())),
            solution=d["solution"],
            objective=d["objective"],
            measures=d["measures"],
            elite_id=d["elite_id"],
            next_id=np.array(self.next_id),
            renders=np.array(self.renders),
            history=np.array(self.history, np.float64).reshape(-1, 3),
        )
        atomic.atomic_write_bytes(self.folder / "archive.npz", buf.getvalue())
        atomic.write_json(self.folder / "archive.json", self.summary(cells=False))
        lines = [json.dumps(e) for e in self.elite_records()]
        atomic.atomic_write_text(
            self.folder / "elites.jsonl", "".join(x + "\n" for x in lines)
        )
        keep = {f"{int(i)}.png" for i in d["elite_id"]}
        thumbs = self.folder / "thumbs"
        if thumbs.is_dir():
            for f in thumbs.glob("*.png"):
                if f.name not in keep:
                    f.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------
    # Reading

    def elites(self) -> dict[str, np.ndarray]:
        """Every elite, best first: solution (N, D), objective (N,), measures (N, A),
        elite_id (N,), index (N,) (the cell, flat)."""
        d = self.grid.data()
        order = np.argsort(-d["objective"], kind="stable")
        return {k: np.asarray(d[k])[order] for k in _FIELDS}

    def cell_of(self, index: int) -> list[int]:
        """A flat cell index → one index per axis."""
        return [int(i) for i in self.grid.int_to_grid_index([index])[0]]

    def thumb_path(self, elite_id: int) -> Path:
        return self.folder / "thumbs" / f"{elite_id}.png"

    def elite_records(self) -> list[dict[str, Any]]:
        """One JSON-able record per elite, best first (the lines of elites.jsonl)."""
        d = self.elites()
        return [
            {
                "id": int(d["elite_id"][k]),
                "cell": self.cell_of(int(d["index"][k])),
                "score": round(float(d["objective"][k]), 6),
                "measures": [round(float(m), 5) for m in d["measures"][k]],
                "params": schema.to_prefixed(solution.to_params(d["solution"][k])),
            }
            for k in range(len(d["objective"]))
        ]

    def summary(self, cells: bool = True) -> dict[str, Any]:
        """The archive as JSON for the gallery's map and the round report:

        {"axes": [{name, label, lo, hi, bins, ticks}], "cells_total", "cells_filled",
         "coverage", "qd_score", "best", "renders", "next_id", "growth": [[renders,
         cells, qd_score], one per save], "folder", and with cells=True "cells": [{"cell": [i, j, k],
         "score", "measures", "id", "geometry", "thumb"}] best first} (thumb: the
         elite's render at the explore size, a path, or null)."""
        stats = self.grid.stats
        out: dict[str, Any] = {
            "schema_hash": schema.schema_hash(),
            "axes": [
                {**a, "ticks": [ax.tick(i) for i in range(ax.bins)]}
                for a, ax in zip(descriptors.axes_json(), descriptors.AXES, strict=True)
            ],
            "cells_total": int(self.grid.cells),
            "cells_filled": int(stats.num_elites),
            "coverage": float(stats.coverage),
            "qd_score": float(stats.qd_score),
            "best": float(stats.obj_max) if stats.num_elites else 0.0,
            "renders": self.renders,
            "next_id": self.next_id,
            "growth": [list(h) for h in self.history],
            "folder": str(self.folder),
        }
        if cells:
            d = self.elites()
            out["cells"] = [
                {
                    "cell": self.cell_of(int(d["index"][k])),
                    "score": float(d["objective"][k]),
                    "measures": [float(m) for m in d["measures"][k]],
                    "id": int(d["elite_id"][k]),
                    "geometry": solution.to_params(d["solution"][k])["geometry"],
                    "thumb": _exists(self.thumb_path(int(d["elite_id"][k]))),
                }
                for k in range(len(d["objective"]))
            ]
        return out


_FIELDS = ("solution", "objective", "measures", "elite_id", "index")


def new_grid(seed: int = 0) -> Any:
    """An empty GridArchive over descriptors.AXES for solution vectors."""
    from ribs.archives import GridArchive

    return GridArchive(
        solution_dim=solution.SOLUTION_DIM,
        dims=[a.bins for a in descriptors.AXES],
        ranges=[(a.lo, a.hi) for a in descriptors.AXES],
        learning_rate=1.0,  # a cell's threshold is its elite's score: MAP-Elites
        threshold_min=MIN_SCORE,
        seed=seed,
        extra_fields={"elite_id": ((), np.int64)},
    )


def check_compatible(path: Path, state: dict[str, np.ndarray]) -> None:
    """ArchiveError unless the stored archive was made by this schema and these axes."""
    move = f"move {path.parent} away (or pass another --archive) to start a new one"
    need = {"format", "schema_hash", "axes", "solution", "objective", "measures"}
    missing = need - set(state)
    if missing:
        raise ArchiveError(f"{path}: not an archive (no {', '.join(sorted(missing))})")
    if int(state["format"]) != FORMAT:
        raise ArchiveError(
            f"{path}: archive format {int(state['format'])}, not {FORMAT}"
        )
    stored, now = str(state["schema_hash"]), schema.schema_hash()
    older = schema.older_version_of(stored)
    if older is not None and state["solution"].shape[-1:] == (solution.SOLUTION_DIM,):
        raise ArchiveRedrawn(
            f"{path} was made under schema v{older}, whose pictures this one draws "
            "otherwise: its elites are to be redrawn",
            older,
            state["solution"],
        )
    if stored != now:
        raise ArchiveError(
            f"{path} was made under another parameter schema (hash {stored}, this one "
            f"is {now}): its elites cannot be decoded here; {move}"
        )
    if json.loads(str(state["axes"])) != descriptors.axes_json():
        raise ArchiveError(f"{path} was made with other descriptor axes; {move}")
    if (
        state["solution"].ndim != 2
        or state["solution"].shape[1] != solution.SOLUTION_DIM
    ):
        raise ArchiveError(f"{path}: solutions of another length; {move}")


def _exists(p: Path) -> str | None:
    return str(p) if p.exists() else None
