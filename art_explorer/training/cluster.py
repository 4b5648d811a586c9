"""Scaling out: renders on a Ray cluster, training under torchrun (DDP).

Nothing here is imported by default paths: generate.py imports RayRenderPool only
with --ray (and Ray only then), train.py calls init_distributed, which does nothing
unless torchrun set WORLD_SIZE > 1.

Ray: `RayRenderPool` starts `workers` RenderActor actors. Each actor renders over
HTTP against one renderer: one of the given URLs (actor k takes URL k mod len), or,
with none given, the bundled renderer that the actor starts on a free port of its
own node and stops when the pool closes. `submit(i)` samples params i on the driver
and returns a concurrent.futures.Future of (params, bred, PNG bytes), so generate.py
keeps its in-order writing, resuming and stopping unchanged.

torchrun: `init_distributed` joins the process group (NCCL on CUDA, gloo on the
CPU) and says which rank this is; `rank_batches` shards each epoch's shuffled
order by rank with torch's DistributedSampler; `wrap_ddp` wraps the model.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from art_explorer.scene import rendering

ROOT = Path(__file__).resolve().parents[2]
# not shipped to a remote cluster's workers (runtime_env working_dir)
RAY_EXCLUDES = [
    ".git", ".venv", "data", "data-*", "checkpoints", "output", "**/.cache",
    "**/__pycache__", "docs", "bench/results",
]  # fmt: skip


# ----------------------------------------------------------------------------------
# Ray


class RenderActor:
    """One renderer client on a Ray worker: `url` is used as given; None starts
    the bundled renderer (renderer_workers processes) on a free port of this node,
    stopped by close."""

    def __init__(self, url: str | None, renderer_workers: int = 1) -> None:
        self.proc: Any = None
        if url is None:
            port = rendering.free_port()
            # this actor's own process: renderer.server takes its default
            # worker count from here (start_renderer passes no --workers)
            os.environ["RENDERER_WORKERS"] = str(renderer_workers)
            self.proc = rendering.start_renderer(port)
            url = f"http://127.0.0.1:{port}/api/raster"
        self.url = url
        self.client = rendering.RendererClient(url=url)

    def render_png(self, params: dict[str, Any], size: int) -> bytes:
        return self.client.render_png(params, size)

    def where(self) -> str:
        import socket

        return f"{socket.gethostname()} {self.url}"

    def close(self) -> None:
        self.client.close()
        if self.proc is not None:
            rendering.stop_renderer(self.proc)
            self.proc = None


def ray_init(address: str, log: Any = print, num_cpus: int | None = None) -> None:
    """Connect to Ray: "local" starts a Ray on this machine (num_cpus of it), any
    other address ("auto", "HOST:6379", "ray://HOST:10001") joins that cluster and
    ships this folder to its workers (data, checkpoints, .venv excluded)."""
    import ray

    if ray.is_initialized():
        return
    with _keep_signal_handlers():
        _ray_init(address, num_cpus)
    res = ray.cluster_resources()
    log(
        f"ray: {address}, {len(ray.nodes())} node(s), {res.get('CPU', 0):g} CPUs, "
        f"{res.get('GPU', 0):g} GPUs"
    )


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """ray.init installs its own SIGTERM/SIGINT handlers in the driver (they end
    the process at once); put back the caller's, so that generate.py's graceful
    stop (finish in-flight renders, close the shard, say how to resume) still
    works."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            if h is not None:
                signal.signal(s, h)


def _ray_init(address: str, num_cpus: int | None) -> None:
    import ray

    if address == "local":
        ray.init(
            address="local",  # a new Ray here, even where a cluster was started
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
        )
    else:
        ray.init(
            address=address,
            log_to_driver=False,
            runtime_env={"working_dir": str(ROOT), "excludes": RAY_EXCLUDES},
        )


