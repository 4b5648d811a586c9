"""art_explorer/predict/colour.py: hue, layer hues and brightness fitted from the target."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from predict_fixtures import plain

from art_explorer.predict import colour
from art_explorer.predict.budget import Candidate, Evaluator
from art_explorer.predict.colour import (
    BRIGHTNESS_FACTORS,
    BRIGHTNESS_LIT_FLOOR,
    COLOR_GAINS,
    HALF_GAINS,
    better_in_color,
    color_error,
    color_stages,
    fit_brightness,
    fit_color,
    fit_layer_colors,
    hue_error,
    mix_colors,
    scale_brightness,
    target_chroma,
)
from art_explorer.predict.loss import ImageLoss, pipeline_loss
from art_explorer.predict.options import PipelineOptions
from art_explorer.scene import rendering, sampling, schema, structure
from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics

pytest_plugins = ["predict_fixtures"]  # client, target_params, bank_dir, refs_file


def test_brightness_fit_dims_a_blown_out_match(
    client: rendering.RendererClient, target_params: dict[str, Any]
) -> None:
    """NCC barely sees gain: the right lines drawn 4× too bright score well on it.
    The brightness fit (3 renders) brings the level back towards the target's."""
    dim = scale_brightness(plain(target_params), 0.25)
    loss = ImageLoss(client.render(dim, 64), (2.0, 8.0), 1.0)
    ev = Evaluator(client, loss, 64, budget=10, workers=2)
    ev([plain(target_params)])
    blown = ev.best
    assert blown is not None and blown.image is not None
    out = fit_brightness(blown, ev)
    assert ev.renders == 1 + len(BRIGHTNESS_FACTORS)
    assert out.image is not None

    def gap(img: np.ndarray) -> float:
        return float(loss.brightness_gap(to_tensor(img[None]))[0])

    assert gap(out.image) < gap(blown.image) / 2
    assert out.params["color"] != blown.params["color"]
    assert float(loss.brightness_gap(loss.target)[0]) < 1e-6
    ev.close()


