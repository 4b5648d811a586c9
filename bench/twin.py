"""Benchmark: how closely and how fast the differentiable twin (twin.py) draws the
bundled renderer's scene.

    python bench/twin.py                         # 500 draws at 128² and 256², speed
    python bench/twin.py --draws 50 --no-speed   # a quick look
    python bench/twin.py --quick                 # CI size (make bench)

Fidelity: held-out draws of `sampling.sample_params` (seed --seed, noise, dither and
CRT off) drawn by the renderer (renderer.scene.render, in-process) and by the twin;
NCC of √grey, both blurred by σ = 1 px (`metrics.ncc`). A draw that both draw black
(every pixel < 1/255) counts as a match (NCC 1; `metrics.ncc` says 0 for a blank
picture) and is counted apart. Every case of both golden sets (tests/golden,
tests/golden2; or --golden DIR) at 256² is compared with the original's picture by
both: the twin's NCC beside the renderer's own, per set.

Speed: render + gradient (backward of a loss through the picture) per second at
128², batches of --batch variants of one scene, torch on --threads threads: typical
params (the scene's defaults), the same in a saturated colour (a second canvas per
chain, twin._grey_and_hue) and a heavy case (400 repetitions × 3 layers). The
machine's load average is written beside the figures.

Writes bench/results/twin.md (with the command line).
"""

from __future__ import annotations

import datetime
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from art_explorer import cli, utils
from art_explorer.scene import sampling, schema, twin
from art_explorer.scoring import metrics
from renderer import scene

ROOT = Path(__file__).resolve().parent.parent
NCC_SIGMA = 1.0  # px, at every size
BLANK = 1 / 255  # a picture whose every pixel is below this is black


@dataclass
class Args:
    """Options of bench/twin.py (--quick: 20 draws at 128², 1 rep, batch 2)."""

    quick: bool = False
    """CI size: 20 draws at 128²"""
    draws: int = 500
    """held-out draws"""
    seed: int = 20261129
    """seed of the draws"""
    sizes: list[int] = field(default_factory=lambda: [128, 256])
    """px"""
    golden: str = ""
    """one golden folder instead of both sets (tests/golden*; '' for both); none:
    skip"""
    speed: bool = True
    """the speed figures (--no-speed: skip them)"""
    batch: int = 8
    """variants per batch"""
    threads: list[int] = field(default_factory=lambda: [1, 2])
    """torch threads: a speed row for each (the fidelity pass runs on the first)"""
    reps: int = 5
    """timed steps per case"""
    out: str = str(ROOT / "bench" / "results" / "twin.md")
    """report"""

    def __post_init__(self) -> None:
        if self.quick:
            self.draws, self.sizes, self.reps, self.batch = 20, [128], 1, 2


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


def plain(params: dict[str, Any]) -> dict[str, Any]:
    """The params without the post-passes the twin does not draw."""
    return {
        **params,
        "noiseEnabled": False,
        "ditherEnabled": False,
        "crtEnabled": False,
    }


