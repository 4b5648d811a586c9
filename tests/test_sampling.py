"""sampling.py: the sampling distribution, the blow-up guard, breeding."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from typing import Any

import pytest

from art_explorer.scene import encoding, sampling, schema


def random_params(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [sampling.sample_params(rng) for _ in range(n)]


# ----------------------------------------------------------------------------------
# Sampling


def test_bias_min_draws_from_the_top_80_percent_of_the_time() -> None:
    p = schema.Param("n", "n", "int", 50, 0, 100, bias_min=60)
    rng = random.Random(0)
    draws = [sampling._sample_value(p, rng) for _ in range(5000)]
    below = sum(d < 60 for d in draws) / len(draws)
    # 20% unbiased draws, of which 60/101 fall below bias_min: 0.119.
    assert below == pytest.approx(0.2 * 60 / 101, abs=0.02)
    assert min(draws) >= 0 and max(draws) <= 100


def test_sampled_repetitions_mostly_at_least_bias_min() -> None:
    samples = random_params(2000, seed=6)
    rep = schema.PARAM["repetitions"]
    assert rep.bias_min is not None
    unguarded = [
        s
        for s in samples
        if s["repetitions"]
        < sampling.max_repetitions(
            max([s["scaleFactor"]] + [la.get("scaleFactor", 0) for la in s["layers"]])
        )
    ]
    low = sum(s["repetitions"] < rep.bias_min for s in unguarded) / len(unguarded)
    assert low < 0.03  # 0.2 · 15/500 = 0.006 expected


def test_enabled_flags_about_35_percent() -> None:
    samples = random_params(3000, seed=7)
    for key in ("noiseEnabled", "ditherEnabled"):
        share = sum(s[key] for s in samples) / len(samples)
        assert share == pytest.approx(0.35, abs=0.03), key
    share = sum(s["positionCoupled"] for s in samples) / len(samples)
    assert share == pytest.approx(0.5, abs=0.03)


def test_layer_count_weights() -> None:
    samples = random_params(4400, seed=8)
    counts = Counter(len(s["layers"]) for s in samples)
    assert set(counts) <= {1, 2, 3, 4, 5}
    total = sum(schema.LAYER_COUNT_WEIGHTS)
    for n, w in zip(range(1, 6), schema.LAYER_COUNT_WEIGHTS, strict=True):
        assert counts[n] / len(samples) == pytest.approx(w / total, abs=0.025), n


def test_layer_optional_key_probabilities() -> None:
    layers = [la for s in random_params(2000, seed=9) for la in s["layers"]]
    for key in schema.LAYER_OPTIONAL:
        share = sum(key in la for la in layers) / len(layers)
        want = schema.LAYER_OPTIONAL_P.get(key, schema.LAYER_OPTIONAL_P_DEFAULT)
        assert share == pytest.approx(want, abs=0.03), key
    assert all(set(schema.LAYER_REQUIRED) <= set(la) for la in layers)


def test_categoricals_cover_every_option() -> None:
    samples = random_params(1000, seed=10)
    for key in schema.CAT_KEYS:
        seen = {s[key] for s in samples}
        assert seen == set(schema.PARAM[key].options), key


def test_samples_are_valid_and_in_sampling_range() -> None:
    for s in random_params(500, seed=11):
        assert schema.validate_params(s) == s
        assert_in_range(s, hard=False)


def test_sampling_is_deterministic_per_seed() -> None:
    assert random_params(20, seed=12) == random_params(20, seed=12)
    assert random_params(20, seed=12) != random_params(20, seed=13)


# ----------------------------------------------------------------------------------
# Blow-up guard


@pytest.mark.parametrize(
    ("sf", "cap"),
    [
        (0.5, 500),
        (1.0, 500),
        (1.01, 500),
        (1.02, 348),
        (1.1, 72),
        (1.5, 17),
        (2.0, 10),
        (3.0, 10),
    ],
)
def test_max_repetitions(sf: float, cap: int) -> None:
    assert sampling.max_repetitions(sf) == cap
    if sf > 1.01:
        assert cap == max(10, math.floor(6.9 / math.log(sf)))


def test_guard_uses_the_largest_scale_factor_of_base_and_layers() -> None:
    p = schema.default_params()
    p.update(repetitions=400, scaleFactor=0.9)
    p["layers"] = [
        {
            "rotation": 0.0,
            "position": {"x": 0, "y": 0},
            "scale": {"x": 1, "y": 1},
            "scaleFactor": 1.5,
        }
    ]
    assert sampling.apply_guard(p)["repetitions"] == 17
    p["layers"] = []
    p["repetitions"] = 400
    assert sampling.apply_guard(p)["repetitions"] == 400


def test_every_sample_and_child_respects_the_guard() -> None:
    rng = random.Random(14)
    samples = random_params(500, seed=14)
    children = [sampling.breed(samples[:20], rng) for _ in range(300)]
    for s in samples + children:
        sfs = [s["scaleFactor"]] + [
            la["scaleFactor"] for la in s["layers"] if "scaleFactor" in la
        ]
        assert s["repetitions"] <= sampling.max_repetitions(max(sfs))


# ----------------------------------------------------------------------------------
# Breeding


def assert_in_range(p: dict[str, Any], hard: bool) -> None:
    """Every number within its sampling range (hard=True: its clamp range)."""

    def check(param: schema.Param, v: Any, where: str) -> None:
        lo = param.clamp_lo if hard else param.lo
        hi = param.clamp_hi if hard else param.hi
        if param.kind in ("int", "float"):
            assert lo - 1e-9 <= v <= hi + 1e-9, f"{where}={v} not in [{lo}, {hi}]"
        elif param.kind == "vec2" and param.clamp:
            for c in "xy":
                assert lo - 1e-9 <= v[c] <= hi + 1e-9, f"{where}.{c}={v[c]}"
        elif param.kind == "cat":
            assert v in param.options, where
        elif param.kind == "color":
            assert v == schema.normalize_color(v), where

    for param in schema.SCHEMA:
        check(param, p[param.key], param.key)
    assert 0 <= len(p["layers"]) <= schema.MAX_LAYERS
    for i, layer in enumerate(p["layers"]):
        for k, v in layer.items():
            check(schema.LAYER_PARAM[k], v, f"layers[{i}].{k}")


def extreme_parent(rng: random.Random, top: bool) -> dict[str, Any]:
    """A valid parent with every number at the top (or bottom) of its range."""
    p = sampling.sample_params(rng)
    for param in schema.SCHEMA:
        if param.kind in ("int", "float") and not param.periodic:
            p[param.key] = param.hi if top else param.lo
            if param.kind == "int":
                p[param.key] = int(p[param.key])
    for layer in p["layers"]:
        layer["scale"] = {"x": 2.0, "y": -2.0} if top else {"x": -2.0, "y": 2.0}
        layer["position"] = {"x": 2.0, "y": 2.0} if top else {"x": -2.0, "y": -2.0}
    return sampling.apply_guard(p)


def test_breeding_keeps_values_in_range() -> None:
    rng = random.Random(15)
    parents = [extreme_parent(rng, top) for top in (True, False)] + random_params(6)
    for _ in range(500):
        child = sampling.breed(parents, rng)
        assert schema.validate_params(child) == child
        assert_in_range(child, hard=False)


def test_breeding_keeps_a_parent_beyond_the_sampling_range_within_the_hard_range() -> (
    None
):
    rng = random.Random(16)
    parent = sampling.sample_params(rng)
    parent.update(scaleFactor=2.8, xStep=-2.9, repetitions=10)  # optimiser range
    for _ in range(200):
        child = sampling.breed([parent], rng, p_copy=1.0)
        assert_in_range(child, hard=True)
        assert child["scaleFactor"] >= 2.0  # ×U(0.8, 1.2) of 2.8, never below 2.24


def test_breeding_jitters_numbers_within_20_percent() -> None:
    rng = random.Random(17)
    parent = random_params(1, seed=17)[0]
    parent.update(alphaFactor=0.5, geoWidth=0.05, noiseOpacity=0.2)
    for _ in range(200):
        child = sampling.breed([parent], rng, p_copy=1.0)
        for k in ("alphaFactor", "geoWidth", "noiseOpacity"):
            assert 0.8 * parent[k] - 1e-12 <= child[k] <= 1.2 * parent[k] + 1e-12, k
        for k in schema.CAT_KEYS:  # p_copy=1: categoricals copied verbatim
            assert child[k] == parent[k]


def test_breeding_weights_pick_parents() -> None:
    rng = random.Random(18)
    a, b = random_params(2, seed=18)
    a["geometry"], b["geometry"] = "spiral", "bar"
    picks = Counter(
        sampling.breed([a, b], rng, weights=[1.0, 0.0], p_two=0.0, p_copy=1.0)[
            "geometry"
        ]
        for _ in range(200)
    )
    assert picks == {"spiral": 200}
    picks = Counter(
        sampling.breed([a, b], rng, weights=[3.0, 1.0], p_two=0.0, p_copy=1.0)[
            "geometry"
        ]
        for _ in range(2000)
    )
    assert picks["spiral"] / 2000 == pytest.approx(0.75, abs=0.04)


def test_breeding_mixes_two_parents() -> None:
    rng = random.Random(19)
    a, b = random_params(2, seed=19)
    for k in schema.CAT_KEYS:
        a[k], b[k] = schema.PARAM[k].options[0], schema.PARAM[k].options[-1]
    child = sampling.breed([a, b], rng, p_two=1.0, p_copy=1.0)
    from_a = sum(child[k] == a[k] for k in schema.CAT_KEYS)
    assert 0 < from_a < len(schema.CAT_KEYS)


def test_breeding_needs_a_parent() -> None:
    with pytest.raises(ValueError, match="at least one parent"):
        sampling.breed([], random.Random(0))


def test_decode_clips_out_of_range_outputs() -> None:
    """encoding.decode_params of a raw model output: within the hard ranges."""
    enc = encoding.encode_params(random_params(1, seed=5)[0])
    enc.cont[:] = 3.0  # a model's raw output can leave [0, 1]
    out = encoding.decode_params(enc)
    assert out["repetitions"] == schema.PARAM["repetitions"].clamp_hi
    assert out["scaleFactor"] == schema.PARAM["scaleFactor"].clamp_hi
    assert_in_range(schema.validate_params(out), hard=True)


# ----------------------------------------------------------------------------------
# The curated-like distribution (issue 30's statistics of 16 curated refs)


@pytest.fixture(scope="module")
def curated() -> list[dict[str, Any]]:
    rng = random.Random(30)
    return [sampling.sample_curated_like(rng) for _ in range(2000)]


def _share(xs: list[bool]) -> float:
    return sum(xs) / len(xs)


def test_curated_like_draws_validate_and_keep_the_guard(
    curated: list[dict[str, Any]],
) -> None:
    for p in curated:
        flat = schema.validate_params(p)
        assert len(flat["layers"]) == len(p["layers"])  # 0 layers stays 0
        sfs = [p["scaleFactor"]] + [la.get("scaleFactor", 0) for la in p["layers"]]
        assert p["repetitions"] <= sampling.max_repetitions(max(sfs))
        assert p["scale"] == schema.PARAM["scale"].default
        assert p["geoWidth"] == schema.PARAM["geoWidth"].default
        assert not (p["noiseEnabled"] or p["ditherEnabled"] or p["crtEnabled"])


def test_curated_like_layer_counts_follow_the_refs(
    curated: list[dict[str, Any]],
) -> None:
    counts = Counter(len(p["layers"]) for p in curated)
    w = sampling.CURATED_LAYER_COUNT_WEIGHTS
    for n, weight in enumerate(w):
        assert counts[n] / len(curated) == pytest.approx(weight / sum(w), abs=0.03), n


def test_curated_like_layer_scales_positions_and_rotations(
    curated: list[dict[str, Any]],
) -> None:
    layers = [la for p in curated for la in p["layers"]]
    axes = [(abs(la["scale"]["x"]), abs(la["scale"]["y"])) for la in layers]
    negative = [la["scale"]["x"] < 0 or la["scale"]["y"] < 0 for la in layers]
    assert _share(negative) == pytest.approx(20 / 37, abs=0.05)
    ratio = [max(a, b) / min(a, b) > 2 for a, b in axes]
    assert _share(ratio) == pytest.approx(16 / 37, abs=0.05)
    near_zero = [min(a, b) < 0.1 for a, b in axes]
    assert _share(near_zero) == pytest.approx(4 / 37, abs=0.03)
    assert max(max(a, b) for a, b in axes) <= 2.0
    rot = [la["rotation"] for la in layers]
    assert min(rot) < -2.8 and max(rot) > 2.8
    assert _share([r > 0 for r in rot]) == pytest.approx(0.5, abs=0.04)
    edge = [
        abs(la["position"]["x"]) == 1 or abs(la["position"]["y"]) == 1 for la in layers
    ]
    assert _share(edge) > 0.6  # mostly an axis at ±1
    xs = [la["position"]["x"] for la in layers]
    ys = [la["position"]["y"] for la in layers]
    assert min(xs) < -1.6 and max(xs) <= 1.75 and min(ys) < -1.4 and max(ys) <= 1.57


def test_curated_like_overrides_at_the_refs_rates(
    curated: list[dict[str, Any]],
) -> None:
    layers = [la for p in curated for la in p["layers"]]
    for key, rate in sampling.CURATED_OVERRIDE_P.items():
        assert _share([key in la for la in layers]) == pytest.approx(rate, abs=0.04)
    for la in layers:
        for key in la:
            assert key in schema.LAYER_PARAM


def test_curated_like_factors_are_far_from_calm(
    curated: list[dict[str, Any]],
) -> None:
    af = [p["alphaFactor"] for p in curated]
    assert min(af) >= 0 and max(af) <= 0.75
    assert statistics.median(af) == pytest.approx(0.35, abs=0.04)
    rf = [p["rotationFactor"] for p in curated]
    assert min(rf) >= -0.7 and max(rf) <= 0.89
    assert _share([abs(r) > 0.2 for r in rf]) == pytest.approx(10 / 16, abs=0.05)
    sf = [p["stepFactor"] for p in curated]
    assert min(sf) >= 0.05 and max(sf) <= 1.76
    assert statistics.median(sf) == pytest.approx(0.7, abs=0.06)
    scf = [p["scaleFactor"] for p in curated]
    assert min(scf) >= 0.09 and max(scf) <= 1.82
    assert min(scf) < 0.3 and max(scf) > 1.6
    reps = [p["repetitions"] for p in curated]
    assert min(reps) >= 11 and max(reps) <= 422
    assert max(reps) > 350


def test_curated_like_geometries_follow_the_refs(
    curated: list[dict[str, Any]],
) -> None:
    counts = Counter(p["geometry"] for p in curated)
    w = sampling.CURATED_GEOMETRY_WEIGHTS
    total = sum(w.values())
    for g in schema.GEOMETRIES:
        assert counts[g] / len(curated) == pytest.approx(w[g] / total, abs=0.03), g
    assert counts.most_common(1)[0][0] == "u"


def test_curated_like_is_deterministic_per_seed() -> None:
    a = [sampling.sample_curated_like(random.Random(5)) for _ in range(3)]
    b = [sampling.sample_curated_like(random.Random(5)) for _ in range(3)]
    assert a == b