def test_brightness_fit_never_draws_a_dim_target_black(
    client: rendering.RendererClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blown-out blob of wrong shapes over a target of a few dim lines (t37 of the
    48-draw bench): loss + brightness gap is lowest at 0.3×, which draws nothing. The
    fit keeps a version that still lights BRIGHTNESS_LIT_FLOOR of what the target
    lights; without that floor it would have gone black. (The blob's layers are
    scaled uniformly: drawn as the original instances non-uniform layers, the bench's
    blob fills the picture and no dimming wins.)"""
    case = json.loads(
        (
            Path(__file__).parent / "fixtures" / "dim-target-blown-result.json"
        ).read_text()
    )
    target = client.render(schema.validate_params(case["truth"]), 128)
    pre = schema.validate_params(case["before_brightness"])
    floor = BRIGHTNESS_LIT_FLOOR

    def lit(img: np.ndarray) -> float:
        return float((np.sqrt(img.mean(-1)) > metrics.LIT).mean())

    def fit(floor: float) -> Candidate:
        monkeypatch.setattr(colour, "BRIGHTNESS_LIT_FLOOR", floor)
        loss = pipeline_loss(target)
        ev = Evaluator(client, loss, 128, budget=4, workers=2)
        ev([pre])
        assert ev.best is not None
        out = fit_brightness(ev.best, ev)
        ev.close()
        return out

    black = fit(0.0).image
    assert black is not None and lit(black) < 0.05 * lit(target)
    kept = fit(floor)
    assert kept.image is not None and lit(kept.image) >= floor * lit(target)


def test_colour_fit_finds_the_hue_of_a_rendered_target() -> None:
    """The drawing squares a colour and tone-maps it, so a target's hue taken as the
    colour comes out too deep (a pale blue turns pure blue). The colour fit solves
    for the colour whose drawing shows the target's hue: rendered again, the hue of
    the result matches the target's far better than the naive colour's does."""
    from renderer.scene import render

    base = {"repetitions": 12, "geometry": "ring", "layers": []}
    errors, naive_errors = [], []
    for color in ("#7D99FF", "#C77ED6", "#22FF88", "#FF8020"):
        p = schema.validate_params({**base, "color": color})
        target = render(p, 96).astype(np.float32) / 255
        want = target_chroma(target)
        assert want is not None
        fitted = fit_color({**p, "color": "#FFFFFF"}, target)
        naive = {**p, "color": schema.rgb_to_color(want.tolist())}
        for q, errs in ((fitted, errors), (naive, naive_errors)):
            got = target_chroma(render(q, 96).astype(np.float32) / 255)
            assert got is not None
            errs.append(float(np.abs(got - want).max()))
    assert max(errors) < 0.15, (errors, naive_errors)
    assert np.mean(errors) < np.mean(naive_errors) / 2, (errors, naive_errors)


@pytest.mark.parametrize("moved", [{"scale": 1.3}, {"xStep": 0.3, "yStep": -0.3}])
def test_hue_error_ranks_the_targets_hue_above_grey_where_the_shapes_are_off(
    moved: dict[str, Any],
) -> None:
    """A pale green target and a dimmer result, its chain misplaced or in place: the
    colour error (every pixel) rates the grey result nearer than the same shapes in
    the target's hue, since dimming two channels where the target is brighter costs
    more than it saves; the hue error (only where both are lit) ranks the green
    first, the grey next and a red one last."""
    from renderer.scene import render

    def draw(p: dict[str, Any]) -> np.ndarray:
        return render(schema.validate_params(p), 64).astype(np.float32) / 255

    base = {
        "geometry": "ring", "repetitions": 24, "scaleFactor": 1.06,
        "rotationFactor": 0.02, "stepFactor": 0.3, "xStep": 0.4, "yStep": -0.2,
        "origin": "center", "scale": 1.0, "crtEnabled": False, "layers": [],
        **plain({}),
    }  # fmt: skip
    target = draw({**base, "color": "#A9D08E"})
    for shift in (moved, {}):
        grey = {**base, **shift, "color": "#888888"}
        green = fit_color(grey, target)
        r, g, b = schema.color_to_rgb(green["color"])
        assert g > 1.2 * max(r, b), green["color"]
        red = {**grey, "color": "#AA5555"}
        imgs = [draw(p) for p in (green, grey, red)]
        hue = [hue_error(i, target) for i in imgs]
        assert hue[0] < hue[1] < hue[2], hue
        col = [color_error(i, target) for i in imgs[:2]]
        assert col[1] < col[0], col


def test_colour_change_is_chosen_by_the_colour_picture(
    client: rendering.RendererClient, target_params: dict[str, Any]
) -> None:
    """A green target and the right shapes in white: of the candidates, the hue that
    brings the colour picture nearest wins even where the white's grey loss is lower;
    a candidate that moves the shapes past COLOR_SLACK is refused."""
    green = {**plain(target_params), "crtEnabled": False, "color": "#8DD16F"}
    target = client.render(green, 64)
    white = {**green, "color": "#FFFFFF"}
    loss = ImageLoss(target, (2.0, 8.0), 1.0)
    ev = Evaluator(client, loss, 64, budget=8, workers=2)
    lo = ev([white])[0]
    fitted = fit_color(white, target)
    moved = {**fitted, "position": {"x": 1.5, "y": -1.2}}
    cands = [moved, *(scale_brightness(fitted, g) for g in (1.0, 2.0))]
    out = better_in_color(Candidate(lo, white), cands, target, ev)
    assert out.params in cands[1:], out.params["color"]
    r, g, b = schema.color_to_rgb(out.params["color"])
    assert g > 1.3 * max(r, b)
    ev.close()


def test_layer_hues_come_back_where_the_target_has_several(
    client: rendering.RendererClient, target_params: dict[str, Any]
) -> None:
    """A target whose base chain is white and whose layer is red, started from the
    right shapes in one colour: each chain's footprint (1 + layers renders) claims
    its part of the target, the layer gets a red own colour and the base stays pale,
    and the colour picture comes much nearer the target's. A one-hue target costs
    no more than the footprints and changes nothing."""
    two = plain(target_params)
    two = {**two, "crtEnabled": False, "color": "#FFFFFF"}
    two["layers"] = [{**two["layers"][0], "color": "#FF2020"}]
    target = client.render(two, 64)
    start = {
        **two,
        "layers": [{k: v for k, v in two["layers"][0].items() if k != "color"}],
    }
    loss = ImageLoss(target, (2.0, 8.0), 1.0)
    ev = Evaluator(client, loss, 64, budget=12, workers=2)
    lo = ev([start])[0]
    out = fit_layer_colors(start, target, ev)
    assert out is not None and ev.renders == 1 + 2
    r, g, b = schema.color_to_rgb(out["layers"][0]["color"])
    assert r > 0.5 and r > 2 * max(g, b), out["layers"][0]["color"]
    assert min(schema.color_to_rgb(out["color"])) > 0.6, out["color"]
    best = better_in_color(Candidate(lo, start), [out], target, ev)
    assert best.params == out and best.image is not None
    assert color_error(best.image, target) < 0.5 * color_error(
        client.render(start, 64), target
    )
    one = client.render(start, 64)
    ev = Evaluator(client, ImageLoss(one, (2.0, 8.0), 1.0), 64, 12, 2)
    assert fit_layer_colors(start, one, ev) is None and ev.renders == 2
    ev.close()


def test_the_colour_stage_also_offers_the_fitted_hue_at_half_strength(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """color_stages offers the fitted hue at COLOR_GAINS and, with color_half, the
    colour mixed half and half with the one now at HALF_GAINS; mix_colors mixes the
    element colour and each layer colour both sides have."""
    truth = schema.validate_params(sampling.sample_refs_like(random.Random(1)))
    truth.update(noiseEnabled=False, ditherEnabled=False, crtEnabled=False)
    truth.update(color="#40C060")
    target = structure.LocalRenderer().render(truth, 64)
    start = {**truth, "color": "#A0A0A0"}
    offered: list[list[dict[str, Any]]] = []
    real = better_in_color

    def spy(best: Candidate, cands: list[dict[str, Any]], *a: Any) -> Any:
        offered.append(cands)
        return real(best, cands, *a)

    monkeypatch.setattr(colour, "better_in_color", spy)
    for half in (False, True):
        offered.clear()
        ev = Evaluator(structure.LocalRenderer(), pipeline_loss(target), 64, 40, 1)
        lo = ev([start])[0]
        opts = PipelineOptions(color_half=half, layer_color_fit=False)
        color_stages(Candidate(lo, start), target, ev, opts)
        cands = offered[0]
        assert len(cands) == len(COLOR_GAINS) + half * len(HALF_GAINS)
    fitted = fit_color(start, target)
    want = mix_colors(start, fitted, 0.5)
    assert cands[len(COLOR_GAINS)]["color"] == want["color"]
    a = np.array(schema.color_to_rgb(start["color"]))
    b = np.array(schema.color_to_rgb(fitted["color"]))
    got = np.array(schema.color_to_rgb(want["color"]))
    assert np.allclose(got, (a + b) / 2, atol=1 / 255)
    la = {**start, "layers": [{"color": "#000000"}, {}]}
    lb = {**start, "layers": [{"color": "#FFFFFF"}, {"color": "#FF0000"}]}
    mixed = mix_colors(la, lb, 0.5)["layers"]
    assert mixed[0]["color"] in ("#7F7F7F", "#808080")
    assert mixed[1]["color"] == "#FF0000"  # a side without one: b's
