"""Benchmark: how closely the bundled renderer draws what the original draws.

    python bench/fidelity.py                       # both golden sets, 256² and 512²
    python bench/fidelity.py --quick               # CI size: 256² only
    python bench/fidelity.py --sizes 256 --no-sheet
    python bench/fidelity.py --golden DIR          # one other golden folder

The golden sets are scenes drawn by the original renderer: `cases.jsonl` (params,
prefixed spelling), `names.txt`, `NN-256.png`, `NN-512.png`. Set 1 (tests/golden/: 82
cases, layers scaled (±1, 1)) and set 2 (tests/golden2/: 44 cases, non-uniform,
near-zero and negative layer scales) keep their 256² pictures in the repository; the
512² pictures are looked up in ../shared/golden and ../shared/golden2 beside it, and
a size whose picture is absent is skipped for that case. Each case is rendered
in-process (renderer.scene.render, no HTTP) and compared with the original's picture:

- NCC: Pearson correlation of √grey, both blurred by σ = 1 px at 256² (σ = 2 px at
  512², i.e. σ scales with the size), `metrics.ncc`;
- intensity: mean grey of ours / mean grey of the original.

Writes bench/results/fidelity.md (per-set summaries, per-case rows) and
docs/fidelity.png (original | ours | difference for every case, 128-px tiles).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import cli, utils
from art_explorer.scene import schema
from art_explorer.scoring import metrics

ROOT = Path(__file__).resolve().parent.parent
NCC_SIGMA_AT_256 = 1.0  # px; scales with the picture size
INTENSITY_TOLERANCE = 0.15  # "within ±15%" of the original's mean intensity
GOLDEN_SETS = ("golden", "golden2")  # tests/NAME/ here, ../shared/NAME/ beside


@dataclass(frozen=True)
class Case:
    """One golden case: its set's name, index (0-based, the NN of its pictures),
    name, params as the original's prefixed spelling, and the folders its pictures
    are looked up in, in order."""

    golden: str
    index: int
    name: str
    params: dict[str, Any]
    folders: tuple[Path, ...]

    def picture_path(self, size: int) -> Path | None:
        """The first of the folders' `NN-size.png`, or None."""
        for folder in self.folders:
            path = folder / f"{self.index:02d}-{size}.png"
            if path.exists():
                return path
        return None

    def picture(self, size: int) -> np.ndarray:
        """The original's picture, float (size, size, 3) in [0, 1]."""
        from PIL import Image

        path = self.picture_path(size)
        if path is None:
            raise FileNotFoundError(
                f"{self.golden} case {self.index}: no {size}² picture"
            )
        return np.asarray(Image.open(path).convert("RGB"), np.float64) / 255


def golden_folders(path: str | Path | None = None) -> dict[str, tuple[Path, ...]]:
    """The golden sets by name, each with the folders to look in: `path` alone (or
    $ART_GOLDEN_DIR) when given, else tests/golden* with ../shared/golden* behind."""
    chosen = path or os.environ.get("ART_GOLDEN_DIR")
    if chosen:
        return {Path(chosen).name: (Path(chosen),)}
    return {
        name: (ROOT / "tests" / name, ROOT.parent / "shared" / name)
        for name in GOLDEN_SETS
    }


def load_cases(name: str, folders: tuple[Path, ...]) -> list[Case]:
    """Every case of one golden set, in order ([] when no folder holds its cases)."""
    home = next((f for f in folders if (f / "cases.jsonl").exists()), None)
    if home is None:
        return []
    lines = (home / "cases.jsonl").read_text().splitlines()
    names = (home / "names.txt").read_text().splitlines()
    return [
        Case(
            name,
            i,
            names[i] if i < len(names) else f"case-{i}",
            json.loads(line),
            folders,
        )
        for i, line in enumerate(lines)
        if line.strip()
    ]


def all_cases(path: str | Path | None = None) -> dict[str, list[Case]]:
    """The cases of every golden set that has some, by set name."""
    out = {name: load_cases(name, f) for name, f in golden_folders(path).items()}
    return {name: cases for name, cases in out.items() if cases}


@dataclass
class Row:
    """Figures of one case at one size."""

    case: Case
    size: int
    ncc: float
    intensity: float  # ours / original, mean grey
    ms: float  # render time in-process


def ncc_sigma(size: int) -> float:
    return NCC_SIGMA_AT_256 * size / 256


