"""bench/inverse.py's options: the methods it compares and its one Args dataclass."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from art_explorer.predict.loss import (
    PIPELINE_BRIGHTNESS_WEIGHT,
    PIPELINE_F1_WEIGHT,
    PIPELINE_SIGMAS,
)
from art_explorer.predict.options import PipelineOptions

METHODS = ("pipeline", "cma", "cma-given", "inverse", "random", "near-truth")
ABLATIONS = (
    "pipeline-today",
    "pipeline-no-retrieval",
    "pipeline-no-register",
    "pipeline-no-moves",
    "pipeline-no-gd",
    "polish-near-truth",
    "pipeline-twin",
)


def parse_by_eye(entries: list[str]) -> dict[tuple[str, str, int], int]:
    """--by-eye's METHOD@BUDGET/GROUP=N entries → {(group, method, budget): N}."""
    out = {}
    for e in entries:
        m = re.fullmatch(r"(.+)@(\d+)/(.+)=(\d+)", e.strip())
        if not m:
            raise SystemExit(f"--by-eye {e!r}: expected METHOD@BUDGET/GROUP=N")
        out[(m[3], m[1], int(m[2]))] = int(m[4])
    return out


DEFAULT_ROWS = "bench/results/inverse-rows.jsonl"


@dataclass
class Args:
    """Options of bench/inverse.py (--quick: 3 targets + 2 refs, budgets 30 100)."""

    quick: bool = False
    """3 targets + 2 refs, budgets 30/100"""
    n_targets: int = 30
    """held-out targets"""
    refs: str = "references/refs.jsonl"
    """refs added as targets ('' for none)"""
    max_refs: int = 16
    """at most this many refs"""
    seed: int = 20240611
    """target RNG seed"""
    target_set: Literal["refs-like", "coverage"] = "refs-like"
    """held-out draws: refs-like (sampling.sample_refs_like, what curated refs look
    like) or coverage (sampling.sample_params)"""
    budgets: list[int] = field(default_factory=list)
    """real-render budgets (none given: 50 200 500; --quick: 30 100)"""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """methods to run (ablations: pipeline-today pipeline-no-retrieval
    pipeline-no-register pipeline-no-moves pipeline-no-gd polish-near-truth
    pipeline-twin)"""
    size: int = 128
    """search render size"""
    data: list[str] = field(default_factory=lambda: ["data", "data/quality"])
    """training data folders for retrieval"""
    bank_res: int = 32
    """retrieval feature size, px"""
    forward: str | None = None
    """forward checkpoint (None: the default)"""
    inverse: str | None = None
    """inverse checkpoint (None: the default)"""
    gd_steps: int = 300
    """pipeline GD steps"""
    sigmas: list[float] = field(default_factory=lambda: list(PIPELINE_SIGMAS))
    """pipeline loss: NCC blur scales in px at 256²"""
    f1_weight: float = PIPELINE_F1_WEIGHT
    """pipeline loss: weight of line F1 beside the NCC terms"""
    brightness_weight: float = PIPELINE_BRIGHTNESS_WEIGHT
    """pipeline loss: weight of the mean-brightness gap"""
    set: list[str] = field(default_factory=list)
    """override a PipelineOptions field, KEY=VALUE, e.g. --set n_retrieve=16 (several
    after one --set, or --set repeated)"""
    twin_near_truth: bool = False
    """run only the twin's descent from the truth ±10%% (see above)"""
    twin_seconds: float = 10.0
    """twin descent time, s"""
    twin_jitter: float = 0.1
    """relative perturbation"""
    twin_target_size: int = 256
    """side of the target the descent is given (256, the side it is judged at; 128,
    the search size, as before 2026-12-05)"""
    twin_threads: int = 0
    """torch threads (0: torch's default; 1 is faster than 2 on a loaded 2-core
    machine)"""
    renderer: Literal["local", "http"] = "local"
    """local: the bundled renderer in-process; http: --renderer-url"""
    renderer_url: str | None = None
    """POST /api/raster URL"""
    rows: str = DEFAULT_ROWS
    """every (target, method, budget) result, appended (one JSON a line; --quick:
    none unless given)"""
    report_only: bool = False
    """no searches: tables and sheet from --rows (runs done in parts)"""
    sheet: str = "bench/results/inverse-sheet.png"
    """target | result of each method at the largest budget, every target"""
    workers: int = 4
    """render requests in flight"""
    out: str = "bench/results/inverse.md"
    """markdown results file"""
    examples: str = "bench/results/inverse-examples.png"
    """side-by-side example sheet ('' for none)"""
    by_eye: list[str] = field(default_factory=list)
    """same picture counted by eye from --sheet, one METHOD@BUDGET/GROUP=N each
    (e.g. pipeline-twin@500/held-out=8): the table's "same by eye" column"""

    def __post_init__(self) -> None:
        parse_by_eye(self.by_eye)  # a malformed entry fails before the searches
        if not self.budgets:
            self.budgets = [30, 100] if self.quick else [50, 200, 500]
        if self.quick:
            self.n_targets, self.max_refs = (
                min(self.n_targets, 3),
                min(self.max_refs, 2),
            )
            if self.rows == DEFAULT_ROWS:
                self.rows = ""  # a CI-size run leaves the full run's rows alone
        unknown = [m for m in self.methods if m not in METHODS + ABLATIONS]
        if unknown:
            raise ValueError(
                f"--methods: unknown {' '.join(unknown)} (one of "
                f"{' '.join(METHODS + ABLATIONS)})"
            )


def gather_set(argv: list[str]) -> list[str]:
    """argv with every `--set A [B ...]` gathered into one trailing --set, so the
    flag may be repeated as it was under argparse's append."""
    rest: list[str] = []
    values: list[str] = []
    taking = False
    for a in argv:
        if a == "--set":
            taking = True
        elif a.startswith("--set="):
            taking = False
            values.append(a.removeprefix("--set="))
        elif taking and not a.startswith("-"):
            values.append(a)
        else:
            taking = False
            rest.append(a)
    return [*rest, "--set", *values] if values else rest


def pipeline_overrides(items: list[str]) -> dict[str, Any]:
    """["n_retrieve=16", "moves=false"] → typed PipelineOptions overrides."""
    types = {f.name: f.type for f in dataclasses.fields(PipelineOptions)}
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        if key not in types:
            raise SystemExit(f"--set {item}: no PipelineOptions field {key!r}")
        kind = str(types[key])
        conv = {"bool": lambda v: v.lower() in ("1", "true", "yes"), "int": int}
        out[key] = conv.get(kind, float if kind == "float" else str)(raw)
    return out
