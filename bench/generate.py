"""Benchmark: data generation throughput (images per second) by client workers.

    python bench/generate.py            # 300 images per row at 256²
    python bench/generate.py --quick    # 60 images per row (CI)

Starts the bundled renderer on a free port, then runs generation.generate (the real
thing: sampling, HTTP, atomic writes of PNG + params) into a temp folder with 1, 2
and 4 concurrent workers. An in-process row (renderer.scene.render_png, no HTTP, one
thread) shows what the HTTP hop and the file writes cost. Prints a markdown table
and writes bench/results/generate.md.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import atomic, cli
from art_explorer.data.generation import GenerateArgs, generate
from art_explorer.scene import rendering, sampling


@dataclass
class Args:
    """Benchmark: data generation throughput (images per second) by client workers."""

    quick: bool = False
    """60 images per row (CI)"""
    n: int | None = None
    """images per row (None: 300, 60 with --quick)"""
    size: int = 256
    """render size in px"""
    workers: list[int] = field(default_factory=lambda: [1, 2, 4])
    """client worker counts to measure"""
    out: str = "bench/results/generate.md"
    """markdown results"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv)


def time_generate(url: str, out: Path, n: int, size: int, workers: int) -> float:
    """Seconds for generate.py's run to add n pairs (its stdout silenced)."""
    args = GenerateArgs(
        n=n,
        out=str(out),
        size=size,
        renderer_url=url,
        workers=workers,
        seed=1,
        autostart=False,
        sheet=False,
    )
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        written = generate(args)
    dt = time.perf_counter() - t0
    assert written == n, f"wrote {written} of {n}"
    return dt


def time_in_process(n: int, size: int) -> float:
    """Seconds to sample and render n images in this process (no HTTP, no files)."""
    from renderer.scene import render_png

    rng = random.Random(1)
    params = [sampling.sample_params(rng) for _ in range(n)]
    t0 = time.perf_counter()
    for p in params:
        render_png(p, size)
    return time.perf_counter() - t0


def main(args: Args) -> list[dict[str, float | str]]:
    n = args.n or (60 if args.quick else 300)
    port = rendering.free_port()
    url = f"http://127.0.0.1:{port}/api/raster"
    proc = rendering.start_renderer(port)
    rows: list[dict[str, float | str]] = []
    try:
        client = rendering.RendererClient(url=url)
        health = client.health() or {}
        client.close()
        server_workers = health.get("workers", "?")
        with tempfile.TemporaryDirectory() as tmp:
            time_generate(url, Path(tmp) / "warmup", 8, args.size, 2)
            for w in args.workers:
                dt = time_generate(url, Path(tmp) / f"w{w}", n, args.size, w)
                rows.append({"how": f"generate.py, {w} worker(s)", "n": n, "s": dt})
                print(f"{w} workers: {n / dt:.1f} images/s", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    dt = time_in_process(n, args.size)
    rows.append(
        {"how": "in-process render_png, 1 thread (no HTTP, no files)", "n": n, "s": dt}
    )

    cmd = "python bench/generate.py" + (" --quick" if args.quick else "")
    lines = [
        "# Data generation throughput",
        "",
        f"{datetime.date.today().isoformat()} · {platform.node() or 'machine'} · "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores · "
        f"Python {platform.python_version()} · load average at the end "
        f"{os.getloadavg()[0]:.1f}",
        "",
        f"Bundled renderer on a free port ({server_workers} server processes), "
        f"{args.size}² PNG, random params (sampling.sample_params), {n} images per row. "
        f"Reproduce: `{cmd}`.",
        "",
        "| how | images | seconds | images/s |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['how']} | {r['n']} | {float(r['s']):.2f} | "
            f"{float(r['n']) / float(r['s']):.1f} |"
        )
    lines += [
        "",
        "Each generate.py row is the whole pipeline step: sampling (with 30% bred "
        "from references/refs.jsonl), one POST /api/raster per image, and the atomic "
        "writes of params JSON + PNG. Other work on the machine lowers the numbers "
        "(see the load average above).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic.atomic_write_text(args.out, text)
    return rows


if __name__ == "__main__":
    main(parse_args())