def compare(ours: np.ndarray, original: np.ndarray) -> tuple[float, float]:
    """(NCC, intensity ratio) of two float (S, S, 3) pictures in [0, 1]."""
    size = original.shape[0]
    n = metrics.ncc(ours, original, ncc_sigma(size))
    mo = float(original.mean())
    ratio = float(ours.mean()) / mo if mo > 1e-9 else math.inf
    return n, ratio


def render_case(case: Case, size: int) -> np.ndarray:
    """Our picture of a case, float (size, size, 3) in [0, 1]."""
    from renderer.scene import render

    params = schema.validate_params(case.params)
    return render(params, size).astype(np.float64) / 255


def measure(cases: list[Case], size: int) -> tuple[list[Row], list[np.ndarray]]:
    """Rows of figures and our pictures for every case that has an original's
    picture at this size."""
    rows: list[Row] = []
    pictures: list[np.ndarray] = []
    for case in cases:
        if case.picture_path(size) is None:
            continue
        t = time.perf_counter()
        ours = render_case(case, size)
        ms = 1000 * (time.perf_counter() - t)
        n, ratio = compare(ours, case.picture(size))
        rows.append(Row(case, size, n, ratio, ms))
        pictures.append(ours)
    return rows, pictures


NCC_BAR = 0.9  # issue 33: every case at least this


@dataclass(frozen=True)
class Summary:
    median_ncc: float
    min_ncc: float
    share_ncc_bar: float  # share of cases with NCC >= NCC_BAR
    count_ncc_bar: int
    share_intensity: float  # share of cases within ±INTENSITY_TOLERANCE
    count_intensity: int
    median_intensity: float
    n: int


def summarize(rows: list[Row]) -> Summary:
    nccs = [r.ncc for r in rows]
    ratios = [r.intensity for r in rows]
    within = sum(abs(x - 1) <= INTENSITY_TOLERANCE for x in ratios)
    ok = sum(x >= NCC_BAR for x in nccs)
    return Summary(
        median_ncc=statistics.median(nccs),
        min_ncc=min(nccs),
        share_ncc_bar=ok / len(rows),
        count_ncc_bar=ok,
        share_intensity=within / len(rows),
        count_intensity=within,
        median_intensity=statistics.median(ratios),
        n=len(rows),
    )


def summary_line(s: Summary) -> str:
    return (
        f"NCC median {s.median_ncc:.3f}, >= {NCC_BAR} on {s.count_ncc_bar}/{s.n}, "
        f"min {s.min_ncc:.3f}; intensity median ratio {s.median_intensity:.2f}, "
        f"within ±{100 * INTENSITY_TOLERANCE:.0f}% on {s.count_intensity}/{s.n} "
        f"({100 * s.share_intensity:.0f}%)"
    )


def difference(ours: np.ndarray, original: np.ndarray) -> np.ndarray:
    """A picture of the difference: red where ours is brighter, cyan where the
    original is (grey levels ×2 so faint differences show)."""
    d = np.clip(2 * (ours.mean(axis=2) - original.mean(axis=2)), -1, 1)
    out = np.zeros_like(ours)
    out[..., 0] = np.maximum(d, 0)
    out[..., 1] = out[..., 2] = np.maximum(-d, 0)
    return out


