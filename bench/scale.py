"""Benchmark: scaling out. Generation on Ray with 1 and 2 render actors, training with
1 and 2 processes (torchrun, DDP), and a sized plan for a 1M-sample round.

    python bench/scale.py            # ~3-5 minutes on 2 cores
    python bench/scale.py --quick    # ~2 minutes (CI)

Generation rows run generate.main itself (sampling, the actors' HTTP renders, the
shard writes) on a local Ray started once; the steady rate counts the samples
written from the first write to the last, so that the actors' start (a bundled
renderer each) does not count. Per-core render cost is the CPU time
of renderer.scene.render_png in this process (load-independent). Training rows run
train.py's forward stage (cpu profile) on shards from generate.py, one process with
one thread against `torchrun --nproc_per_node 2` with one thread each, and read the
last epoch's samples/s from the checkpoint sidecar. Writes bench/results/scale.md.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import generate
from art_explorer import atomic, cli
from art_explorer.data import shards
from art_explorer.scene import rendering
from art_explorer.training import loader

ROOT = Path(__file__).resolve().parent.parent

# bench/results/models.md, "GPU check": the gpu profile's forward model (10.6M
# parameters, 256², batch 32, bf16 + torch.compile) trained at 158-165 samples/s on
# one H200 once compiled. The plan below uses the lower figure.
GPU_FORWARD_SAMPLES_S = 158.0
GPU_FORWARD_EPOCHS = 20  # config.GPU.forward.epochs
DDP_EFFICIENCY_8GPU = 0.9  # assumed for 8 GPUs in one node (NVLink all-reduce)


@dataclass
class Args:
    """Options of bench/scale.py."""

    quick: bool = False
    """smaller rows (CI)"""
    n: int | None = None
    """images per generation row (None: 600; --quick: 200)"""
    size: int = 256
    """render size in px"""
    train_n: int | None = None
    """training samples (None: 480; --quick: 256)"""
    train_size: int = 64
    """training resolution px"""
    repeat: int | None = None
    """runs of each row, interleaved, the fastest kept (None: 2; --quick: 1)"""
    out: str = "bench/results/scale.md"
    """markdown results"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


def time_generate(argv: list[str]) -> dict[str, float]:
    """generate.main(argv), output silenced: its wall time, and the steady rate from
    the first written sample to the last (the actors' and renderers' start and the
    first render excluded), timed by wrapping PairWriter.add."""
    args = generate.parse_args(argv)
    stamps: list[float] = []
    add = generate.PairWriter.add

    def timed_add(self: Any, *a: Any) -> None:
        add(self, *a)
        stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    generate.PairWriter.add = timed_add  # type: ignore[method-assign]
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            written = generate.main(args)
    finally:
        generate.PairWriter.add = add  # type: ignore[method-assign]
    wall = time.perf_counter() - t0
    assert written == args.n, f"wrote {written} of {args.n}"
    rate = (len(stamps) - 1) / max(1e-9, stamps[-1] - stamps[0])
    return {"n": args.n, "seconds": wall, "start": stamps[0] - t0, "rate": rate}


def render_cpu_ms(n: int, size: int) -> tuple[float, float]:
    """(mean, p50) CPU ms per render_png of generate.py's default samples."""
    from renderer.scene import render_png

    sampler = generate.make_sampler(generate.parse_args([]), log=lambda _m: None)
    ms = []
    for i in range(n):
        p, _ = sampler(i)
        t0 = time.process_time()
        render_png(p, size)
        ms.append(1000 * (time.process_time() - t0))
    ms.sort()
    return sum(ms) / len(ms), ms[len(ms) // 2]


def train_rate(data: Path, out: Path, procs: int, size: int) -> dict[str, Any]:
    """Samples/s of the last of 2 forward epochs with `procs` processes (1 thread
    each); the sidecar's history is the source."""
    flags = [
        "--stage", "forward", "--data", str(data), "--size", str(size),
        "--profile", "cpu", "--epochs", "2", "--batch-size", "32",
        "--out", str(out), "--threads", "1", "--perceptual", "sqrt-ms-l1",
    ]  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, "train.py", *flags]
    else:
        torchrun = str(Path(sys.executable).parent / "torchrun")
        cmd = [torchrun, "--nproc_per_node", str(procs)]
        cmd += ["--master_port", str(rendering.free_port()), "train.py", *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        )
    side = json.loads(out.with_name(out.name + "-last.json").read_text())
    last = side["history"][-1]
    return {
        "procs": procs,
        "samples_s": float(last["samples_per_s"]),
        "val_loss": float(last["val_loss"]),
        "ncc": float(last["ncc"]),
        "wall": wall,
    }


