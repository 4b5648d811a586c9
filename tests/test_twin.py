"""twin.py: the differentiable twin draws what the bundled renderer draws, with
gradients for every continuous value; the progressions it shares with the renderer
give the same numbers on numpy and torch."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from art_explorer.predict.descent import Refusals, twin_descent, twin_refine
from art_explorer.predict.loss import pipeline_loss
from art_explorer.scene import sampling, schema, twin
from art_explorer.scoring import metrics
from renderer import progressions, scene


@pytest.mark.parametrize("kind", schema.SCALE_PROGRESSIONS)
def test_scale_progression_same_on_torch(kind: str) -> None:
    ref = progressions.scale_progression(kind, 1.07, 40)
    t = progressions.scale_progression(
        kind, torch.tensor([[1.07]], dtype=torch.float64), 40
    )
    np.testing.assert_allclose(t.numpy()[0], ref, rtol=1e-12)


def test_other_progressions_same_on_torch() -> None:
    sf = torch.tensor([[0.93]], dtype=torch.float64)
    for kind in schema.ROTATION_PROGRESSIONS:
        ref = progressions.rotation_progression(kind, 0.3, 30)
        got = progressions.rotation_progression(kind, sf * 0 + 0.3, 30)
        np.testing.assert_allclose(got.numpy()[0], ref, rtol=1e-12)
    for kind in schema.ALPHA_PROGRESSIONS:
        ref = progressions.alpha_progression(kind, 0.4, 30)
        got = progressions.alpha_progression(kind, sf * 0 + 0.4, 30)
        np.testing.assert_allclose(got.numpy()[0], ref, rtol=1e-12)
    s_np = progressions.scale_progression("exponential", 0.93, 30)
    s_t = progressions.scale_progression("exponential", sf, 30)
    for kind in schema.POSITION_PROGRESSIONS:
        for origin in schema.ORIGINS:
            ref = progressions.offset_progression(
                kind, s_np, 0.5, -1.0, True, origin, 0.3
            )
            got = progressions.offset_progression(
                kind, s_t, sf * 0 + 0.5, sf * 0 - 1.0, True, origin, sf * 0 + 0.3
            )
            np.testing.assert_allclose(got.numpy()[0], ref, rtol=1e-12, atol=1e-12)


def _plain(p: dict) -> dict:
    return {**p, "noiseEnabled": False, "ditherEnabled": False, "crtEnabled": False}


def test_values_round_trip() -> None:
    p = _plain(sampling.sample_params(random.Random(5)))
    struct = twin.structure_of(p)
    back = twin.params_of(struct, twin.values_of([p], struct))
    assert schema.canonical_json(back) == schema.canonical_json(p)


def test_twin_matches_the_renderer_on_held_out_draws() -> None:
    rng = random.Random(99)
    scores = []
    while len(scores) < 16:
        p = _plain(sampling.sample_params(rng))
        ref = scene.render(p, 128).astype(np.float64) / 255
        if ref.max() < 1 / 255:
            continue  # black: nothing to compare
        scores.append(metrics.ncc(twin.render_params(p, 128), ref, 1.0))
    a = np.array(scores)
    assert np.median(a) >= 0.95, a
    assert (a >= 0.9).mean() >= 0.85, a


def test_gradients_reach_every_continuous_value() -> None:
    p = _plain(schema.default_params())
    p["layers"][0].update(
        {"scaleFactor": 1.02, "alphaFactor": 0.6, "geoWidth": 0.05, "color": "#88CCFF"}
    )
    p["layers"][0].update({"startAngle": 0.3, "stepFactor": 0.2, "rotationFactor": 0.1})
    p["gradientRange"] = [0.1, 0.9]
    p["xStep"], p["yStep"] = 0.3, -0.2
    struct = twin.structure_of(p)
    values = {
        k: v.clone().requires_grad_(True)
        for k, v in twin.values_of([p], struct).items()
    }
    img = twin.render(struct, values, 64)
    assert img.shape == (1, 3, 64, 64) and float(img.detach().max()) <= 1.0
    target = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ((img - target) ** 2).mean().backward()
    for name, v in values.items():
        assert v.grad is not None and torch.isfinite(v.grad).all(), name
        assert float(v.grad.abs().sum()) > 0, name


def test_batch_renders_each_variant() -> None:
    p = _plain(schema.default_params())
    q = {**p, "rotation": 0.5}
    struct = twin.structure_of(p)
    both = twin.render(struct, twin.values_of([p, q], struct), 64)
    one = twin.render(struct, twin.values_of([q], struct), 64)
    # the batch shares its cuts, levels of detail and splat windows (the finest any
    # variant needs): close, not equal; under one 8-bit level
    torch.testing.assert_close(both[1], one[0], atol=1 / 255, rtol=0)
    assert float((both[0] - both[1]).abs().max()) > 0.05


def test_levels_of_detail_stay_on_the_curve() -> None:
    for name in schema.GEOMETRIES:
        starts, vectors, level, fit = twin._levels(name)
        assert level[0] == 0 and fit[0] == float("inf")
        assert list(fit) == sorted(fit, reverse=True), name  # coarser: smaller only
        pts = twin._outline(name)
        for j in range(len(fit)):
            a, d = starts[level == j], vectors[level == j]
            # every level runs from the outline's first point to its last
            np.testing.assert_allclose(a[0], pts[0], atol=1e-12)
            np.testing.assert_allclose(a[-1] + d[-1], pts[-1], atol=1e-9)


def test_descent_from_a_perturbed_start_reaches_the_target() -> None:
    truth = _plain(schema.default_params())
    truth["repetitions"] = 20
    rng = random.Random(4)
    start = sampling.breed([truth], rng, p_two=0, p_copy=1, jitter=(0.9, 1.1))
    target = scene.render(truth, 128).astype(np.float64) / 255
    t256 = scene.render(truth, 256).astype(np.float64) / 255
    struct = twin.structure_of(start)
    # steps, not seconds, bound it: the same result on a busy machine
    values, loss = twin.descend(
        struct,
        twin.values_of([start], struct),
        None,
        seconds=600,
        steps=80,
        target=target,
    )
    found = twin.params_of(struct, values)
    before = metrics.ncc(scene.render(start, 256) / 255, t256, 1.0)
    after = metrics.ncc(scene.render(found, 256) / 255, t256, 1.0)
    assert after > before + 0.1 and after >= 0.9, (before, after)
    assert float(loss[0]) < 0.1


def _chain_of_six() -> dict:
    """Six rounded rectangles in a row, far apart: a chain whose step a search can
    get wrong in length and direction."""
    truth = _plain(schema.default_params())
    truth.update(repetitions=6, stepFactor=0.5, xStep=1.4, yStep=0.0, layers=[])
    truth.update(geometry="roundedRect", scale=1.2)
    return truth


def test_wide_descent_moves_a_misplaced_chain_where_the_fine_one_stalls() -> None:
    """A chain of six elements with its step off in length and direction (what a
    short search leaves): the wide descent (twin.WIDE_SCHEDULE, WIDE_LR) lays it over
    the target's; the fine one, given as many steps, stops in the start's valley."""
    truth = _chain_of_six()
    start = {**truth, "stepFactor": 0.35, "xStep": 1.1, "yStep": 0.4}
    t256 = scene.render(truth, 256).astype(np.float64) / 255
    struct = twin.structure_of(start)
    found = []
    for wide in (False, True):
        values, _ = twin.descend(
            struct,
            twin.values_of([start], struct),
            None,
            seconds=600,
            steps=200,
            target=t256,
            schedule=twin.WIDE_SCHEDULE if wide else None,
            ncc_lr=twin.WIDE_LR if wide else twin.NCC_LR,
        )
        img = scene.render(twin.params_of(struct, values), 256) / 255
        found.append(metrics.ncc(img, t256, 1.0))
    before = metrics.ncc(scene.render(start, 256) / 255, t256, 1.0)
    assert before < 0.5 and found[0] < 0.8, (before, found)
    assert found[1] >= 0.9, (before, found)


def test_wide_descent_keeps_the_colours() -> None:
    """With keep_colors (what the wide descent asks for) the colours of the base and
    of a layer that sets its own stay as they start; the rest moves."""
    truth = _plain(schema.default_params())
    truth.update(repetitions=6, stepFactor=0.5, xStep=1.4, yStep=0.0)
    truth.update(color="#7AE461", layers=[{**truth["layers"][0], "color": "#E68A05"}])
    start = {**truth, "stepFactor": 0.35, "color": "#3060A0"}
    start["layers"] = [{**truth["layers"][0], "color": "#40C0C0"}]
    t256 = scene.render(truth, 256).astype(np.float64) / 255
    struct = twin.structure_of(start)
    v0 = twin.values_of([start], struct)
    values, _ = twin.descend(
        struct,
        v0,
        None,
        seconds=600,
        steps=40,
        target=t256,
        schedule=twin.WIDE_SCHEDULE,
        ncc_lr=twin.WIDE_LR,
        keep_colors=True,
    )
    names = [n for n in v0 if ".color." in f".{n}"]
    assert len(names) == 6, names
    for n in names:
        assert float(values[n][0]) == float(v0[n][0]), n
    assert float(values["stepFactor"][0]) != float(v0["stepFactor"][0])


def test_a_picture_too_big_to_draw_is_refused_and_the_descent_keeps_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A picture whose splats would take more than twin.MAX_BYTES raises TooBig
    naming the memory (a wide descent that blew the elements up ran a benchmark out
    of memory); the search's descent then leaves its start as it is, and counts the
    refusal (in the caller's Refusals, which the benchmark reports); a descent whose
    stage is refused returns the count (Descent.refused)."""
    from art_explorer.scene.twin import canvas

    p = _plain(schema.default_params())
    p.update(repetitions=40, layers=[])
    twin.render_params(p, 64)  # fits under the real limit
    struct = twin.structure_of(p)
    start = twin.values_of([p], struct)
    target = scene.render(p, 64).astype(np.float32) / 255
    result = twin.descend(struct, start, None, seconds=2.0, steps=4, target=target)
    values, loss = result  # unpacks as the pair it always was
    assert result.refused == 0 and set(values) == set(start) and loss.shape == (1,)
    monkeypatch.setattr(canvas, "MAX_BYTES", 1024)
    with pytest.raises(twin.TooBig, match="GiB"):
        twin.render_params(p, 64)
    refusals = Refusals()
    found, lo = twin_descent(pipeline_loss(target), p, 1.0, refusals=refusals)
    assert found is p and lo == float("inf")
    assert refusals.count == 1


