"""Benchmark: how closely the bundled renderer draws what the original draws.

    python bench/fidelity.py                       # 256² and 512², every golden case
    python bench/fidelity.py --quick               # CI size: 256² only
    python bench/fidelity.py --sizes 256 --no-sheet
    python bench/fidelity.py --golden DIR          # another golden folder

The golden cases (default ../shared/golden beside the repository, or $ART_GOLDEN_DIR)
are scenes drawn by the original renderer: `cases.jsonl` (params, prefixed spelling),
`names.txt`, `NN-256.png`, `NN-512.png`. Each case is rendered in-process
(renderer.scene.render, no HTTP) and compared with the original's picture:

- NCC: Pearson correlation of √grey, both blurred by σ = 1 px at 256² (σ = 2 px at
  512², i.e. σ scales with the size), `metrics.ncc`;
- intensity: mean grey of ours / mean grey of the original.

Writes bench/results/fidelity.md (per-case rows and the summary) and
docs/fidelity.png (original | ours | difference for every case, 128-px tiles).
Without a golden folder (a bare clone) it says so and does nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import utils
from art_explorer.scene import schema
from art_explorer.scoring import metrics

ROOT = Path(__file__).resolve().parent.parent
NCC_SIGMA_AT_256 = 1.0  # px; scales with the picture size
INTENSITY_TOLERANCE = 0.15  # "within ±15%" of the original's mean intensity


def golden_dir(path: str | Path | None = None) -> Path:
    """The golden folder: `path`, else $ART_GOLDEN_DIR, else ../shared/golden."""
    if path:
        return Path(path)
    env = os.environ.get("ART_GOLDEN_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "golden"


@dataclass(frozen=True)
class Case:
    """One golden case: index (0-based, the NN of its pictures), name, params as
    the original's prefixed spelling."""

    index: int
    name: str
    params: dict[str, Any]

    def picture(self, folder: Path, size: int) -> np.ndarray:
        """The original's picture, float (size, size, 3) in [0, 1]."""
        from PIL import Image

        path = folder / f"{self.index:02d}-{size}.png"
        img = np.asarray(Image.open(path).convert("RGB"), np.float64) / 255
        return img


def load_cases(folder: Path) -> list[Case]:
    """Every case of a golden folder, in order."""
    lines = (folder / "cases.jsonl").read_text().splitlines()
    names = (folder / "names.txt").read_text().splitlines()
    return [
        Case(i, names[i] if i < len(names) else f"case-{i}", json.loads(line))
        for i, line in enumerate(lines)
        if line.strip()
    ]


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


def measure(
    cases: list[Case], folder: Path, size: int
) -> tuple[list[Row], list[np.ndarray]]:
    """Rows of figures and our pictures for every case at one size."""
    rows: list[Row] = []
    pictures: list[np.ndarray] = []
    for case in cases:
        t = time.perf_counter()
        ours = render_case(case, size)
        ms = 1000 * (time.perf_counter() - t)
        n, ratio = compare(ours, case.picture(folder, size))
        rows.append(Row(case, size, n, ratio, ms))
        pictures.append(ours)
    return rows, pictures


@dataclass(frozen=True)
class Summary:
    median_ncc: float
    min_ncc: float
    share_ncc_08: float  # share of cases with NCC >= 0.8
    count_ncc_08: int
    share_intensity: float  # share of cases within ±INTENSITY_TOLERANCE
    median_intensity: float
    n: int


def summarize(rows: list[Row]) -> Summary:
    nccs = [r.ncc for r in rows]
    ratios = [r.intensity for r in rows]
    within = sum(abs(x - 1) <= INTENSITY_TOLERANCE for x in ratios)
    ok = sum(x >= 0.8 for x in nccs)
    return Summary(
        median_ncc=statistics.median(nccs),
        min_ncc=min(nccs),
        share_ncc_08=ok / len(rows),
        count_ncc_08=ok,
        share_intensity=within / len(rows),
        median_intensity=statistics.median(ratios),
        n=len(rows),
    )