def best(old: dict[str, Any] | None, new: dict[str, Any], key: str) -> dict[str, Any]:
    """The faster of two runs of a row (the one less slowed by other work)."""
    return new if old is None or new[key] > old[key] else old


def main(args: Args) -> dict[str, Any]:
    import ray

    n = args.n or (200 if args.quick else 600)
    args.repeat = args.repeat or (1 if args.quick else 2)
    train_n = args.train_n or (256 if args.quick else 480)
    res: dict[str, Any] = {"n": n, "train_n": train_n}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        # generation on Ray, local, 2 CPUs: 1 and 2 actors with 1 renderer process
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False,
                 log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})  # fmt: skip
        res["ray_start"] = time.perf_counter() - t0
        common = ["--size", str(args.size), "--seed", "1", "--no-sheet", "--shards"]
        try:
            for k in range(args.repeat):  # interleaved; the best of each kept
                for w in (1, 2):
                    flags = [*common, "--ray", "local", "--ray-workers", str(w)]
                    out = ["--n", str(n), "--out", str(tmp / f"ray{w}-{k}")]
                    got = time_generate([*out, *flags])
                    print(f"ray {w} actor(s): {got}", file=sys.stderr)
                    res[f"ray{w}"] = best(res.get(f"ray{w}"), got, "rate")
        finally:
            ray.shutdown()
        index = shards.read_index(tmp / "ray2-0")
        tar_bytes = sum(
            (tmp / "ray2-0" / s["name"]).stat().st_size for s in index["shards"]
        )
        res["bytes_per_sample"] = tar_bytes / index["samples"]
        # the thread pool against one bundled renderer (2 processes), for reference
        port = rendering.free_port()
        proc = rendering.start_renderer(port)
        url = f"http://127.0.0.1:{port}/api/raster"
        try:
            flags = [*common, "--renderer-url", url, "--no-autostart", "--workers", "2"]
            out = ["--n", str(n), "--out", str(tmp / "threads")]
            res["threads"] = time_generate([*out, *flags])
            # training data: shards at the training size
            data = tmp / "train-shards"
            time_generate([
                "--n", str(train_n), "--out", str(data), "--size",
                str(args.train_size), "--seed", "2", "--no-sheet", "--shards",
                "--renderer-url", url, "--no-autostart",
            ])  # fmt: skip
        finally:
            rendering.stop_renderer(proc)
        res["cpu_ms"], res["cpu_ms_p50"] = render_cpu_ms(min(n, 300), args.size)
        # decoding shards into training arrays at 256² (the gpu profile's size)
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            arr = loader.load_shards(tmp / "ray2-0", args.size, log=lambda _m: None)
        res["decode_ms"] = 1000 * (time.perf_counter() - t0) / len(arr["names"])
        for k in range(args.repeat):
            for procs in (1, 2):
                got = train_rate(
                    data, tmp / f"ck{procs}-{k}" / "forward", procs, args.train_size
                )
                print(f"train {procs} process(es): {got}", file=sys.stderr)
                res[f"train{procs}"] = best(res.get(f"train{procs}"), got, "samples_s")
    write_report(args, res)
    return res