def held_out(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [plain(sampling.sample_params(rng)) for _ in range(n)]


def agreement(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, bool]:
    """(NCC √grey σ = 1, both black) of two float pictures in [0, 1]."""
    if ours.max() < BLANK and theirs.max() < BLANK:
        return 1.0, True
    return metrics.ncc(ours, theirs, NCC_SIGMA), False


def fidelity(draws: list[dict[str, Any]], size: int) -> dict[str, Any]:
    scores, blanks, blank, t_twin = [], [], 0, 0.0
    for p in draws:
        ref = scene.render(p, size).astype(np.float64) / 255
        t = time.perf_counter()
        ours = twin.render_params(p, size)
        t_twin += time.perf_counter() - t
        n, b = agreement(ours, ref)
        scores.append(n)
        blanks.append(b)
        blank += b
    a = np.array(scores)
    lit = np.array([x for x, b in zip(scores, blanks, strict=True) if not b])
    return {
        "size": size,
        "n": len(a),
        "blank": blank,
        **summary(a),
        **{f"lit_{k}": v for k, v in summary(lit).items()},
        "ms": 1000 * t_twin / len(a),
        "scores": scores,
    }


def summary(a: np.ndarray) -> dict[str, float]:
    return {
        "median": float(np.median(a)),
        "p10": float(np.percentile(a, 10)),
        "ge_0.9": float((a >= 0.9).mean()),
        "ge_0.95": float((a >= 0.95).mean()),
        "min": float(a.min()),
    }


def load_fidelity_bench() -> ModuleType:
    return utils.load_bench("fidelity")


def golden(folder: str | None) -> list[dict[str, Any]] | None:
    """Per golden case (both sets, bench/fidelity.py) at 256²: the renderer's and
    the twin's NCC against the original's picture (σ = 1 px); None when asked for
    none ("none") or when there is none."""
    if folder == "none":
        return None
    sets = load_fidelity_bench().all_cases(folder)
    rows = []
    for cases in sets.values():
        for case in cases:
            params = schema.validate_params(case.params)
            original = case.picture(256)
            ren = scene.render(params, 256).astype(np.float64) / 255
            ours = twin.render_params(plain(params), 256)
            post = bool(
                params["noiseEnabled"]
                or params["ditherEnabled"]
                or params["crtEnabled"]
            )
            rows.append(
                {
                    "golden": case.golden,
                    "name": case.name,
                    "renderer": metrics.ncc(ren, original, NCC_SIGMA),
                    "twin": metrics.ncc(ours, original, NCC_SIGMA),
                    "post": post,
                }
            )
    return rows or None


def heavy_params() -> dict[str, Any]:
    """400 repetitions × 3 layers, the scene's defaults otherwise."""
    p = schema.default_params()
    p["repetitions"] = 400
    p["scaleFactor"] = 1.004
    rng = random.Random(3)
    p["layers"] = [
        {
            "rotation": rng.uniform(-3, 3),
            "position": {"x": rng.uniform(-1, 1), "y": rng.uniform(-1, 1)},
            "scale": {
                "x": rng.choice([-1, 1]) * rng.uniform(0.5, 1.2),
                "y": rng.uniform(0.5, 1.2),
            },
        }
        for _ in range(3)
    ]
    return plain(p)


def speed(
    params: dict[str, Any], batch: int, reps: int, size: int = 128
) -> tuple[float, float]:
    """Render + gradient per second: batches of `batch` variants (Scene.rotation
    turned by 0.05 rad each: distinct pictures, the same work each), loss = mean
    √picture, backward to every value. (per wall-clock second, per CPU second of
    this process), each from the median of `reps` timed steps (a shared machine's
    load comes and goes)."""
    struct = twin.structure_of(params)
    v0 = twin.values_of([params] * batch, struct)
    v0["rotation"] = v0["rotation"] + 0.05 * torch.arange(batch, dtype=torch.float64)

    def step() -> None:
        v = {k: x.clone().requires_grad_(True) for k, x in v0.items()}
        twin.render(struct, v, size).clamp(min=1e-6).sqrt().mean().backward()

    step()  # warm-up
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return batch / statistics.median(wall), batch / statistics.median(cpu)


def report(
    args: Args,
    fid: list[dict[str, Any]],
    gold: list[dict[str, Any]] | None,
    spd: dict[tuple[str, int], tuple[float, float]] | None,
    load: tuple[float, ...],
) -> str:
    cmd = (
        "python bench/twin.py " + " ".join(sys.argv[1:])
        if sys.argv[1:]
        else "python bench/twin.py"
    )
    lines = [
        "# The differentiable twin vs the bundled renderer",
        "",
        f"`{cmd}` ({datetime.date.today()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}).",
        "",
        f"## Fidelity: {args.draws} held-out draws (sampling.sample_params, seed {args.seed}; noise, dither, CRT off)",
        "",
        "NCC of √grey, σ = 1 px. Target: median ≥ 0.95 and ≥ 0.9 on 90% of draws. "
        "Draws black in both count as a match (NCC 1) and are counted.",
        "",
        "| size | draws | median | 10th pct | ≥ 0.9 | ≥ 0.95 | min | twin ms / picture |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in fid:
        for label, pre in (
            (f"all {f['n']} ({f['blank']} black in both)", ""),
            (f"the {f['n'] - f['blank']} not black", "lit_"),
        ):
            lines.append(
                f"| {f['size']}² | {label} | {f[pre + 'median']:.3f} | {f[pre + 'p10']:.3f} | "
                f"{100 * f[pre + 'ge_0.9']:.0f}% | {100 * f[pre + 'ge_0.95']:.0f}% | "
                f"{f[pre + 'min']:.3f} | {f['ms']:.0f} |"
            )
    if gold is not None:
        lines += [
            "",
            "## Golden cases at 256² (NCC against the original's picture, σ = 1 px)",
            "",
            "The twin draws no noise, dither or CRT; the cases with them are listed apart.",
            "",
            "| cases | renderer median | twin median | mean (renderer − twin) | cases where the twin is > 0.03 below |",
            "|---|---:|---:|---:|---:|",
        ]
        groups = []
        for name in dict.fromkeys(r["golden"] for r in gold):
            mine = [r for r in gold if r["golden"] == name]
            groups.append(
                (f"{name}, without post-passes", [r for r in mine if not r["post"]])
            )
            groups.append((f"{name}, all", mine))
        for label, rows in groups:
            if not rows:
                continue
            d = [r["renderer"] - r["twin"] for r in rows]
            lines.append(
                f"| {label} ({len(rows)}) | {statistics.median(r['renderer'] for r in rows):.3f} | "
                f"{statistics.median(r['twin'] for r in rows):.3f} | {statistics.mean(d):.3f} | "
                f"{sum(x > 0.03 for x in d)} |"
            )
        lines += [
            "",
            "| set | case | renderer | twin | post-pass |",
            "|---|---|---:|---:|---|",
        ]
        for r in gold:
            lines.append(
                f"| {r['golden']} | {r['name']} | {r['renderer']:.3f} | {r['twin']:.3f} | {'yes' if r['post'] else ''} |"
            )
    if spd is not None:
        lines += [
            "",
            f"## Speed: render + gradient per second at 128² (batch {args.batch}, CPU)",
            "",
            "Target ≥ 50 / s for typical params. Median of "
            f"{args.reps} timed batches: pictures per wall-clock second, and per CPU "
            "second of the process (all its threads). The machine is shared: the load "
            "average above; with other work on both cores, one torch thread is faster "
            "than two.",
            "",
            "| case | torch threads | per second (wall) | per CPU second |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {k} | {th} | {w:.1f} | {c:.1f} |" for (k, th), (w, c) in spd.items()
        ]
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict[str, Any]:
    torch.set_num_threads(args.threads[0])
    draws = held_out(args.draws, args.seed)
    fid = []
    for size in args.sizes:
        f = fidelity(draws, size)
        print(
            f"{size}²: median {f['median']:.3f}, p10 {f['p10']:.3f}, ≥0.9 {100 * f['ge_0.9']:.0f}%, "
            f"black in both {f['blank']}; not black: median {f['lit_median']:.3f}, "
            f"≥0.9 {100 * f['lit_ge_0.9']:.0f}%; twin {f['ms']:.0f} ms",
            flush=True,
        )
        fid.append(f)
    gold = golden(args.golden or None)
    spd: dict[tuple[str, int], tuple[float, float]] | None = None
    if args.speed:
        spd = {}
        cases = {
            "typical (the defaults: 75 reps, base + default layer)": (
                schema.default_params() | {"crtEnabled": False},
                args.reps,
            ),
            "typical, saturated colour #7D99FF (a chroma canvas per chain)": (
                schema.default_params() | {"crtEnabled": False, "color": "#7D99FF"},
                args.reps,
            ),
            "heavy (400 reps × 3 layers)": (heavy_params(), max(1, args.reps // 2)),
        }
        for th in args.threads:
            torch.set_num_threads(th)
            for k, (p, reps) in cases.items():
                spd[k, th] = speed(p, args.batch, reps)
                print(
                    f"speed {k}, {th} threads: {spd[k, th][0]:.1f}/s wall, "
                    f"{spd[k, th][1]:.1f}/s per CPU second",
                    flush=True,
                )
    load = os.getloadavg()
    text = report(args, fid, gold, spd, load)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return {"fidelity": fid, "golden": gold, "speed": spd}


if __name__ == "__main__":
    main(parse_args())
