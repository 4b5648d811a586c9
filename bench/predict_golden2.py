"""Today's predict on the original's curated-like pictures (golden2 `refs-like-NN`).

    python bench/predict_golden2.py --fevals 150 --max-seconds 40 --budget 1200
    python bench/predict_golden2.py --cases 1 --fevals 20 --max-seconds 5 --out /tmp/p  # smoke

For each `refs-like-NN` case of golden set 2 (`--golden`), the ORIGINAL renderer's
256² picture is predict's target (predict.run_inverse, small budget); our render of
the result is scored against that picture (NCC σ 2, orientation NCC, line F1, the
picture score and its same-picture verdict) and its geometry and layer count against
the case's params. Stops before a case once `--budget` seconds are spent. Writes
OUT/predict-golden2.md (the table; count "same by eye" on the sheet by hand),
OUT/predict-golden2-sheet.png (original | ours per case) and OUT/predict-golden2-rows.jsonl."""

from __future__ import annotations

import datetime
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import predict
from art_explorer import atomic, cli, utils
from art_explorer.scene import schema, structure
from art_explorer.scoring import metrics

GOLDEN2 = utils.ROOT.parent / "shared" / "golden2"


@dataclass
class Args:
    """Options of bench/predict_golden2.py."""

    golden: str = str(GOLDEN2)
    """golden set 2 folder"""
    fevals: int = 150
    """predict --fevals"""
    max_seconds: float = 40.0
    """predict --max-seconds"""
    budget: float = 1200.0
    """wall seconds in all"""
    cases: int = 16
    """at most this many cases"""
    out: str = "bench/results"
    """folder for the results"""
    quick: bool = False
    """make bench's size: one case at 30 renders, its files in OUT/quick/ (the
    committed results stay)"""

    def __post_init__(self) -> None:
        if self.quick:
            self.cases, self.fevals, self.max_seconds = 1, 30, 10.0
            self.budget = 120.0
            self.out = str(Path(self.out) / "quick")


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


def predict_case(
    target: Path, truth: dict[str, Any], args: Args, work: Path
) -> tuple[dict[str, Any], np.ndarray]:
    """Run predict on one original picture → (row, our 256² render of the result)."""
    t0 = time.time()
    pargs = predict.parse_args(
        [
            *("--target", str(target), "--fevals", str(args.fevals)),
            *("--max-seconds", f"{args.max_seconds:g}", "--out", str(work)),
            *("--seed", "0"),
        ]
    )
    res = predict.run_inverse(pargs, log=lambda *_: None)
    seconds = time.time() - t0
    orig = utils.png_to_array(target.read_bytes())
    ours = structure.LocalRenderer().render(res["params"], 256)
    parts = structure.picture_parts(ours, orig)
    pred = res["params"]
    row = {
        "seconds": round(seconds, 1),
        "renders": res["renders"],
        "ncc": round(metrics.ncc(ours, orig), 3),
        "orient": round(parts["orient"], 3),
        "f1": round(parts["f1"], 3),
        "picture": round(parts["score"], 3),
        "same": parts["score"] >= structure.SAME_PICTURE,
        "geometry": [truth["geometry"], pred["geometry"]],
        "layers": [len(truth["layers"]), len(pred["layers"])],
        "params": pred,
    }
    return row, ours


def main(args: Args) -> list[dict[str, Any]]:
    golden, out = Path(args.golden), Path(args.out)
    names = (golden / "names.txt").read_text(encoding="utf-8").splitlines()
    cases = (golden / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    todo = [i for i, n in enumerate(names) if n.startswith("refs-like-")][: args.cases]
    out.mkdir(parents=True, exist_ok=True)
    work = Path("bench/.cache/predict-golden2-work")
    t0, rows, images, labels = time.time(), [], [], []
    for i in todo:
        if time.time() - t0 > args.budget:
            print(f"budget spent: stopped before {names[i]}")
            break
        target = golden / f"{i:02d}-256.png"
        truth = schema.validate_params(json.loads(cases[i]))
        row, ours = predict_case(target, truth, args, work)
        rows.append({"name": names[i], **row})
        images += [utils.png_to_array(target.read_bytes()), ours]
        labels += [
            f"{names[i]} original",
            f"ours {row['picture']:.2f} {row['seconds']:.0f}s",
        ]
        print(
            json.dumps({k: v for k, v in rows[-1].items() if k != "params"}), flush=True
        )
    if not rows:
        return rows
    rows_text = "\n".join(json.dumps(r) for r in rows) + "\n"
    atomic.atomic_write_text(out / "predict-golden2-rows.jsonl", rows_text)
    sheet = out / "predict-golden2-sheet.png"
    utils.contact_sheet(images, labels, cols=8, cell=160).save(sheet)
    atomic.atomic_write_text(out / "predict-golden2.md", report(rows, args, sheet))
    return rows


def report(rows: list[dict[str, Any]], args: Args, sheet: Path) -> str:
    table = [
        "| case | s | renders | geometry (true → ours) | layers | NCC σ2 | orient "
        "| line F1 | picture | same (score) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        (tg, pg), (tl, pl) = r["geometry"], r["layers"]
        table.append(
            f"| {r['name']} | {r['seconds']:.0f} | {r['renders']} | {tg} → {pg} "
            f"| {tl} → {pl} | {r['ncc']:.3f} | {r['orient']:.3f} | {r['f1']:.3f} "
            f"| {r['picture']:.3f} | {'yes' if r['same'] else 'no'} |"
        )
    secs = [r["seconds"] for r in rows]
    cmd = " ".join(["python", "bench/predict_golden2.py", *sys.argv[1:]])
    return f"""# predict on the original's curated-like pictures (golden2 refs-like)

- date: {datetime.date.today().isoformat()}
- command: `{cmd}`
- {len(rows)} of golden2's `refs-like-NN` pictures drawn by the original renderer as
  targets; predict --fevals {args.fevals} --max-seconds {args.max_seconds:g}; {min(secs):.0f}–{max(secs):.0f} s
  a picture (mean {np.mean(secs):.0f} s); geometry right {sum(g[0] == g[1] for g in (r["geometry"] for r in rows))},
  layer count right {sum(n[0] == n[1] for n in (r["layers"] for r in rows))}; same picture by the
  score {sum(r["same"] for r in rows)}.
- sheet: {sheet} (original | ours). Same by eye: not counted yet.

{chr(10).join(table)}
"""


if __name__ == "__main__":
    main(parse_args())
