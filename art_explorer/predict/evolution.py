"""Evolution with sparse mutations, and the single discrete changes of a configuration.

The picture depends on a few values so sharply (rotationFactor, steps, angles: a 0.01
change of the normalised value already costs 0.1-0.3 NCC) that moving every value at
once, as CMA-ES does, mostly destroys what is right. A mutation here changes one to
three things: a value by a step of random scale (0.003-0.3), a discrete choice, or a
layer added.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from art_explorer.predict.budget import Candidate, Clock, Evaluator
from art_explorer.predict.space import SearchSpace
from art_explorer.scene import sampling, schema


def discrete_neighbours(
    params: dict[str, Any], keep_structure: bool = False
) -> list[dict[str, Any]]:
    """Every params that differs from `params` in one discrete choice: another option
    of a categorical, a flipped boolean, one layer fewer. Choices that cannot change
    the picture (dither type/matrix/grayscale with dither off) are skipped; with
    keep_structure, so are the structure's (structure.STRUCTURE_KEYS, layer count)."""
    from art_explorer.scene import structure

    p = schema.validate_params(params)
    out: list[dict[str, Any]] = []
    dither_only = ("ditherType", "ditherMatrix", "ditherGrayscale")
    for k in (*schema.CAT_KEYS, *schema.BOOL_KEYS):
        if k in dither_only and not p["ditherEnabled"]:
            continue
        if keep_structure and k in structure.STRUCTURE_KEYS:
            continue
        opts = (
            schema.PARAM[k].options if schema.PARAM[k].kind == "cat" else (True, False)
        )
        for o in opts:
            if o != p[k]:
                out.append({**p, k: o})
    for i in range(len(p["layers"]) if not keep_structure else 0):
        out.append({**p, "layers": p["layers"][:i] + p["layers"][i + 1 :]})
    return out


def mutate(
    params: dict[str, Any], rng: random.Random, keep_structure: bool = False
) -> dict[str, Any]:
    """A copy of params with 1-3 sparse changes (see above); with keep_structure,
    no change of the structure (discrete_neighbours)."""
    cur = params
    n = 1 + (rng.random() < 0.4) + (rng.random() < 0.15)
    for _ in range(n):
        r = rng.random()
        if r < 0.2:
            moves = discrete_neighbours(cur, keep_structure)
            cur = rng.choice(moves) if moves else cur
        elif r < 0.25 and len(cur["layers"]) < schema.MAX_LAYERS and not keep_structure:
            cur = {**cur, "layers": [*cur["layers"], sampling.sample_layer(rng)]}
        else:
            sp = SearchSpace.of(cur)
            if sp.dim == 0:
                continue
            x = sp.encode(cur)
            d = rng.randrange(sp.dim)
            x[d] += rng.gauss(0.0, 10 ** rng.uniform(-2.5, -0.5))
            cur = sp.decode(x)
    return cur


def evolve(
    pool: Sequence[Candidate],
    evaluate: Evaluator,
    budget: int,
    rng: random.Random,
    elite: int = 6,
    batch: int = 12,
    p_cross: float = 0.2,
    keep_structure: bool = False,
    clock: Clock | None = None,
) -> Candidate:
    """(μ + λ) evolution from the evaluated candidates in `pool`: each generation,
    `batch` children (sparse mutations of rank-weighted elite parents, or uniform
    crossovers of two) rendered concurrently; the `elite` best survive. Stops when
    `budget` renders are spent, 20 generations render nothing new, or `clock` has
    expired."""
    seen: dict[str, Candidate] = {}
    for c in pool:
        if math.isfinite(c.loss):
            seen.setdefault(schema.canonical_json(c.params), c)
    ranked = sorted(seen.values(), key=lambda c: c.loss)[:elite]
    if not ranked:
        return Candidate(math.inf, {})
    r0 = evaluate.renders
    stale = 0
    while evaluate.renders - r0 < budget and evaluate.left > 0 and stale < 20:
        if clock is not None and clock.expired():
            break
        w = [1.0 / (i + 1) for i in range(len(ranked))]
        kids = []
        for _ in range(min(batch, budget - (evaluate.renders - r0))):
            if len(ranked) > 1 and rng.random() < p_cross and not keep_structure:
                a, b = rng.sample(ranked, 2)
                kid = sampling.breed(
                    [a.params, b.params], rng, p_two=1.0, p_copy=1.0, jitter=(1, 1)
                )
            else:
                parent = rng.choices(ranked, weights=w)[0].params
                kid = mutate(parent, rng, keep_structure)
            kids.append(kid)
        before = evaluate.renders
        losses = evaluate(kids)
        stale = stale + 1 if evaluate.renders == before else 0
        for kid, lo in zip(kids, losses, strict=True):
            key = schema.canonical_json(kid)
            if math.isfinite(lo) and key not in seen:
                seen[key] = Candidate(lo, kid)
                ranked.append(seen[key])
        ranked = sorted(ranked, key=lambda c: c.loss)[:elite]
    return ranked[0]
