"""The renderer's work bound: the size a request is drawn at so that its CPU time
and memory stay within the stated bound, and the memory all workers share.

The bound (CPU time of one render on this project's 2-core dev machine, and its
working memory above the process's own):

    time    1.5 s up to 1024², 1.5 s per 1024 px of side above (3 s at 2048²)
    memory  384 MB a request (MEMORY_BOUND_MB); 768 MB in flight over all worker
            processes together (SERVER_MEMORY_MB: a render that does not fit
            waits, up to server.MEMORY_WAIT_S, then 503)

Each process holds more than that: its own ~55 MB (Python, numpy, skia) and the
post-passes' cached patterns (up to ~250 MB at 2048²); bench/results/fuzz.md has
the measured peaks.

A request over it is drawn smaller and scaled up (bilinear), never refused: the
drawing bounds itself (scene.lod_size keeps its estimate within
scene.DRAW_BUDGET_US), and here the post-passes, which cost per pixel (the CRT
pass 400-900 ns and ~180 bytes a pixel), set the size the whole picture is drawn at.
Sizes above MAX_DRAW_SIZE are always drawn at MAX_DRAW_SIZE or less. Every scene
up to 1024² but the heaviest, and every one without the CRT pass up to 2048², is
drawn at the asked size; with CRT, 2048² is drawn at 1345 px.
The per-pixel figures were measured with tracemalloc and process time on the dev
machine, the CPU ones at their worst (2048², other work on both cores; the CRT pass
alone at 1024² takes 400 ns a pixel): bench/fuzz.py checks the bound end to end
(bench/results/fuzz.md).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from renderer import scene
from renderer.png import encode_png

MAX_DRAW_SIZE = 2048  # px; larger pictures are drawn at this size and scaled up
MIN_DRAW_FRACTION = 0.25  # never drawn below this share of the asked size
SECONDS_PER_1024 = 1.5  # the time bound: this many CPU-s per 1024 px of side
MEMORY_BOUND_MB = 384  # working memory of one render (2048² with dither: 370 MB)
SERVER_MEMORY_MB = 768  # working memory of the renders in flight, all workers
# Per drawn pixel: (ns of CPU, bytes of working memory at the pass's peak)
BASE_COST = (30.0, 32.0)  # F32 surface, readback, PNG
PASS_COST = {  # the post-passes, by the flag that turns each on
    "ditherEnabled": (85.0, 56.0),
    "crtEnabled": (900.0, 180.0),
    "noiseEnabled": (40.0, 40.0),
}
UPSCALE_COST = (25.0, 14.0)  # per output pixel when drawn smaller: resize + PNG
# The scenes the bound is stated for (tests/test_hostile.py, bench/fuzz.py): 12
# chains × 500 bars whose bands fill the picture (11.9 CPU-s at 2048² before the
# drawing's estimate counted the bands' area), and the post-passes (5.3 CPU-s at
# 2048² with their defaults; 1.6-1.7 GB a worker, four at once, with every one on).
WORST_BARS: dict[str, Any] = {
    "Scalars.repetitions": 500,
    "Scalars.scaleProgression": "additive",
    "Scalars.scaleFactor": 1.2,
    "Element.geometry": "bar",
    "Element.geoWidth": 0.1,
    "Scene.scale": 2,
    **{
        f"Groups.g{i}.g{i}-{k}": v
        for i in range(11)
        for k, v in (
            ("rotation", 0.3 * i),
            ("position", {"x": 0, "y": 0}),
            ("scale", {"x": 2, "y": 2}),
        )
    },
}
DEFAULT_EFFECTS = {"CRT.enabled": True, "Dither.enabled": True, "Noise.enabled": True}
EVERY_EFFECT = DEFAULT_EFFECTS | {"CRT.bloom": 1, "CRT.warp": 0.1}


@dataclass(frozen=True)
class Plan:
    """How one request is drawn: `drawn` px square, scaled up to `size` when
    smaller; `seconds` and `megabytes`: its estimated CPU time and peak working
    memory."""

    size: int
    drawn: int
    seconds: float
    megabytes: float


def time_bound(size: int) -> float:
    """CPU seconds a render of `size` px may take (the stated bound)."""
    return SECONDS_PER_1024 * max(1.0, size / 1024)


def _estimate(
    params: dict[str, Any], size: int, drawn: int, draw_us: float | None = None
) -> tuple[float, float]:
    """(CPU s, MB) of drawing at `drawn` px and scaling up to `size`. The drawing's
    own estimate is `draw_us` µs, else scene.plan_draws' (at most its budget)."""
    passes = [PASS_COST[k] for k in PASS_COST if params[k]]
    ns = BASE_COST[0] + sum(c[0] for c in passes)
    per_px_bytes = BASE_COST[1] + max((c[1] for c in passes), default=0.0)
    if draw_us is None:
        _, fixed, scaled = scene.plan_draws(params, drawn, scene.EXACT_MERGE_PX)
        draw_us = min(fixed + scaled, scene.DRAW_BUDGET_US)
    seconds = draw_us / 1e6 + ns * drawn**2 / 1e9
    mb = per_px_bytes * drawn**2 / 1e6
    if drawn < size:
        seconds += UPSCALE_COST[0] * size**2 / 1e9
        mb = max(mb, UPSCALE_COST[1] * size**2 / 1e6)
    return seconds, mb