def write_sheet(
    path: Path, rows: list[Row], pictures: list[np.ndarray], tile: int
) -> None:
    """original | ours | difference for every case; two cases per sheet row."""
    from PIL import Image

    images: list[np.ndarray] = []
    labels: list[str] = []
    for row, ours in zip(rows, pictures, strict=True):
        original = row.case.picture(row.size)
        images += [original, ours, difference(ours, original)]
        labels += [
            f"{row.case.golden} {row.case.index:02d} {row.case.name}",
            f"ours ncc {row.ncc:.3f}",
            f"int x{row.intensity:.2f}",
        ]
    sheet = utils.contact_sheet(images, labels, cols=6, cell=tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours keep the sheet small (126 cases × 3 tiles)
    sheet = sheet.quantize(
        256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    sheet.save(path, optimize=True)


def _case_table(per_size: dict[int, list[Row]], golden: str) -> list[str]:
    """The per-case rows of one golden set (a size without a case's picture: –)."""
    sizes = list(per_size)
    head = "| # | case | " + " | ".join(f"NCC {s} | int {s}" for s in sizes)
    lines = [head + " | ms |", "|" + "---|" * (3 + 2 * len(sizes))]
    by_case: dict[int, dict[int, Row]] = {}
    for size, rows in per_size.items():
        for r in rows:
            if r.case.golden == golden:
                by_case.setdefault(r.case.index, {})[size] = r
    for index in sorted(by_case):
        got = by_case[index]
        first = next(iter(got.values()))
        cells = []
        for s in sizes:
            r = got.get(s)
            cells += [f"{r.ncc:.3f}", f"{r.intensity:.2f}"] if r else ["–", "–"]
        lines.append(
            f"| {index} | {first.case.name} | "
            + " | ".join(cells)
            + f" | {first.ms:.0f} |"
        )
    return lines


def write_report(
    path: Path, command: str, per_size: dict[int, list[Row]], load: str
) -> None:
    goldens = list(
        dict.fromkeys(r.case.golden for rows in per_size.values() for r in rows)
    )
    lines = [
        "# Fidelity: the bundled renderer against the original's golden pictures",
        "",
        f"Command: `{command}` ({datetime.date.today().isoformat()}; load {load}).",
        "",
        "NCC: Pearson correlation of √grey, blurred σ = 1 px at 256² (σ = 2 px at "
        "512²). Intensity: our mean grey / the original's. Golden set 1 "
        "(tests/golden) places layers scaled (±1, 1); set 2 (tests/golden2) "
        "non-uniform, near-zero and negative scales. Pictures: "
        "[docs/fidelity.png](../../docs/fidelity.png) (original | ours | difference, "
        "red where ours is brighter).",
        "",
        "## Summary",
        "",
    ]
    for size, rows in per_size.items():
        for golden in goldens:
            mine = [r for r in rows if r.case.golden == golden]
            if mine:
                lines.append(f"- {golden}, {size}²: {summary_line(summarize(mine))}")
        if len(goldens) > 1:
            lines.append(f"- both sets, {size}²: {summary_line(summarize(rows))}")
    for golden in goldens:
        lines += ["", f"## Per case: {golden}", "", *_case_table(per_size, golden)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Args:
    golden: str | None = None
    """one golden folder instead of the two sets (tests/golden*, ../shared/golden*)"""
    quick: bool = False
    """CI size: 256² only"""
    sizes: list[int] = field(default_factory=lambda: [256, 512])
    """picture sizes to compare at"""
    only: list[int] | None = None
    """case indices (of every set)"""
    out: str = str(ROOT / "bench" / "results" / "fidelity.md")
    """markdown report"""
    sheet_path: str = str(ROOT / "docs" / "fidelity.png")
    """picture sheet (original | ours | difference)"""
    sheet: bool = True
    """write the picture sheet"""
    report: bool = True
    """write the markdown report"""
    tile: int = 128
    """sheet tile side in px"""
    verbose: bool = False
    """print every case"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


def main(args: Args) -> dict[int, Summary]:
    """Measure every case at every size; the summary of both sets per size."""
    sets = all_cases(args.golden)
    if not sets:
        print(f"no golden cases in {golden_folders(args.golden)}; nothing measured")
        return {}
    sizes = [256] if args.quick else args.sizes
    cases = [c for cs in sets.values() for c in cs]
    if args.only:
        cases = [c for c in cases if c.index in set(args.only)]
    per_size: dict[int, list[Row]] = {}
    out: dict[int, Summary] = {}
    for size in sizes:
        rows, pictures = measure(cases, size)
        per_size[size] = rows
        out[size] = summarize(rows)
        if args.verbose:
            for r in rows:
                print(
                    f"{size} {r.case.golden:8s} {r.case.index:02d} "
                    f"{r.case.name:36s} ncc {r.ncc:6.3f} int {r.intensity:5.2f} "
                    f"{r.ms:5.0f} ms"
                )
        for golden in sets:
            mine = [r for r in rows if r.case.golden == golden]
            if mine:
                print(f"{golden} {size}²: {summary_line(summarize(mine))}")
        if size == sizes[0] and args.sheet:
            write_sheet(Path(args.sheet_path), rows, pictures, args.tile)
    if args.report:
        command = "python bench/fidelity.py " + " ".join(sys.argv[1:])
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        write_report(Path(args.out), command.strip(), per_size, load)
    return out


if __name__ == "__main__":
    main(parse_args())
