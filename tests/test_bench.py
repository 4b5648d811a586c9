"""bench/inverse.py's yardstick row, against the real renderer."""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType

import pytest

from art_explorer import utils
from art_explorer.scene import rendering, sampling

ROOT = Path(__file__).resolve().parent.parent


def load_bench() -> ModuleType:
    return utils.load_bench("inverse")


def test_near_truth_scores_fall_with_the_jitter(renderer_url: str) -> None:
    bench = load_bench()
    client = rendering.RendererClient(url=renderer_url)
    truth = sampling.sample_params(random.Random(7))
    truth["repetitions"] = 60
    truth = sampling.apply_guard(truth)  # as breed's children are: exact copies
    t256 = client.render(truth, 256)
    rng = random.Random(0)
    exact = bench.jittered_scores(client, truth, t256, rng, rel=0.0, draws=1)
    near = bench.jittered_scores(client, truth, t256, rng, rel=0.02)
    far = bench.jittered_scores(client, truth, t256, rng, rel=0.3)
    client.close()
    assert exact["ncc"] > 0.999 and exact["f1"] > 0.999
    assert {"ncc", "f1", "ssim", "psnr", "picture", "same"} <= set(near)
    assert exact["ncc"] >= near["ncc"] > far["ncc"]


def test_the_colour_bench_writes_its_table_and_sheet(tmp_path: Path) -> None:
    """bench/colour.py --quick (as make bench runs it) on the shipped rows writes a
    table with both variants from both starts, and the errors are finite."""
    bench = utils.load_bench("colour")
    out, sheet = tmp_path / "colour.md", tmp_path / "colour.png"
    args = bench.parse_args(
        ["--quick", "--n", "3", "--out", str(out), "--sheet", str(sheet)]
    )
    res = bench.main(args)
    assert len(res["results"]) == 2 * len(bench.VARIANTS)
    assert all(len(v) == 3 for v in res["results"].values())
    text = out.read_text()
    assert text.count("| grey |") == len(bench.VARIANTS) == text.count("| as-is |")
    assert "python bench/colour.py --quick" in text


def test_the_bench_counts_where_the_runner_up_took_over() -> None:
    """The table's runner-up line counts the targets where it was descended, where
    it took over, and where that made the whole structure right or wrong (from the
    structures' own structure hits); rows without the record are left out."""
    bench = load_bench()

    def row(runner: int | None, over: bool, hits: tuple[int, int]) -> dict:
        fits = [{"s_all": float(h)} for h in hits]
        return {"structures": fits, "chosen": 0, "runner_up": runner, "took_over": over}

    rows = {
        ("held-out", "pipeline-twin", 500): [
            row(1, True, (0, 1)),  # took over, and the structure came right
            row(1, True, (1, 0)),  # took over, and it went wrong
            row(1, True, (0, 0)),
            row(1, False, (0, 1)),
            row(None, False, (1, 0)),  # one structure only: none descended
            {"ncc": 0.5},  # a row made before the record
        ]
    }
    (line,) = bench.runner_up_lines(rows, "held-out", ["pipeline-twin"], [500])
    assert "on 4 of 5 targets and took over on 3" in line
    assert "right where it was wrong on 1, wrong where it was right on 1" in line
    assert bench.runner_up_lines(rows, "refs", ["pipeline-twin"], [500]) == []


def test_the_table_carries_the_count_by_eye_where_one_was_given() -> None:
    """--by-eye METHOD@BUDGET/GROUP=N puts "N of n" in the group's row; a group
    nobody counted reads "–"; an entry of another shape is refused with its text."""
    bench = load_bench()
    keys = ("ncc", "f1", "picture", "same", "ssim", "psnr", "renders", "seconds")
    row = dict.fromkeys(keys, 0.5)
    rows = {
        ("held-out", "pipeline-twin", 500): [row, row, row],
        ("refs", "pipeline-twin", 500): [row],
    }
    eye = bench.parse_by_eye(["pipeline-twin@500/held-out=2"])
    table = bench.format_table(rows, ["pipeline-twin"], [500], eye)
    held_out, refs = table.split("**refs**")
    assert "| 50% | 2 of 3 |" in held_out
    assert "| 50% | – |" in refs
    with pytest.raises(SystemExit, match="held-out=2"):
        bench.parse_by_eye(["held-out=2"])
