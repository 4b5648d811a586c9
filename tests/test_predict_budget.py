"""art_explorer/predict/budget.py: the two budgets every stage asks, renders and seconds."""

from __future__ import annotations

import math
import time

import numpy as np

from art_explorer.predict.budget import Clock, Evaluator
from art_explorer.predict.loss import pipeline_loss
from art_explorer.scene import schema, structure


def test_a_clock_without_a_limit_never_runs_out() -> None:
    clock = Clock(0.0, reserve=1.0)
    assert clock.left() == math.inf and not clock.expired()
    assert clock.fraction(100.0) == 1.0
    assert clock.fit(12.0, 0.5) == 12.0


def test_a_clock_past_its_limit_has_run_out_and_cuts_to_nothing() -> None:
    clock = Clock(1e-3)
    time.sleep(0.01)
    assert clock.left() < 0 and clock.expired()
    assert clock.fraction(10.0) < 0
    assert clock.fit(12.0, 0.5) == 0.0  # cut below the shortest: not run


def test_a_clock_keeps_its_reserve_and_cuts_to_what_is_left() -> None:
    clock = Clock(100.0, reserve=40.0)
    assert 59.0 < clock.left() <= 60.0
    assert 0.29 < clock.fraction(200.0) <= 0.3  # 60 of 200 planned seconds
    assert 59.0 < clock.fit(80.0, 0.5) <= 60.0
    assert clock.fit(10.0, 0.5) == 10.0  # all of it fits


def test_the_evaluator_counts_renders_against_its_budget_and_caches() -> None:
    p = schema.default_params()
    q = {**p, "rotation": 0.5}
    target = structure.LocalRenderer().render(p, 32)
    ev = Evaluator(structure.LocalRenderer(), pipeline_loss(target), 32, 2, 1)
    first = ev([p, p, q])
    assert ev.renders == 2 and ev.left == 0  # the repeat was free
    assert first[0] == first[1] and first[0] < first[2]
    assert ev([{**p, "rotation": 1.0}]) == [math.inf]  # past the budget
    assert ev.best is not None and ev.best.params == p
    assert np.isfinite(ev.trace).all() and len(ev.trace) == 2
