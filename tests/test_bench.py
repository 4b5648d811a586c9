"""bench/inverse.py's yardstick row, against the real renderer."""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType

import rendering
import sampling
import utils

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
