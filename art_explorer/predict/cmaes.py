"""Continuous search in a SearchSpace: CMA-ES (pycma), and random search as the blind baseline."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from art_explorer.predict.budget import Candidate, Clock, Evaluator
from art_explorer.predict.space import SearchSpace
from art_explorer.scene import sampling


def cma_search(
    space: SearchSpace,
    evaluate: Evaluator,
    x0: np.ndarray,
    sigma0: float,
    budget: int,
    seed: int = 0,
    clock: Clock | None = None,
    popsize: int | None = None,
) -> Candidate:
    """pycma CMA-ES in `space` from x0 for at most `budget` renders, stopping between
    generations when `clock` has expired; each generation is rendered concurrently.
    Returns the best candidate it saw."""
    import cma

    opts: dict[str, Any] = {
        "bounds": space.bounds(),
        "seed": seed + 1,
        "verbose": -9,
        "tolfun": 1e-5,
    }
    if popsize:
        opts["popsize"] = popsize
    best = Candidate(math.inf, space.decode(x0))
    if space.dim == 0:
        best.loss = evaluate([best.params])[0]
        return best
    x0 = np.clip(x0, 0.0, 1.0) if space.dim else x0
    es = cma.CMAEvolutionStrategy(list(x0), sigma0, opts)
    used = 0
    while used < budget and evaluate.left > 0 and not es.stop():
        if clock is not None and clock.expired():
            break
        xs = es.ask()
        n = min(len(xs), budget - used, evaluate.left)
        params = [space.decode(x) for x in xs[:n]]
        losses = evaluate(params)
        used += n
        for p, lo in zip(params, losses, strict=True):
            if lo < best.loss:
                best = Candidate(lo, p)
        if n < len(xs) or not all(map(math.isfinite, losses)):
            break  # the budget or the clock cut the generation short
        es.tell(xs, losses)
    return best


def random_search(
    evaluate: Evaluator, budget: int, rng: random.Random, batch: int = 8
) -> Candidate:
    """Fresh sampling.sample_params draws, the best kept (the blind baseline)."""
    best = Candidate(math.inf, sampling.sample_params(rng))
    while budget > 0 and evaluate.left > 0:
        ps = [sampling.sample_params(rng) for _ in range(min(batch, budget))]
        for p, lo in zip(ps, evaluate(ps), strict=True):
            if lo < best.loss:
                best = Candidate(lo, p)
        budget -= len(ps)
    return best