class RayRenderPool:
    """`workers` RenderActor actors on Ray: render(params) → Future[PNG bytes],
    submit(i) → Future[(params, bred, PNG bytes)] of sample i.

    sampler: generate.Sampler (params of sample i, drawn on the driver; None
    when only render() is used); urls:
    renderer URLs to share out (empty: each actor starts the bundled renderer);
    concurrency: requests in flight per actor."""

    def __init__(
        self,
        address: str,
        workers: int,
        sampler: Any,
        size: int,
        urls: list[str] | None = None,
        cpus_per_worker: float = 1.0,
        concurrency: int = 2,
        log: Any = print,
    ) -> None:
        import ray

        self.ray = ray
        self.sampler, self.size = sampler, size
        self.concurrency = concurrency
        self.owns_ray = not ray.is_initialized()
        try:
            ray_init(
                address,
                log,
                num_cpus=max(os.cpu_count() or 1, round(workers * cpus_per_worker)),
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise rendering.RendererError(
                f"could not join Ray at {address!r} ({e}); start a cluster with "
                "`ray start --head`, or give --ray without an address for a local Ray"
            ) from None
        actor = ray.remote(RenderActor).options(
            num_cpus=cpus_per_worker, max_concurrency=concurrency
        )
        urls = urls or []
        procs = max(1, round(cpus_per_worker))
        self.actors: list[Any] = [
            actor.remote(urls[k % len(urls)] if urls else None, procs)
            for k in range(workers)
        ]
        self.next = 0
        try:
            where = ray.get([a.where.remote() for a in self.actors], timeout=180)
        except BaseException as e:
            self.close()
            if isinstance(e, Exception):
                raise rendering.RendererError(
                    f"ray render actors did not start: {_ray_reason(e)}"
                ) from e
            raise
        kind = "given renderers" if urls else "a bundled renderer each"
        log(f"ray: {workers} render actors ({kind}): " + "; ".join(where))

    @property
    def window(self) -> int:
        """Renders to keep in flight: two rounds of every actor's concurrency."""
        return 2 * len(self.actors) * self.concurrency

    def render(self, params: dict[str, Any], size: int | None = None) -> Future[bytes]:
        """PNG bytes of params at size (default: the pool's) from the next actor in
        turn; a failure comes as rendering.RendererError with the renderer's message."""
        actor = self.actors[self.next % len(self.actors)]
        self.next += 1
        ref = actor.render_png.remote(params, size or self.size)
        out: Future[bytes] = Future()

        def done(f: Future[Any]) -> None:
            if out.done():
                return  # cancelled by the caller
            try:
                out.set_result(f.result())
            except BaseException as e:  # the actor's error, or the actor died
                out.set_exception(rendering.RendererError(_ray_reason(e)))

        ref.future().add_done_callback(done)  # type: ignore[attr-defined]
        return out

    def submit(self, index: int) -> Future[tuple[dict[str, Any], bool, bytes]]:
        """Sample `index` (params drawn here by the sampler) → Future of
        (params, bred, PNG bytes), the shape of generate.py's render_one."""
        params, bred = self.sampler(index)
        png = self.render(params)
        out: Future[tuple[dict[str, Any], bool, bytes]] = Future()

        def done(f: Future[bytes]) -> None:
            if out.done():
                return
            e = f.exception()
            if e is not None:
                out.set_exception(e)
            else:
                out.set_result((params, bred, f.result()))

        png.add_done_callback(done)
        return out

    def close(self) -> None:
        """Stop every actor's renderer, then the actors (and a Ray this started)."""
        ray = self.ray
        with contextlib.suppress(Exception):
            ray.get([a.close.remote() for a in self.actors], timeout=30)
        for a in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
        if self.owns_ray:
            ray.shutdown()


def _ray_reason(e: BaseException) -> str:
    """The renderer's own message from a Ray task error, else Ray's first line."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return str(cause)
    text = str(e).strip().splitlines()
    return f"ray render actor failed: {text[-1] if text else type(e).__name__}"


def split_urls(value: str | None) -> list[str]:
    """A comma-separated list of renderer URLs (--renderer-url or RENDERER_URL)."""
    value = value or os.environ.get("RENDERER_URL") or ""
    return [u.strip() for u in value.split(",") if u.strip()]


# ----------------------------------------------------------------------------------
# torchrun / DistributedDataParallel


@dataclass
class Dist:
    """Where this process is in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> Dist:
    """Join torchrun's process group when WORLD_SIZE > 1: NCCL on CUDA (one GPU per
    local rank), gloo on the CPU. Returns Dist(rank, world, local_rank); a single
    process gets Dist() and nothing is initialised."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        # rank 0 validates and writes checkpoints while the others wait: a long
        # timeout, so that a slow validation pass does not end the job
        dist.init_process_group(
            "nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=60)
        )
    return Dist(rank, world, local)


def device_for(dist: Dist, device: str | None) -> str | None:
    """cuda:LOCAL_RANK for a distributed CUDA run, else `device` unchanged."""
    import torch

    if dist.world > 1 and torch.cuda.is_available() and device in (None, "cuda"):
        return f"cuda:{dist.local_rank}"
    return device


def wrap_ddp(net: Any, dist: Dist, device: Any, find_unused: bool = False) -> Any:
    """DistributedDataParallel(net) in a distributed run, else net. find_unused:
    some parameters get no gradient in some steps (a frozen backbone)."""
    if dist.world <= 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if getattr(device, "type", "cpu") == "cuda" else None
    return DistributedDataParallel(
        net, device_ids=ids, find_unused_parameters=find_unused
    )


def rank_batches(
    n: int, batch_size: int, dist: Dist, seed: int, epoch: int
) -> list[Any]:
    """This rank's index batches of one epoch: DistributedSampler's shuffled share
    (n // world items, the same permutation on every rank) cut into
    batch_size // world batches, so that the global batch stays batch_size and an
    epoch has as many steps as in one process; the last short batch is dropped."""
    import torch
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(n),  # type: ignore[arg-type]
        num_replicas=dist.world,
        rank=dist.rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    sampler.set_epoch(epoch)
    order = torch.tensor(list(sampler), dtype=torch.long)
    local = max(1, batch_size // dist.world)
    stop = len(order) if len(order) <= local else len(order) - len(order) % local
    return [order[i : i + local] for i in range(0, stop, local)]


def all_sum(values: list[float], dist: Dist) -> list[float]:
    """Sum of `values` over all ranks (unchanged in one process)."""
    if dist.world <= 1:
        return values
    import torch
    import torch.distributed as tdist

    backend = tdist.get_backend()
    dev = f"cuda:{dist.local_rank}" if backend == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    tdist.all_reduce(t)
    return t.tolist()


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()


def finish_distributed(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()
