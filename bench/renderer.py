"""Benchmark: the bundled renderer over HTTP — latency (p50/p95) and throughput.

    python bench/renderer.py            # full run: both server modes, more requests
    python bench/renderer.py --quick    # CI size: the default server mode only
    python bench/renderer.py --url http://host:3000/api/raster   # a running server

Rows: server mode (pre-forked processes vs one threaded process) × size (256², 1024²)
× params (typical: sampling.sample_params with a fixed seed; worst: 500 repetitions,
5 layers, spiral, dither + noise, and two denser variants) × concurrent clients (1,
4). An in-process row (renderer.scene.render_png, no HTTP) shows the HTTP share.
Prints a markdown table and writes bench/results/renderer.md.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import atomic, cli
from art_explorer.scene import rendering, sampling, schema

ROOT = Path(__file__).resolve().parent.parent


MODES = ("processes", "threads")


@dataclass
class Args:
    """Options of bench/renderer.py."""

    quick: bool = False
    """CI size: fewer requests, one mode"""
    url: str | None = None
    """bench this running server instead"""
    sizes: list[int] = field(default_factory=lambda: [256, 1024])
    """sizes in px"""
    clients: list[int] = field(default_factory=lambda: [1, 4])
    """concurrency"""
    n: int | None = None
    """requests per typical row (None: 120; --quick: 24)"""
    modes: list[str] = field(default_factory=list)
    """server modes: processes (--workers 2), threads (--workers 1); none given:
    both, --quick only processes"""
    out: str = "bench/results/renderer.md"
    """markdown results"""

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise ValueError(
                f"--modes: unknown {' '.join(unknown)} (one of {' '.join(MODES)})"
            )


def parse_args(argv: list[str] | None = None) -> Args:
    description = (__doc__ or "").split("\n\n")[0]
    try:
        return cli.parse(Args, argv, description=description)
    except ValueError as e:
        cli.parser(Args, description).error(str(e))


def typical_params(n: int) -> list[dict[str, Any]]:
    rng = random.Random(0)
    return [sampling.sample_params(rng) for _ in range(n)]


def worst_params() -> list[dict[str, Any]]:
    """The brief's worst case and two denser relatives (each 3000 outlines)."""
    layers = [
        {
            "rotation": 0.3 * i,
            "position": {"x": 0.0, "y": 0.0},
            "scale": {"x": 2.0, "y": 2.0},
        }
        for i in range(5)
    ]
    base = {
        "repetitions": 500,
        "geometry": "spiral",
        "ditherEnabled": True,
        "noiseEnabled": True,
        "noiseDensity": 1.0,
        "ditherBias": 1.0,
        "layers": layers,
    }
    return [
        schema.validate_params({**base, "scaleFactor": 3.0}),
        schema.validate_params(
            {
                **base,
                "scaleFactor": 1.002,
                "geometry": "infinity",
                "geoWidth": 0.1,
                "scale": 1.5,
            }
        ),
        schema.validate_params(
            {
                **base,
                "scaleFactor": 1.0,
                "geoWidth": 0.1,
                "scale": 1.5,
                "origin": "center",
            }
        ),
    ]


