"""The knobs of predict's search (`PipelineOptions`) and what it returns (`InverseResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from art_explorer.predict.budget import Candidate


@dataclass
class Stage:
    """One pipeline stage as logged: its best loss, renders used, seconds."""

    name: str
    loss: float
    renders: int
    seconds: float
    params: dict[str, Any] | None = None


@dataclass
class PipelineOptions:
    """Knobs of `pipeline.invert` (defaults measured in bench/inverse.py). Each field
    is also a flag of predict.py (art_explorer.cli)."""

    n_retrieve: int = 0
    """nearest training images rendered as starts (0: 8%% of the budget, 8-40)"""
    n_register: int = 0
    """nearest training images aligned first (0: 2 × n_retrieve)"""
    register: bool = True
    """fit Scene rotation/scale/position of the retrieved starts on pixels"""
    n_random: int = 8
    """random starts when there is neither model nor data"""
    n_screen: int = 3
    """inverse-model configurations given a short CMA-ES run each (without the
    search over structures)"""
    screen_share: float = 0.2
    """share of the budget for those runs"""
    moves: bool = True
    """try every single discrete change of the best (about 30 renders)"""
    move_rounds: int = 2
    """rounds of moves, repeated while a round finds something better"""
    structures: int = 8
    """the inverse model's top structures fitted (0: its guess and alternatives
    screened instead)"""
    structure_share: float = 0.5
    """share of the budget for fitting the structures"""
    structure_prior: float = 0.0
    """weight of the model's log-probability of a structure beside its fit's picture
    score when choosing one (0: the score alone; docs/decisions.md)"""
    gd_steps: int = 300
    """Adam steps through the forward model (0: no gradient descent, neither through
    the twin)"""
    gd_lr: float = 0.02
    """Adam's learning rate through the forward model"""
    twin_seconds: float = 10.0
    """time for the twin's fine descent, s (when the renderer is the bundled one)"""
    twin_wide_seconds: float = 8.0
    """time for the twin's wide descent before it, s (0: none)"""
    structure_wide_seconds: float = field(
        default=3.0, metadata={"flags": ("--twin-structure-seconds",)}
    )
    """time for a wide twin descent of each structure's fit before the choice, s
    (0: none; side by side on twin_workers)"""
    finalists: int = 4
    """with the twin: the structures scoring best after those fits get a longer wide
    + fine descent each, and the choice is made again among them (0 or 1: none)"""
    finalist_seconds: float = field(
        default=3.0, metadata={"flags": ("--twin-finalist-seconds",)}
    )
    """time for each finalist's wide + fine twin descent (50/50), s (0: none)"""
    alternates: bool = True
    """with the twin on two or more workers: the runner-up finalist gets the twin's
    main descent beside the chosen one, on another worker, and goes on in its place
    when it then draws the target better by the picture score"""
    twin_workers: int = 0
    """processes the twin's descents of different starts run on side by side (0: one
    per core, up to 4; 1: this process, one after another)"""
    finalist_other_geometry: bool = False
    """when the finalists share one geometry, the last place goes to the best fit of
    another (off: docs/decisions.md)"""
    final_twin_seconds: float = field(
        default=12.0, metadata={"flags": ("--twin-final-seconds",)}
    )
    """time for the twin's wide + fine descents (60/40) again after the polish, s
    (0: none)"""
    max_seconds: float = 58.0
    """the search's wall time, s: every stage stops or is cut to fit when the stages
    before it ran long, e.g. on a slower or busy machine (0: no limit); 60 s per
    target on 2 cores, less what the colour stages after it take"""
    sigma_screen: float = 0.15
    """CMA-ES step size of the screening and structure fits, in [0, 1] units"""
    sigma_polish: float = 0.1
    """CMA-ES step size of the polish (polish cma), in [0, 1] units"""
    polish: Literal["evolve", "cma"] = "evolve"
    """the polish: evolution with sparse mutations, or CMA-ES"""
    color_fit: bool = True
    """fit the colour to the target's hue"""
    color_half: bool = True
    """also try the fitted hue at half strength (colour.color_stages)"""
    layer_color_fit: bool = True
    """layers in their own hues when the target shows several (1 + layers + 1
    renders)"""
    brightness_fit: bool = True
    """match the target's overall gain (a few renders)"""


@dataclass
class InverseResult:
    """What `pipeline.invert` found: the best candidate, the stages as logged, and
    what the bench and predict's sheet report."""

    best: Candidate
    stages: list[Stage]
    guess: dict[str, Any] | None = None  # the start the search grew from
    after_gd: dict[str, Any] | None = None  # the gradient descent's end
    # the structures fitted in the search over structures: (model probability,
    # picture score of the fit, loss, params), in the model's order
    structures: list[tuple[float, float, float, dict[str, Any]]] = field(
        default_factory=list
    )
    chosen: int | None = None  # the index in `structures` the choice made
    runner_up: int | None = None  # the one descended beside it (opts.alternates)
    took_over: bool = False  # whether the runner-up then went on in its place