def summary_line(s: Summary) -> str:
    return (
        f"NCC median {s.median_ncc:.3f}, >= 0.8 on {s.count_ncc_08}/{s.n} "
        f"({100 * s.share_ncc_08:.0f}%), min {s.min_ncc:.3f}; intensity median "
        f"ratio {s.median_intensity:.2f}, within ±{100 * INTENSITY_TOLERANCE:.0f}% "
        f"on {100 * s.share_intensity:.0f}%"
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
    path: Path,
    rows: list[Row],
    pictures: list[np.ndarray],
    folder: Path,
    tile: int,
) -> None:
    """original | ours | difference for every case; two cases per sheet row."""
    from PIL import Image

    images: list[np.ndarray] = []
    labels: list[str] = []
    for row, ours in zip(rows, pictures, strict=True):
        original = row.case.picture(folder, row.size)
        images += [original, ours, difference(ours, original)]
        labels += [
            f"{row.case.index:02d} {row.case.name}",
            f"ours ncc {row.ncc:.2f}",
            f"int x{row.intensity:.2f}",
        ]
    sheet = utils.contact_sheet(images, labels, cols=6, cell=tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours keep the sheet under 1 MB (82 cases × 3 tiles)
    sheet = sheet.quantize(
        256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    sheet.save(path, optimize=True)


def write_report(path: Path, command: str, per_size: dict[int, list[Row]]) -> None:
    lines = [
        "# Fidelity: the bundled renderer against the original's golden pictures",
        "",
        f"Command: `{command}` ({datetime.date.today().isoformat()}).",
        "",
        "NCC: Pearson correlation of √grey, blurred σ = 1 px at 256² (σ = 2 px at "
        "512²). Intensity: our mean grey / the original's. Pictures: "
        "[docs/fidelity.png](../../docs/fidelity.png) (original | ours | difference, "
        "red where ours is brighter).",
        "",
        "## Summary",
        "",
    ]
    for size, rows in per_size.items():
        lines.append(f"- {size}²: {summary_line(summarize(rows))}")
    lines += ["", "## Per case", ""]
    sizes = list(per_size)
    head = (
        "| # | case | "
        + " | ".join(f"NCC {s} | int {s}" for s in sizes)
        + " | ms 256 |"
    )
    lines += [head, "|" + "---|" * (3 + 2 * len(sizes))]
    first = per_size[sizes[0]]
    for k, row in enumerate(first):
        cells = []
        for s in sizes:
            r = per_size[s][k]
            cells += [f"{r.ncc:.3f}", f"{r.intensity:.2f}"]
        lines.append(
            f"| {row.case.index} | {row.case.name} | "
            + " | ".join(cells)
            + f" | {row.ms:.0f} |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = ap.add_argument_group("run")
    g.add_argument("--golden", default=None, help="golden folder (../shared/golden)")
    g.add_argument("--quick", action="store_true", help="CI size: 256² only")
    g.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="sizes")
    g.add_argument("--only", type=int, nargs="*", default=None, help="case indices")
    g = ap.add_argument_group("output")
    g.add_argument(
        "--out",
        default=str(ROOT / "bench" / "results" / "fidelity.md"),
        help="markdown report",
    )
    g.add_argument(
        "--sheet", default=str(ROOT / "docs" / "fidelity.png"), help="picture sheet"
    )
    g.add_argument("--no-sheet", action="store_true", help="skip the picture sheet")
    g.add_argument("--no-report", action="store_true", help="skip the report")
    g.add_argument("--tile", type=int, default=128, help="sheet tile side in px")
    g.add_argument("--verbose", action="store_true", help="print every case")
    return ap.parse_args(argv)


def main(args: argparse.Namespace) -> dict[int, Summary]:
    folder = golden_dir(args.golden)
    if not (folder / "cases.jsonl").exists():
        print(f"no golden cases in {folder} (pass --golden DIR); nothing measured")
        return {}
    if args.quick:
        args.sizes = [256]
    cases = load_cases(folder)
    if args.only:
        cases = [c for c in cases if c.index in set(args.only)]
    per_size: dict[int, list[Row]] = {}
    out: dict[int, Summary] = {}
    for size in args.sizes:
        rows, pictures = measure(cases, folder, size)
        per_size[size] = rows
        out[size] = summarize(rows)
        if args.verbose:
            for r in rows:
                print(
                    f"{size} {r.case.index:02d} {r.case.name:32s} "
                    f"ncc {r.ncc:6.3f} int {r.intensity:5.2f} {r.ms:5.0f} ms"
                )
        print(f"{size}²: {summary_line(out[size])}")
        if size == args.sizes[0] and not args.no_sheet:
            write_sheet(Path(args.sheet), rows, pictures, folder, args.tile)
    if not args.no_report:
        command = "python bench/fidelity.py " + " ".join(sys.argv[1:])
        write_report(Path(args.out), command.strip(), per_size)
    return out


if __name__ == "__main__":
    main(parse_args())
