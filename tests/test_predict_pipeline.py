"""art_explorer/predict/pipeline.py: the stages of the inverse pipeline."""

from __future__ import annotations

import random
import threading
from typing import Any

import numpy as np
from predict_fixtures import plain

from art_explorer.predict.budget import Candidate, Clock, Evaluator
from art_explorer.predict.loss import ImageLoss, pipeline_loss
from art_explorer.predict.options import PipelineOptions
from art_explorer.predict.pipeline import (
    AFTER_TWIN_SECONDS,
    invert,
    without_post_passes,
)
from art_explorer.scene import rendering, sampling, schema, structure

pytest_plugins = ["predict_fixtures"]  # client, target_params, bank_dir, refs_file


def test_post_passes_go_off_when_the_target_has_none(
    client: rendering.RendererClient, target_params: dict[str, Any]
) -> None:
    """The guess's dither and noise dots barely move the blurred grey loss, so the
    search keeps them; one render with them off decides, and a target drawn without
    them gets a result without them. One drawn with them keeps them."""
    clean = {**plain(target_params), "crtEnabled": False}
    dotted = {**clean, "ditherEnabled": True, "noiseEnabled": True}
    dotted["noiseDensity"] = 1.0
    for target, want_on in ((clean, False), (dotted, True)):
        loss = ImageLoss(client.render(target, 64), (2.0, 8.0), 1.0)
        ev = Evaluator(client, loss, 64, budget=4, workers=2)
        lo = ev([dotted])[0]
        out = without_post_passes(Candidate(lo, dotted), ev)
        assert ev.renders == 2
        assert out.params["ditherEnabled"] is want_on
        assert out.params["noiseEnabled"] is want_on
        ev.close()
    done = Candidate(0.0, clean)
    assert without_post_passes(done, ev) is done  # nothing on: no render


def test_every_stage_answers_to_the_clock() -> None:
    """Past max_seconds the stages that answer to the clock (screening, moves, the
    polish) spend nothing more; the colour stages after them still run. Without a
    limit the same search spends its renders."""
    truth = schema.validate_params(sampling.sample_refs_like(random.Random(5)))
    target = structure.LocalRenderer().render(truth, 48)
    spent = {}
    for limit in (0.0, 1e-3):
        ev = Evaluator(structure.LocalRenderer(), pipeline_loss(target), 48, 60, 1)
        opts = PipelineOptions(max_seconds=limit, layer_color_fit=False)
        res = invert(target, ev, opts=opts, log=lambda line: None)
        spent[limit] = (ev.renders, [s.name for s in res.stages])
    renders, names = spent[0.0]
    assert renders >= 40 and "evolve" in names
    renders, names = spent[1e-3]
    assert "evolve" not in names and "moves" not in names
    assert "colour" in names and "brightness" in names
    assert renders < spent[0.0][0]


class SlowMachine:
    """A stand-in for a slow, busy machine: the bundled scene drawn in-process, each
    render costing `seconds` on a clock of its own (`now`) and the renders of a
    wave taking turns, as on a renderer with no core to spare. Only renders move
    that clock, so what the test measures does not depend on this machine's load."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.t = seconds, 0.0
        self.local = structure.LocalRenderer()
        self.lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def render(self, params: dict[str, Any], size: int) -> np.ndarray:
        img = self.local.render(params, size)
        with self.lock:
            self.t += self.seconds
        return img


def test_a_slow_renderer_ends_within_the_limit_plus_one_wave_of_renders() -> None:
    """Every stage answers to the one clock: on a machine where a render takes 0.5 s
    the search stops at max_seconds plus at most one wave of renders (the stated
    margin: `workers` renders), long before its render budget; the reserve it kept
    at the pace it measured still pays for the colour and brightness renders."""
    truth = schema.validate_params(sampling.sample_refs_like(random.Random(5)))
    target = structure.LocalRenderer().render(truth, 48)
    limit, per_render, workers, budget = 30.0, 0.5, 2, 200
    machine = SlowMachine(per_render)
    ev = Evaluator(machine, pipeline_loss(target), 48, budget, workers)
    clock = Clock(limit, AFTER_TWIN_SECONDS, now=machine.now)
    res = invert(
        target, ev, opts=PipelineOptions(max_seconds=limit), log=lambda line: None,
        clock=clock,
    )  # fmt: skip
    assert clock.elapsed() <= limit + workers * per_render
    assert ev.renders < budget // 2  # the clock ended it, not the renders
    spent = {st.name: st.renders for st in res.stages}
    assert spent.get("colour", 0) > 0 and spent.get("brightness", 0) > 0
    assert res.best.params and np.isfinite(res.best.loss)