def _within(size: int, seconds: float, mb: float) -> bool:
    return seconds <= time_bound(size) and mb <= MEMORY_BOUND_MB


def plan_render(params: dict[str, Any], size: int) -> Plan:
    """The largest drawing size (≤ size, ≤ MAX_DRAW_SIZE) whose estimate is within
    the bound, not below MIN_DRAW_FRACTION of `size`. When even a drawing at its
    whole budget fits (every scene without post-passes up to 2048², typical ones
    with them up to about 1024²), the scene's own estimate is not computed."""
    drawn = min(size, MAX_DRAW_SIZE)
    seconds, mb = _estimate(params, size, drawn, scene.DRAW_BUDGET_US)
    if _within(size, seconds, mb):
        return Plan(size, drawn, seconds, mb)
    floor = max(32, math.ceil(MIN_DRAW_FRACTION * size))
    seconds, mb = _estimate(params, size, drawn)
    while drawn > floor and not _within(size, seconds, mb):
        shrink = min(
            math.sqrt(time_bound(size) / seconds), math.sqrt(MEMORY_BOUND_MB / mb)
        )
        drawn = max(floor, min(drawn - 1, math.floor(drawn * min(shrink, 0.97))))
        seconds, mb = _estimate(params, size, drawn)
    return Plan(size, drawn, seconds, mb)


def render_png(params: dict[str, Any], plan: Plan) -> bytes:
    """PNG bytes of the plan.size² picture, drawn at plan.drawn px."""
    if plan.drawn == plan.size:
        return scene.render_png(params, plan.size)
    small = Image.fromarray(scene.render(params, plan.drawn))
    big = small.resize((plan.size, plan.size), Image.Resampling.BILINEAR)
    del small
    return encode_png(np.asarray(big))


class MemoryPool:
    """Working memory (MB) of the renders in flight, shared by every worker
    process (made before they fork): a render waits until its estimate fits in
    `total`; one render alone always runs. Each worker's reservations are kept in
    its own slot, so that the parent can `forget` a worker that died holding
    some."""

    def __init__(self, total_mb: float, workers: int) -> None:
        self.total = total_mb
        self.cond = multiprocessing.Condition()
        self.held = multiprocessing.RawArray("d", max(1, workers))

    def in_flight(self) -> float:
        with self.cond:
            return float(sum(self.held))

    @contextlib.contextmanager
    def reserve(self, worker: int, mb: float, timeout: float) -> Iterator[None]:
        """Hold `mb` for the block; TimeoutError when it does not fit within
        `timeout` s."""
        with self.cond:

            def fits() -> bool:
                used = sum(self.held)
                return used <= 0 or used + mb <= self.total

            if not self.cond.wait_for(fits, timeout):
                raise TimeoutError(f"{mb:.0f} MB did not fit in {timeout:.0f} s")
            self.held[worker] += mb
        try:
            yield
        finally:
            with self.cond:
                self.held[worker] = max(0.0, self.held[worker] - mb)
                self.cond.notify_all()

    def forget(self, worker: int) -> None:
        """Drop what worker slot `worker` held (it died)."""
        with self.cond:
            self.held[worker] = 0.0
            self.cond.notify_all()
