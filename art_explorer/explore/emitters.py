"""Emitters: where the archive's next candidates come from.

Three kinds, each asked for `batch` solutions per step (pyribs' Scheduler asks them
all and tells them the results):

- ``breed``: crossover of two elites drawn from the archive (sampling.breed, the
  operator today's explore and generate use: uniform crossover, numbers ×U(0.7,
  1.3), categoricals re-drawn with p 0.1), so new pictures mix whole traits of
  pictures already known to be good;
- ``iso-line``: pyribs' IsoLineEmitter (Vassiliades & Mouret 2018): an elite moved
  by small isotropic noise plus a step along the line to another elite, in the
  solution space of explore.solution;
- ``gaussian``: pyribs' GaussianEmitter, an elite plus N(0, σ²) per value: local
  variations, and the one that changes a categorical now and then.

Two more on request (`--emitters`), measured in docs/explore.md:

- ``fresh``: new curated-like draws (sampling.sample_curated_like), pictures of the
  kind people keep that no elite leads to;
- ``cma-me``: pyribs' EvolutionStrategyEmitter with the improvement ranker (CMA-ME,
  Fontaine et al. 2020): CMA-ES from an elite, ranked by how much each child adds
  to the archive (new cells first), restarted from another elite when it stalls. Its
  covariance is not saved: after a reload it starts again from an elite.

None of them keeps state beyond the archive (no CMA-ES covariance), so an archive
reloaded after a kill goes on exactly as well as one that never stopped.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from art_explorer.explore import solution
from art_explorer.scene import sampling

EMITTERS = ("breed", "iso-line", "gaussian")  # the default set
KNOWN = (*EMITTERS, "fresh", "cma-me")
BREED_JITTER = (0.7, 1.3)  # today's explore's jitter
BREED_REDRAW_CAT = 0.1
ISO_SIGMA = 0.02  # solution units ([0, 1] per value)
LINE_SIGMA = 0.2
GAUSS_SIGMA = 0.05
CMA_SIGMA = 0.1


def _base() -> Any:
    from ribs.emitters import EmitterBase

    return EmitterBase


class BreedEmitter(_base()):  # type: ignore[misc]
    """Children of two elites by sampling.breed, as solution vectors."""

    def __init__(self, archive: Any, batch_size: int, seed: int) -> None:
        super().__init__(
            archive,
            solution_dim=solution.SOLUTION_DIM,
            bounds=[(0.0, 1.0)] * solution.SOLUTION_DIM,
            lower_bounds=None,
            upper_bounds=None,
        )
        self.batch_size = batch_size
        self._rng = random.Random(seed)

    def ask(self) -> np.ndarray:
        parents = self.archive.sample_elites(2 * self.batch_size)["solution"]
        out = []
        for k in range(self.batch_size):
            pair = [solution.to_params(parents[2 * k + j]) for j in (0, 1)]
            child = sampling.breed(
                pair,
                self._rng,
                p_two=1.0,
                p_copy=1.0,
                jitter=BREED_JITTER,
                p_redraw_cat=BREED_REDRAW_CAT,
            )
            out.append(solution.to_vector(child))
        return np.stack(out)


class FreshEmitter(_base()):  # type: ignore[misc]
    """New curated-like draws (sampling.sample_curated_like), as solution vectors."""

    def __init__(self, archive: Any, batch_size: int, seed: int) -> None:
        super().__init__(
            archive,
            solution_dim=solution.SOLUTION_DIM,
            bounds=[(0.0, 1.0)] * solution.SOLUTION_DIM,
            lower_bounds=None,
            upper_bounds=None,
        )
        self.batch_size = batch_size
        self._rng = random.Random(seed)

    def ask(self) -> np.ndarray:
        return np.stack(
            [
                solution.to_vector(sampling.sample_curated_like(self._rng))
                for _ in range(self.batch_size)
            ]
        )


def clipped(cls: Any) -> Any:
    """`cls` whose solutions are clipped to [0, 1] as they are asked for. CMA-ES
    with bounds resamples until every value is inside them, which never ends in
    this space (its booleans and categoricals sit at 0 and 1): its values are
    repaired instead, and the archive keeps the repaired ones."""

    class Clipped(cls):  # type: ignore[misc, valid-type]
        def ask(self) -> np.ndarray:
            return np.clip(super().ask(), 0.0, 1.0)

    return Clipped


def create_emitters(
    archive: Any, names: tuple[str, ...] | list[str], batch: int, seed: int
) -> list[Any]:
    """One emitter per name (EMITTERS), each asked for `batch` solutions a step."""
    from ribs.emitters import (
        EvolutionStrategyEmitter,
        GaussianEmitter,
        IsoLineEmitter,
    )

    bounds = [(0.0, 1.0)] * solution.SOLUTION_DIM
    x0 = np.full(solution.SOLUTION_DIM, 0.5)  # unused: the refs seed the archive first
    out: list[Any] = []
    for k, name in enumerate(names):
        s = seed * 1000 + k
        if name == "breed":
            out.append(BreedEmitter(archive, batch, s))
        elif name == "fresh":
            out.append(FreshEmitter(archive, batch, s))
        elif name == "cma-me":
            start = archive.sample_elites(1)["solution"][0]
            out.append(
                clipped(EvolutionStrategyEmitter)(
                    archive,
                    x0=start,
                    sigma0=CMA_SIGMA,
                    ranker="2imp",
                    batch_size=batch,
                    seed=s,
                )
            )
        elif name == "iso-line":
            out.append(
                IsoLineEmitter(
                    archive,
                    iso_sigma=ISO_SIGMA,
                    line_sigma=LINE_SIGMA,
                    x0=x0,
                    bounds=bounds,
                    batch_size=batch,
                    seed=s,
                )
            )
        elif name == "gaussian":
            out.append(
                GaussianEmitter(
                    archive,
                    sigma=GAUSS_SIGMA,
                    x0=x0,
                    bounds=bounds,
                    batch_size=batch,
                    seed=s,
                )
            )
        else:
            raise ValueError(f"unknown emitter {name!r} (one of {', '.join(KNOWN)})")
    return out
