"""bench/inverse.py's report: its rows file, tables, results page and picture sheets."""

from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_explorer import atomic, utils
from art_explorer.predict.options import PipelineOptions
from art_explorer.predict.pool import twin_workers
from art_explorer.scene import structure
from bench.lib.inverse_options import Args, parse_by_eye, pipeline_overrides


def append_row(path: str, row: dict[str, Any]) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def report(args: Args) -> dict[str, Any]:
    """Tables from --rows (the last row of each target, method and budget)."""
    last: dict[tuple[str, str, int], dict[str, Any]] = {}
    for line in Path(args.rows).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        last[(r["target"], r["method"], int(r["budget"]))] = r
    # only the targets every method listed has results for (runs done in parts)
    have = [{t for t, m2, _ in last if m2 == m} for m in args.methods]
    common = set.intersection(*[h for h in have if h]) if any(have) else set()
    rows: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for (t, m, b), r in sorted(last.items()):
        if m in args.methods and b in args.budgets and t in common:
            rows.setdefault((r["group"], m, b), []).append(r)
    methods = [m for m in args.methods if any(k[1] == m for k in rows)]
    budgets = sorted({k[2] for k in rows})
    table = format_table(rows, methods, budgets, parse_by_eye(args.by_eye))
    print(table)
    write_results(
        args, table, [f"rows: {args.rows}, targets: {sorted(common)}"], len(common)
    )
    if args.sheet:
        r = structure.LocalRenderer()
        top = max(budgets)
        examples = []
        for t in sorted(common):
            truth = next(v["truth"] for k, v in last.items() if k[0] == t)
            shown = [
                (
                    f"{m}@{top}",
                    r.render(last[(t, m, top)]["params"], 256),
                    float(last[(t, m, top)]["picture"]),
                )
                for m in methods
                if (t, m, top) in last and m != "near-truth"
            ]
            examples.append((t, r.render(truth, 256), shown))
        write_examples(args.sheet, examples, cell=128)
    return {"rows": rows}


def runner_up_lines(
    rows: dict[tuple[str, str, int], list[dict[str, Any]]],
    group: str,
    methods: list[str],
    budgets: list[int],
) -> list[str]:
    """How often the runner-up structure was descended beside the chosen one and
    took over (PipelineOptions.alternates), and whether the whole structure was
    right before and after (rows that record it: "runner_up", "took_over")."""
    out = []
    for b in budgets:
        for m in methods:
            rs = [r for r in rows.get((group, m, b), []) if "took_over" in r]
            tried = [r for r in rs if r.get("runner_up") is not None]
            if not tried:
                continue
            over = [r for r in tried if r["took_over"]]

            def right(r: dict[str, Any], key: str) -> bool:
                return bool(r["structures"][r[key]]["s_all"])

            gained = sum(right(r, "runner_up") and not right(r, "chosen") for r in over)
            lost = sum(right(r, "chosen") and not right(r, "runner_up") for r in over)
            out.append(
                f"\n{m} at {b}: the runner-up structure was descended beside the "
                f"chosen one on {len(tried)} of {len(rs)} targets and took over on "
                f"{len(over)} (whole structure: right where it was wrong on {gained}, "
                f"wrong where it was right on {lost})"
            )
    return out