def plan(args: Args, r: dict[str, Any]) -> dict[str, float]:
    """The figures of a 1M-sample round at 256² on 32 renderer CPUs and 8 GPUs, from
    the measured rates (r) and the constants above."""
    N, cpus, gpus = 1_000_000, 32, 8
    core_rate = 1000 / r["cpu_ms"]  # renders per CPU-second (no HTTP)
    per_worker = r["ray1"]["rate"]  # one actor, its renderer, HTTP, shard writes
    gpu_rate = gpus * GPU_FORWARD_SAMPLES_S * DDP_EFFICIENCY_8GPU
    epoch_s = N / gpu_rate
    return {
        "N": N,
        "cpus": cpus,
        "core_rate": core_rate,
        "per_worker": per_worker,
        "render_s_ideal": N / (cpus * core_rate),
        "render_s_measured": N / (cpus * per_worker),
        "store_gb": N * r["bytes_per_sample"] / 1e9,
        "gpu_rate": gpu_rate,
        "epoch_s": epoch_s,
        "train_s": GPU_FORWARD_EPOCHS * epoch_s,
        "ram_gb": N * args.size * args.size * 3 / 1e9,
        "decode_s": N * r["decode_ms"] / 1000,
        "write_mb_s": cpus * per_worker * r["bytes_per_sample"] / 1e6,
        "read_mb_s": gpu_rate * r["bytes_per_sample"] / 1e6,
    }