def test_refine_keeps_a_right_start_and_a_batch_keeps_its_best() -> None:
    """descent.twin_refine from the truth ends on the truth's picture whatever its
    wide descent does (the fine one descends the start beside the wide one's end),
    and twin_descent with `also` returns the better of its starts."""
    truth = _chain_of_six()
    misplaced = {**truth, "stepFactor": 0.35, "xStep": 1.1, "yStep": 0.4}
    t256 = scene.render(truth, 256).astype(np.float64) / 255
    loss = pipeline_loss(scene.render(truth, 128).astype(np.float32) / 255)

    def ncc(p: dict) -> float:
        return metrics.ncc(scene.render(p, 256) / 255, t256, 1.0)

    assert ncc(twin_refine(loss, truth, 1.0, 1.0, target=t256)) >= 0.97
    found, lo = twin_descent(loss, misplaced, 1.0, target=t256, also=[truth])
    assert ncc(found) >= 0.97 and lo < 0.05, lo


@pytest.mark.parametrize(("side", "last"), [(128, 128), (256, 256), (512, 256)])
def test_descent_ends_at_the_targets_side_up_to_256(side: int, last: int) -> None:
    """The schedule's sides are capped at the target's: a 128² target is never
    drawn at 256² (nothing to fit there), a bigger one ends at 256²."""
    p = _plain(schema.default_params())
    p["repetitions"] = 8
    target = scene.render(p, side).astype(np.float64) / 255
    struct = twin.structure_of(p)
    lines: list[str] = []
    twin.descend(
        struct,
        twin.values_of([p], struct),
        None,
        seconds=600,
        steps=10,
        target=target,
        log=lines.append,
    )
    sides = [int(line.split("twin ")[1].split("²")[0]) for line in lines]
    assert len(sides) == len(twin.NCC_SCHEDULE)
    assert sides[-1] == last and max(sides) == last, lines