def format_table(
    rows: dict[tuple[str, str, int], list[dict[str, Any]]],
    methods: list[str],
    budgets: list[int],
    by_eye: dict[tuple[str, str, int], int] | None = None,
) -> str:
    """The results tables; `by_eye`: same picture counted by eye from the sheet
    ("–" where nobody counted)."""
    lines = []
    for group in ("held-out", "refs"):
        if not any(k[0] == group for k in rows):
            continue
        n = len(next(v for k, v in rows.items() if k[0] == group))
        lines += [
            f"\n**{group}** ({n} targets)\n",
            "| method | budget | NCC | line F1 | picture | same picture | same by eye "
            "| NCC ≥ 0.85 | SSIM | PSNR dB | colour error | hue error | renders "
            "| s / target |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for b in budgets:
            for m in methods:
                rs = rows.get((group, m, b))
                if not rs:
                    continue

                def mean(k: str, rs: list[dict[str, Any]] = rs) -> float:
                    return float(np.mean([r[k] for r in rs]))

                share = float(np.mean([r["ncc"] >= 0.85 for r in rs]))

                def optional(k: str, rs: list[dict[str, Any]] = rs) -> str:
                    got = [r[k] for r in rs if k in r]  # rows made before the column
                    return f"{np.mean(got):.4f}" if len(got) == len(rs) else "–"

                eye = (by_eye or {}).get((group, m, b))
                eye_text = "–" if eye is None else f"{eye} of {len(rs)}"
                lines.append(
                    f"| {m} | {b} | {mean('ncc'):.3f} | {mean('f1'):.3f} "
                    f"| {mean('picture'):.3f} | {mean('same'):.0%} | {eye_text} "
                    f"| {share:.0%} | {mean('ssim'):.3f} | {mean('psnr'):.1f} "
                    f"| {optional('color')} | {optional('hue')} "
                    f"| {mean('renders'):.0f} | {mean('seconds'):.1f} |"
                )
        tb = [
            f"{m} at {b}: {sum(r['twin_refused'] for r in rs)}"
            for b in budgets
            for m in methods
            if (rs := rows.get((group, m, b), []))
            and all("twin_refused" in r for r in rs)
        ]
        if tb:
            lines.append(
                "\npictures the twin refused as too big to draw (twin.TooBig; each "
                "ends a descent stage): " + ", ".join(tb)
            )
        lines += runner_up_lines(rows, group, methods, budgets)
        keys = [f"s_{k}" for k in (*structure.STRUCTURE_KEYS, "layers", "all")]
        lines += [
            f"\nstructure recovered ({group}, up to equivalences; `all`: every one)\n",
            "| method | budget | " + " | ".join(k[2:] for k in keys) + " |",
            "|---|---|" + "---|" * len(keys),
        ]
        for b in budgets:
            for m in methods:
                rs = [r for r in rows.get((group, m, b), []) if "s_all" in r]
                if rs:
                    lines.append(
                        f"| {m} | {b} | "
                        + " | ".join(f"{np.mean([r[k] for r in rs]):.0%}" for k in keys)
                        + " |"
                    )
    return "\n".join(lines)


def write_results(args: Args, table: str, notes: list[str], n_targets: int) -> None:
    cmd = " ".join(["python", "bench/inverse.py", *sys.argv[1:]])
    o = PipelineOptions(**pipeline_overrides(args.set))
    alt = "on" if o.alternates and twin_workers(o.twin_workers) > 1 else "off"
    text = f"""# Inverse benchmark: image → params at equal real-render budgets

- date: {datetime.date.today().isoformat()}
- machine: {platform.machine()}, {platform.processor() or "cpu"}, torch {torch.__version__}, {torch.get_num_threads()} threads
- command: `{cmd}`
- targets: {n_targets} (held-out {args.target_set} draws, seed {args.seed}, never drawn in training; refN: starter refs, never trained on); search renders at {args.size}², scores at 256²
- {chr(10).join("- " + n if i else n for i, n in enumerate(notes))}

Methods: pipeline = invert with the bundled inverse model
(models/inverse-pretrained): its top 8 structures (geometry × layer count ×
progressions) each fitted by a short CMA-ES run, the best kept by the picture score,
then moves and evolution that keep the structure, minimising NCC σ 2/8 + line F1 +
the picture score's shape terms (sharp NCC, orientation NCC). pipeline-today = the
pipeline as it was, with no models (a fresh clone before this work: random starts,
NCC + line F1 loss). pipeline-twin = the pipeline with its gradient stage through
the differentiable twin, as predict runs it (twin.py; in this run, with any
`--set` of the command: a wide descent of
{o.twin_wide_seconds:g} s, then a fine one of {o.twin_seconds:g} s, both again after the polish in
{o.final_twin_seconds:g} s, a wide descent of {o.structure_wide_seconds:g} s for each structure's fit and a wide + fine
one of {o.finalist_seconds:g} s for each of the {o.finalists} that score best, chosen among again, the
runner-up carried through the main descent beside the chosen one: {alt}; the
descents of different starts side by side on {twin_workers(o.twin_workers)} worker processes; renders
counted alike, its seconds are in s / target). cma = CMA-ES alone on 1 − NCC σ 2. near-truth = the true params
with every number ×U(0.98, 1.02) (a yardstick, not a search).

colour error = color_error (blurred per-channel difference, every pixel);
hue error = hue_error (the colour over its largest channel where both
pictures are lit: the hue alone). picture = structure.picture_score
(√(orientation NCC σ 2 · line F1); calibrated on curated-like pairs in
bench/results/picture-score.md; it sees no colour); same
picture = picture ≥ {structure.SAME_PICTURE}; same by eye = counted from the sheet
(`--by-eye`; "–": not counted). Structure recovered counts a choice as
right when it equals the truth's, is equivalent by structure.EQUIVALENCES, or draws
the same picture when put into the true params; layers = the exact layer count.
{table}
"""
    atomic.atomic_write_text(args.out, text)
    print(f"wrote {args.out}")


def write_examples(
    path: str,
    examples: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray, float]]]],
    cell: int | None = None,
) -> None:
    images, labels = [], []
    cols = 1 + max((len(s) for _, _, s in examples), default=0)
    for name, t256, shown in examples:
        images.append(t256)
        labels.append(f"{name} target")
        for label, img, n in shown:
            images.append(img)
            labels.append(f"{label} pic {n:.2f}")
        for _ in range(cols - 1 - len(shown)):
            images.append(np.zeros_like(t256))
            labels.append("")
    utils.contact_sheet(images, labels, cols=cols, cell=cell).save(path)
    print(f"wrote {path}")