@contextmanager
def server(workers: int) -> Iterator[str]:
    """The bundled renderer on a free port with `workers`; yields its raster URL."""
    port = rendering.free_port()
    cmd = [sys.executable, "-m", "renderer.server", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/raster"
    client = rendering.RendererClient(url=url)
    try:
        deadline = time.time() + 30
        while client.health(timeout=0.5) is None:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"renderer with --workers {workers} did not start")
            time.sleep(0.1)
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def run_row(
    url: str, bodies: list[bytes], size: int, clients: int, n: int
) -> dict[str, float]:
    """n POSTs spread over `clients` threads (own keep-alive session each)."""
    import requests

    latencies: list[float] = []
    lock = threading.Lock()
    jobs = iter(range(n))

    def worker() -> None:
        with requests.Session() as s:
            while True:
                with lock:
                    i = next(jobs, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                r = s.post(
                    url,
                    params={"size": size},
                    data=bodies[i % len(bodies)],
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
                with lock:
                    latencies.append(dt)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    return {
        "p50": float(np.median(ms)),
        "p95": float(np.percentile(ms, 95)),
        "rps": n / wall,
    }


def in_process_row(params: list[dict[str, Any]], size: int, n: int) -> dict[str, float]:
    """render_png in this process; also its CPU time, which load on the machine
    inflates far less than wall time."""
    from renderer.scene import render_png

    wall, cpu = [], []
    for i in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        render_png(params[i % len(params)], size)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    a = np.array(wall)
    return {
        "p50": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "rps": 1000 / a.mean(),
        "cpu50": float(np.median(cpu)),
    }


def main(args: Args) -> list[dict[str, Any]]:
    n_typ = args.n or (24 if args.quick else 120)
    n_worst = 6 if args.quick else 18
    typical = typical_params(60)
    worst = worst_params()
    sets = {"typical": typical, "worst": worst}
    bodies = {
        k: [json.dumps(schema.to_prefixed(p)).encode() for p in v]
        for k, v in sets.items()
    }
    modes = args.modes or (["processes"] if args.quick else ["processes", "threads"])
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()

    def record(
        mode: str, size: int, kind: str, clients: int, r: dict[str, float]
    ) -> None:
        row = {"server": mode, "size": size, "params": kind, "clients": clients, **r}
        rows.append(row)
        print(
            f"{mode:>10} {size:>5} {kind:>8} clients={clients}  "
            f"p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms  {r['rps']:6.1f} req/s",
            flush=True,
        )

    for size in args.sizes:
        for kind, params in sets.items():
            n = n_typ if kind == "typical" else n_worst
            record("in-process", size, kind, 1, in_process_row(params, size, n))
    targets = [("given", args.url)] if args.url else [(m, None) for m in modes]
    for mode, url in targets:
        workers = {"processes": 2, "threads": 1}.get(mode, 2)
        ctx = server(workers) if url is None else _given(url)
        with ctx as u:
            for size in args.sizes:
                run_row(u, bodies["typical"], size, 2, 8)  # warm-up
                for kind in sets:
                    n = n_typ if kind == "typical" else n_worst
                    for clients in args.clients:
                        record(
                            mode,
                            size,
                            kind,
                            clients,
                            run_row(u, bodies[kind], size, clients, n),
                        )
    write_results(args, rows, load0, os.getloadavg())
    return rows


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def write_results(
    args: Args, rows: list[dict[str, Any]], load0: Any, load1: Any
) -> None:
    cmd = "python bench/renderer.py" + (" --quick" if args.quick else "")
    lines = [
        "# Bundled renderer: HTTP latency and throughput",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- load average at start / end: {load0[0]:.1f} / {load1[0]:.1f} "
        "(other work on the machine inflates the numbers)",
        f"- command: `{cmd}`",
        "- server modes: `processes` = `--workers 2` (pre-forked processes sharing the "
        "socket, each threaded), `threads` = `--workers 1` (one threaded process); "
        "`in-process` = `renderer.scene.render_png` without HTTP (its CPU time "
        "is the load-independent number)",
        "- params: typical = `sampling.sample_params(random.Random(0))` × 60, cycled; "
        "worst = 500 repetitions × 5 layers, spiral, dither + noise (+ 2 denser variants)",
        "",
        "| server | size | params | clients | p50 ms | p95 ms | req/s | CPU p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['server']} | {r['size']}² | {r['params']} | {r['clients']} | "
            f"{r['p50']:.1f} | {r['p95']:.1f} | {r['rps']:.1f} | "
            + (f"{r['cpu50']:.1f} |" if "cpu50" in r else "– |")
        )
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    atomic.atomic_write_text(args.out, text)


if __name__ == "__main__":
    main(parse_args())