def test_gradient_stops_are_the_renderers_colours() -> None:
    """The twin's gradient is the renderer's shader's: sRGB(tone_map(rgb ×
    brightness)) at its stops, in 8 bits."""
    p = _plain(schema.default_params())
    p["color"], p["gradientRange"] = "#7D99FF", [0.1, 0.8]
    struct = twin.structure_of(p)
    values = twin.values_of([p], struct)
    rgb = twin.chain_color(struct, values, 0)
    got = twin.gradient_stops(struct, values, 0, rgb)[0].numpy()
    g = np.linspace(-scene.GRADIENT_REACH, scene.GRADIENT_REACH, scene.GRADIENT_STOPS)
    lit = np.outer(progressions.gradient_brightness(g, (0.1, 0.8)), rgb[0].numpy())
    want = np.round(scene.linear_to_srgb(progressions.tone_map(lit)) * 255) / 255
    np.testing.assert_allclose(got, want, atol=1e-9)


def _channels(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-channel light over the picture, the colour's shares where it is lit)."""
    lit = img.mean(-1) > 0.1
    return img.sum((0, 1)), img[lit].sum(0) / img[lit].sum()


@pytest.mark.parametrize("color", ["#8080FF", "#7D99FF"])
def test_colours_follow_the_renderers_tone_mapping(color: str) -> None:
    """On saturated colours (where ACES moves light between channels), the twin's
    exact_color picture has the renderer's colours, and its default path (a grey
    canvas per chain and, for such colours, a chroma canvas) the renderer's grey and
    nearly its colours."""
    p = _plain(schema.default_params())
    p["color"] = color
    ref = scene.render(p, 128).astype(np.float64) / 255
    struct = twin.structure_of(p)
    values = twin.values_of([p], struct)
    with torch.no_grad():
        exact = twin.render(struct, values, 128, exact_color=True)[0]
        fast = twin.render(struct, values, 128)[0]
    exact_np = exact.permute(1, 2, 0).double().numpy()
    fast_np = fast.permute(1, 2, 0).double().numpy()
    light, share = _channels(ref)
    for img, tol in ((exact_np, 0.02), (fast_np, 0.03)):
        got_light, got_share = _channels(img)
        # the splats' coverage is a few % off the renderer's (so are the shares where
        # it is lit: 0.01 here); the old sRGB(rgb) × sRGB(b) was 0.15 off, ×7 in red
        np.testing.assert_allclose(
            got_light / got_light.sum(), light / light.sum(), atol=0.02
        )
        assert abs(got_light.sum() / light.sum() - 1) < 0.1
        np.testing.assert_allclose(got_share, share, atol=tol)
    # the default path's grey: the exact path's where no channel clips ...
    open_ = (exact.amax(0) < 1) & (fast.amax(0) < 1)
    assert float(open_.float().mean()) > 0.95
    diff = (fast.mean(0) - exact.mean(0))[open_]
    assert float(diff.abs().max()) < 2e-3
    # ... and the renderer's
    assert metrics.ncc(fast_np, ref, 1.0) >= 0.99
    grey = fast_np.mean(-1)
    assert abs(grey.sum() / ref.mean(-1).sum() - 1) < 0.1


def test_blown_out_saturated_colour_keeps_its_hue_per_splat() -> None:
    """A saturated blue so bright that most of the picture clips (the golden case
    random-06): where it clips depends on each splat's own hue (ACES turns bright
    light white, dim light stays blue), which one tint per chain misses (NCC 0.80)."""
    p = _plain(schema.default_params())
    p.update(
        {
            "repetitions": 142,
            "alphaFactor": 0.91,
            "scaleFactor": 0.93,
            "rotationFactor": 0.32,
            "stepFactor": 0.19,
            "positionCoupled": False,
            "scaleProgression": "additive",
            "rotationProgression": "sine",
            "alphaProgression": "inverse",
            "positionProgression": "scale",
            "xStep": -0.78,
            "yStep": -0.62,
            "origin": "center",
            "scale": 0.62,
            "rotation": 1.68,
            "position": {"x": -0.24, "y": 0.0},
            "geometry": "infinity",
            "geoWidth": 0.025,
            "color": "#7D99FF",
            "layers": [
                {"rotation": -1.94, "position": {"x": 0.04, "y": -0.11}},
                {"rotation": -1.61, "position": {"x": 0.91, "y": 0.76}},
                {"rotation": 2.1, "position": {"x": 0.34, "y": 0.92}},
            ],
        }
    )
    for layer, (sx, sy) in zip(
        p["layers"], ((1.32, 1.35), (0.91, 1.28), (1.35, 0.85)), strict=True
    ):
        layer["scale"] = {"x": sx, "y": sy}
    p = schema.validate_params(p)
    ref = scene.render(p, 64).astype(np.float64) / 255
    assert (ref >= 1).all(-1).mean() > 0.4  # blown out
    assert metrics.ncc(twin.render_params(p, 64), ref, 1.0) >= 0.95


def test_a_step_that_blows_the_values_up_ends_its_stage_on_finite_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transform gone non-finite (the SVD of a layer's matrix fails) or a NaN loss
    stops the stage on the last finite values instead of ending predict; a failed
    descent in a worker keeps its start."""
    import concurrent.futures

    from art_explorer.predict import pool
    from art_explorer.scene.twin import descent as twin_descent_mod

    p = _plain(schema.default_params())
    p.update(repetitions=20, layers=[])
    struct = twin.structure_of(p)
    start = twin.values_of([p], struct)
    target = scene.render(p, 64).astype(np.float32) / 255
    real = twin_descent_mod.render
    calls = {"n": 0}

    def failing(*args, **kw):  # the fourth picture fails as a bad matrix does
        calls["n"] += 1
        if calls["n"] == 4:
            raise torch.linalg.LinAlgError("svd: non-finite values")
        return real(*args, **kw)

    monkeypatch.setattr(twin_descent_mod, "render", failing)
    lines: list[str] = []
    values, loss = twin.descend(
        struct, start, None, seconds=600, steps=12, target=target, log=lines.append
    )
    assert any("non-finite" in x for x in lines)
    assert all(torch.isfinite(v).all() for v in values.values())
    assert torch.isfinite(loss).all()
    failed: concurrent.futures.Future = concurrent.futures.Future()
    failed.set_exception(torch.linalg.LinAlgError("svd"))
    job = (p, 1.0, 1.0)
    assert pool._result_or_start(failed, job, lines.append) == (p, 0)
    assert "a descent failed" in lines[-1] and "its start is kept" in lines[-1]
