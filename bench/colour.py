"""Benchmark: the pipeline's colour stages alone, on the shapes a search found.

    python bench/colour.py           # the 48 + 4 results of inverse-pipeline-twin-500-48
    python bench/colour.py --quick   # CI size (make bench): the first 6 of them

The colour of a result is decided after its shapes (color_stages: the
target's hue at three gains, optionally at half strength too, each layer's own hue,
the brightness), so a whole bench run measures it through the spread of searches
bound by time. Here every result of a bench/inverse.py rows file keeps its shapes
and is given back a colour from a start: `grey` (its colour's mean as a grey, layer
colours removed: as if the search had matched the shapes in white) or `as-is` (the
colour it ended with). Each variant of the stages runs from each start against the
target (its true params rendered at --size), and the table gives the mean hue error
(hue_error), colour error (color_error) and grey loss
(pipeline_loss) of what comes out. The sheet shows target | each variant
from the grey start, for the targets where the variants differ.

Writes bench/results/colour.md and bench/results/colour-sheet.png.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import atomic, cli, utils
from art_explorer.predict.budget import Candidate, Evaluator
from art_explorer.predict.colour import color_error, color_stages, hue_error
from art_explorer.predict.loss import pipeline_loss
from art_explorer.predict.options import PipelineOptions
from art_explorer.scene import schema, structure

VARIANTS = {
    "fitted hue at 3 gains (before)": {"color_half": False},
    "+ half strength at 2 gains (now)": {"color_half": True},
}


@dataclasses.dataclass
class Args:
    """Options of bench/colour.py."""

    rows: str = "bench/results/inverse-pipeline-twin-500-48-rows.jsonl"
    """bench/inverse.py rows (the last of each target is used)"""
    size: int = 128
    """side of the pictures"""
    n: int = 0
    """only the first n targets (0: all)"""
    quick: bool = False
    """CI size: --n 6 at 64²"""
    out: str = "bench/results/colour.md"
    """markdown table"""
    sheet: str = "bench/results/colour-sheet.png"
    """picture sheet"""
    argv: list[str] = dataclasses.field(default_factory=list, init=False)
    """the command line, for the report (set by parse_args)"""

    def __post_init__(self) -> None:
        if self.quick:
            self.n, self.size = self.n or 6, 64


def parse_args(argv: list[str] | None = None) -> Args:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])
    args.argv = argv
    return args


def grey_start(params: dict[str, Any]) -> dict[str, Any]:
    """params in the grey of its colour's mean, with no layer colours."""
    g = float(np.mean(schema.color_to_rgb(params["color"])))
    layers = [{k: v for k, v in la.items() if k != "color"} for la in params["layers"]]
    return {**params, "color": schema.rgb_to_color([g, g, g]), "layers": layers}


def run_stages(
    client: structure.LocalRenderer,
    params: dict[str, Any],
    target: np.ndarray,
    size: int,
    opts: PipelineOptions,
) -> tuple[dict[str, Any], np.ndarray, float]:
    """colour.color_stages from params → (params, picture, grey loss)."""
    ev = Evaluator(client, pipeline_loss(target), size, 40, 1)
    ev.keep_images = True
    loss = ev([params])[0]
    image = ev.last_images.get(schema.canonical_json(params))
    best = color_stages(Candidate(loss, params, image), target, ev, opts)
    img = best.image if best.image is not None else client.render(best.params, size)
    return best.params, img, best.loss


def main(args: Args) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for line in Path(args.rows).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            rows[r["target"]] = r
    if args.n:
        rows = dict(sorted(rows.items())[: args.n])
    client = structure.LocalRenderer()
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    shown: list[tuple[str, list[np.ndarray], list[str]]] = []
    for i, (name, r) in enumerate(sorted(rows.items())):
        target = client.render(r["truth"], args.size)
        pics, cols = [target], [r["truth"]["color"]]
        for start in ("grey", "as-is"):
            p0 = grey_start(r["params"]) if start == "grey" else r["params"]
            for label, kw in VARIANTS.items():
                opts = dataclasses.replace(PipelineOptions(), **kw)
                p, img, loss = run_stages(client, p0, target, args.size, opts)
                hue = hue_error(img, target)
                results.setdefault((start, label), []).append(
                    (hue, color_error(img, target), loss)
                )
                if start == "grey":
                    pics.append(img)
                    cols.append(f"{p['color']} hue {hue:.2f}")
        if cols[1] != cols[2]:
            shown.append((name, pics, cols))
        print(f"{i + 1}/{len(rows)} {name}", flush=True)
    lines = [
        "# The colour stages alone, on the shapes of a bench run",
        "",
        f"- date: {datetime.date.today()}",
        f"- command: `{shlex.join(['python', 'bench/colour.py', *args.argv])}`",
        f"- shapes: the results in {args.rows} ({len(rows)} targets), pictures "
        f"at {args.size}²",
        "- grey: each result's colour replaced by the grey of its mean (layer colours "
        "removed), as if the search had matched the shapes in white; as-is: the "
        "colour it ended with",
        "",
        "| start | colour stages | hue error | colour error | grey loss |",
        "|---|---|---|---|---|",
    ]
    for (start, label), vals in results.items():
        h, c, lo = (statistics.mean(v[k] for v in vals) for k in range(3))
        lines.append(f"| {start} | {label} | {h:.4f} | {c:.4f} | {lo:.4f} |")
    lines += [
        "",
        f"Sheet (bench/results/colour-sheet.png): target | "
        f"{' | '.join(VARIANTS)} from the grey start, the {len(shown)} targets "
        "where they differ.",
    ]
    atomic.atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    if shown:
        tiles = [img for _, pics, _ in shown for img in pics]
        labels = [
            f"{name} {c}" if j == 0 else c
            for name, _, cs in shown
            for j, c in enumerate(cs)
        ]
        sheet = utils.contact_sheet(tiles, labels, cols=3 * 2, cell=160)
        Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.sheet)
        print(f"wrote {args.sheet}")
    return {"results": results}


if __name__ == "__main__":
    main(parse_args())
