"""The search's budget: real renders (`Evaluator`) and wall seconds (`Clock`).

Every stage of the search asks both before it spends: `Evaluator.left` renders and
`Clock.left()` seconds. Once the evaluator answers to a clock (`answer_to`) it renders
in waves of `workers` and starts none past the clock's limit, so a search ends within
its limit plus one wave of renders however slow the renderer is."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from art_explorer.predict.loss import ImageLoss
from art_explorer.scene import rendering, schema
from art_explorer.scene.tensors import to_tensor

Log = Callable[[str], None]  # where a stage reports, one line at a time


@dataclass
class Candidate:
    loss: float
    params: dict[str, Any]
    image: np.ndarray | None = None  # (S, S, 3) in [0, 1], the search-size render


class Evaluator:
    """Renders params with the real renderer at `size` and scores them with `loss`,
    counting renders against `budget`. Identical params are cached (free). Keeps the
    best so far and `trace[k]` = best loss after k + 1 renders.

    A batch is rendered concurrently (`workers` requests in flight); calls past the
    budget, or past the limit of the clock it answers to, return inf for what was
    not rendered.
    """

    def __init__(
        self,
        client: Any,  # rendering.RendererClient or anything with its render(params, size)
        loss: ImageLoss,
        size: int = 128,
        budget: int = 500,
        workers: int = 4,
    ) -> None:
        self.client, self.loss, self.size = client, loss, size
        self.budget, self.workers = budget, workers
        self.renders = 0
        self.best: Candidate | None = None
        self.trace: list[float] = []
        self.history: list[tuple[int, Candidate]] = []  # (renders, new best)
        self.seconds: list[float] = []  # seconds since creation at each render
        self.now: Callable[[], float] = time.monotonic
        self.stop: Callable[[], bool] = lambda: False  # past the time limit
        self.wave_seconds: list[float] = []  # how long each wave of renders took
        self._waves = False  # render a batch in waves (a clock with a limit)
        self._t0 = self.now()
        self._cache: dict[str, float] = {}
        self.last_images: dict[str, np.ndarray] = {}  # canonical JSON → render
        # every render by canonical JSON (float16), when keep_images is set
        self.keep_images = False
        self.images: dict[str, np.ndarray] = {}

    @property
    def left(self) -> int:
        return max(0, self.budget - self.renders)

    def close(self) -> None:
        """Nothing is held between calls (each batch renders on its own threads)."""

    def answer_to(self, clock: Clock) -> None:
        """Time renders on `clock` and start no wave of them past its limit."""
        self.now, self.stop = clock.now, clock.over
        self._t0 = clock.began
        self._waves = clock.max_seconds > 0

    def wave_time(self, last: int = 8) -> float:
        """The median seconds of the last `last` waves of renders (0 before any)."""
        return float(np.median(self.wave_seconds[-last:])) if self.wave_seconds else 0.0

    def _render(self, params_list: list[dict[str, Any]]) -> list[np.ndarray]:
        """Renders in waves of `workers`, each timed, until the clock's limit (all
        at once, `workers` in flight, without a limit)."""
        step = self.workers if self._waves else max(1, len(params_list))
        images: list[np.ndarray] = []
        for i in range(0, len(params_list), step):
            if self.stop():
                break
            began = self.now()
            wave = params_list[i : i + step]
            images += rendering.render_many(
                self.client.render, wave, self.size, self.workers
            )
            self.wave_seconds.append(self.now() - began)
        return images

    def __call__(self, params_list: Sequence[dict[str, Any]]) -> list[float]:
        keys = [schema.canonical_json(p) for p in params_list]
        todo: list[int] = []
        seen: set[str] = set()
        for i, k in enumerate(keys):
            if k not in self._cache and k not in seen and len(todo) < self.left:
                todo.append(i)
                seen.add(k)
        images = self._render([params_list[i] for i in todo])
        todo = todo[: len(images)]
        self.last_images = {keys[i]: img for i, img in zip(todo, images, strict=True)}
        if self.keep_images:
            for k, img in self.last_images.items():
                self.images[k] = img.astype(np.float16)
        if todo:
            with torch.no_grad():
                losses = self.loss(to_tensor(np.stack(images))).tolist()
            for i, img, lo in zip(todo, images, losses, strict=True):
                self._cache[keys[i]] = lo
                self.renders += 1
                if self.best is None or lo < self.best.loss:
                    self.best = Candidate(lo, params_list[i], img)
                    self.history.append((self.renders, self.best))
                self.trace.append(self.best.loss)
                self.seconds.append(self.now() - self._t0)
        return [self._cache.get(k, math.inf) for k in keys]

    def render_only(self, params_list: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        """Renders that count against the budget but are not candidates (no loss, no
        best, no cache): probes such as `chain_footprints`. Fewer come back when the
        budget runs out."""
        images = self._render(list(params_list)[: self.left])
        self.renders += len(images)
        return images

    def best_at(self, renders: int) -> Candidate | None:
        """The best candidate after the first `renders` renders (None before any)."""
        found = None
        for n, cand in self.history:
            if n > renders:
                break
            found = cand
        return found


class Clock:
    """The search's wall time: `max_seconds` from its creation (0: no limit), less
    `reserve` seconds kept for the last stages (post-passes, colours, brightness:
    about 20 renders), which stop only at the limit itself (`over`). `now`: the time
    source (a test's stand-in for a slow machine passes its own)."""

    def __init__(
        self,
        max_seconds: float,
        reserve: float = 0.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_seconds, self.reserve, self.now = max_seconds, reserve, now
        self.began = now()

    def elapsed(self) -> float:
        return self.now() - self.began

    def over(self) -> bool:
        """Past max_seconds itself (the reserve spent too): nothing more starts."""
        return self.max_seconds > 0 and self.elapsed() >= self.max_seconds

    def left(self) -> float:
        """Seconds before the stages that answer to the clock must stop (inf
        without a limit; negative once past it)."""
        if self.max_seconds <= 0:
            return math.inf
        return self.max_seconds - self.elapsed() - self.reserve

    def expired(self) -> bool:
        return self.left() <= 0

    def fraction(self, planned: float) -> float:
        """The share of `planned` seconds that fits in what is left, at most 1
        (negative once past the limit)."""
        return min(1.0, self.left() / max(1e-9, planned))

    def fit(self, seconds: float, shortest: float) -> float:
        """`seconds`, or what is left of them; 0 when cut below `shortest`."""
        s = min(seconds, self.left())
        return 0.0 if s < seconds and s < shortest else s