def generation_lines(args: Args, r: dict[str, Any]) -> list[str]:
    """The report's head and its generation section."""
    cmd = "python bench/scale.py" + (" --quick" if args.quick else "")
    r1, r2, th = r["ray1"]["rate"], r["ray2"]["rate"], r["threads"]["rate"]
    eff = r2 / (2 * r1)
    core_rate = 1000 / r["cpu_ms"]  # renders per CPU-second (no HTTP)
    r_cpu = r["cpu_ms"]
    return [
        "# Scaling out: Ray generation, DDP training, a 1M-sample plan",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (the machine is shared; other work lowers every "
        "rate)",
        f"- command: `{cmd}`",
        "",
        f"## Generation ({args.size}², generate.py → shards, {r['n']} images a row)",
        "",
        "Steady rate: samples written from the first to the last write, so that "
        "starting the actors and their renderers (the 'first write after' column) "
        f"does not count; Ray itself started once, in {r['ray_start']:.1f} s.",
        "",
        "| how | images | seconds | first write after s | steady images/s | per "
        "worker |",
        "|---|---:|---:|---:|---:|---:|",
        f"| thread pool, 2 requests, one bundled renderer (2 processes) | {r['n']} | "
        f"{r['threads']['seconds']:.1f} | {r['threads']['start']:.1f} | {th:.1f} | – |",
        f"| `--ray --ray-workers 1` (1 actor, its renderer 1 process) | {r['n']} | "
        f"{r['ray1']['seconds']:.1f} | {r['ray1']['start']:.1f} | {r1:.1f} | "
        f"{r1:.1f} |",
        f"| `--ray --ray-workers 2` | {r['n']} | {r['ray2']['seconds']:.1f} | "
        f"{r['ray2']['start']:.1f} | {r2:.1f} | {r2 / 2:.1f} |",
        "",
        f"Efficiency per worker with 2 actors: {r2:.1f} / (2 × {r1:.1f}) = "
        f"**{eff:.2f}**"
        + (" (≥ 0.8)" if eff >= 0.8 else " (below 0.8)")
        + f". This machine has {os.cpu_count()} cores for everything: the driver "
        "(sampling, writing shards), the actors and their renderer processes, and "
        "other work. The renderer (CPU rasterising and PNG encoding, "
        f"{r_cpu:.1f} CPU-ms a render) is the bottleneck: one actor with a "
        f"one-process renderer writes {r1:.1f}/s, against {core_rate:.0f}/s that "
        "one core renders in-process, so the rest of a worker's time goes to "
        "HTTP, PNG transfer and the shared cores; a second actor adds what the "
        "second core has left. On a cluster each actor and its renderer get their "
        "own CPUs (`--ray-cpus`). Each row ran "
        f"{args.repeat}× interleaved; the fastest run is shown.",
        "",
        f"Render cost on one core (renderer.scene.render_png, CPU time, {args.size}², "
        f"generate.py's samples): mean {r['cpu_ms']:.1f} ms, median "
        f"{r['cpu_ms_p50']:.1f} ms → {core_rate:.0f} renders per CPU-second. "
        f"Stored: {r['bytes_per_sample'] / 1e3:.1f} kB a sample in the shards "
        "(PNG + JSON + tar headers). Decoding shards into training arrays: "
        f"{r['decode_ms']:.2f} ms a sample at {args.size}².",
        "",
    ]


def training_lines(args: Args, r: dict[str, Any]) -> list[str]:
    """The training section: one row per process count and the efficiency."""
    t1, t2 = r["train1"]["samples_s"], r["train2"]["samples_s"]
    teff = t2 / (2 * t1)
    lines = [
        f"## Training (forward stage, cpu profile, {args.train_size}², "
        f"{r['train_n']} samples from shards, batch 32, 2 epochs, 1 thread a process)",
        "",
        "| processes | samples/s (last epoch) | val loss | val NCC | wall s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k in ("train1", "train2"):
        x = r[k]
        lines.append(
            f"| {x['procs']} | {x['samples_s']:.1f} | {x['val_loss']:.4f} | "
            f"{x['ncc']:.3f} | {x['wall']:.1f} |"
        )
    lines += [
        "",
        f"Efficiency per process: {t2:.1f} / (2 × {t1:.1f}) = **{teff:.2f}**. "
        "DDP over gloo on 2 cores shared with other work: each step all-reduces the "
        "gradients (0.8M parameters), and the other work on the machine changes "
        "between rows"
        + (
            " (a figure above 1 means the one-process row met more of it)"
            if teff > 1
            else ""
        )
        + f"; each row ran {args.repeat}× interleaved, the fastest kept. The "
        "global batch is the same (32 = 2 × 16), so the two runs take the same "
        "steps; the validation loss differs only by the order of samples.",
        "",
    ]
    return lines


def plan_lines(args: Args, r: dict[str, Any]) -> list[str]:
    """The plan for a 1M-sample round and what saturates first."""
    pl = plan(args, r)
    N, cpus, core_rate, per_worker = (
        pl["N"],
        pl["cpus"],
        pl["core_rate"],
        pl["per_worker"],
    )
    render_s_ideal, render_s_measured = pl["render_s_ideal"], pl["render_s_measured"]
    store_gb, gpu_rate, epoch_s = pl["store_gb"], pl["gpu_rate"], pl["epoch_s"]
    train_s, ram_gb, decode_s = pl["train_s"], pl["ram_gb"], pl["decode_s"]
    write_mb_s, read_mb_s = pl["write_mb_s"], pl["read_mb_s"]
    h = 3600
    return [
        "## Plan: a 1M-sample round on 8 GPUs + 32 renderer CPUs",
        "",
        f"Inputs: render cost {r['cpu_ms']:.1f} CPU-ms a sample ({core_rate:.0f}/s "
        f"a core, measured above); one Ray worker's measured rate here, {per_worker:.1f}"
        "/s, including HTTP, PNG and shard writes (pessimistic: a shared machine); "
        f"{r['bytes_per_sample'] / 1e3:.1f} kB a sample; the forward model at "
        f"{GPU_FORWARD_SAMPLES_S:.0f} samples/s on one H200 at 256² (models.md, "
        f"gpu profile); {GPU_FORWARD_EPOCHS} epochs (gpu profile); an assumed DDP "
        f"efficiency of {DDP_EFFICIENCY_8GPU} for 8 GPUs in one node.",
        "",
        "| stage | arithmetic | result |",
        "|---|---|---|",
        f"| render, ideal | 1M / (32 × {core_rate:.0f}/s) | {render_s_ideal / 60:.1f} "
        "min |",
        f"| render, at this machine's per-worker rate | 1M / (32 × {per_worker:.1f}/s)"
        f" | {render_s_measured / 60:.1f} min |",
        f"| shard writes | 32 × {per_worker:.1f}/s × {r['bytes_per_sample'] / 1e3:.1f} "
        f"kB | {write_mb_s:.0f} MB/s |",
        f"| storage | 1M × {r['bytes_per_sample'] / 1e3:.1f} kB | {store_gb:.1f} GB "
        "in 1000 shards |",
        f"| decode into memory (one process) | 1M × {r['decode_ms']:.2f} ms | "
        f"{decode_s / 60:.0f} min |",
        f"| training arrays in memory | 1M × {args.size}² × 3 B | {ram_gb:.0f} GB per "
        "process |",
        f"| forward training, one epoch | 1M / (8 × {GPU_FORWARD_SAMPLES_S:.0f} × "
        f"{DDP_EFFICIENCY_8GPU}) = 1M / {gpu_rate:.0f}/s | {epoch_s / 60:.0f} min |",
        f"| forward training, {GPU_FORWARD_EPOCHS} epochs | {GPU_FORWARD_EPOCHS} × "
        f"{epoch_s / 60:.0f} min | {train_s / h:.1f} h |",
        f"| reading shards while training | {gpu_rate:.0f}/s × "
        f"{r['bytes_per_sample'] / 1e3:.1f} kB | {read_mb_s:.0f} MB/s |",
        "",
        "What saturates first:",
        "",
        f"1. **Memory of the training loader.** train.py decodes every sample into "
        f"memory in each process: {ram_gb:.0f} GB at 256² per process (twice that "
        "at the peak, when the train/validation split copies it), × 8 ranks on "
        "one node. That does not fit; the first change for a 1M round is a "
        "streaming loader in which each rank reads its own shards "
        "(`shards.Samples(folder, rank, world)` is that reader) instead of the "
        "in-memory cache. At 64² (the cpu profile) the same set is "
        f"{N * 64 * 64 * 3 / 1e9:.0f} GB per process and fits. Rank 0 also decodes "
        f"alone before the others start ({decode_s / 60:.0f} min single-threaded), "
        "which a per-rank loader spreads out too.",
        f"2. **The GPUs**, once data streams: {train_s / h:.1f} h of forward "
        f"training against {render_s_measured / 60:.0f} min of rendering; the "
        "inverse stage adds about as much again (its backbone forward + the frozen "
        "forward model's perceptual loss). 32 renderer CPUs keep ahead of 8 GPUs "
        f"by {(cpus * per_worker) / gpu_rate:.1f}× at the measured per-worker rate, "
        "so more renderer CPUs would not shorten the round.",
        f"3. Disk and network are far from limits: {store_gb:.0f} GB in all, "
        f"{write_mb_s:.0f} MB/s written while rendering, {read_mb_s:.0f} MB/s read "
        "per epoch.",
        "",
        "Round: ~"
        f"{(render_s_measured + decode_s) / h + train_s / h:.1f} h end to end "
        f"(render {render_s_measured / 60:.0f} min + decode "
        f"{decode_s / 60:.0f} min + forward {train_s / h:.1f} h), plus the "
        "inverse stage.",
    ]


def write_report(args: Args, r: dict[str, Any]) -> None:
    lines = generation_lines(args, r) + training_lines(args, r) + plan_lines(args, r)
    text = "\n".join(lines) + "\n"
    print(text)
    atomic.atomic_write_text(
        ROOT / args.out if not Path(args.out).is_absolute() else args.out, text
    )


if __name__ == "__main__":
    main(parse_args())
