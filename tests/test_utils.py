"""Unit tests of utils.py: the schema's spellings, encodings, messy refs, sampling,
the blow-up guard, breeding, and the small shared tools."""

from __future__ import annotations

import codecs
import http.server
import json
import math
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atomic
import dataset
import encoding
import refs_io
import rendering
import sampling
import schema
import utils


def random_params(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [sampling.sample_params(rng) for _ in range(n)]


def assert_params_close(a: dict[str, Any], b: dict[str, Any], tol: float) -> None:
    """Same keys, same categoricals/bools/colours/ints, floats within tol."""

    def close(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict):
            assert isinstance(y, dict) and set(x) == set(y), where
            for k in x:
                close(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, list):
            assert isinstance(y, list) and len(x) == len(y), where
            for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
                close(xi, yi, f"{where}[{i}]")
        elif isinstance(x, float) and not isinstance(y, bool):
            assert isinstance(y, (int, float)), where
            assert abs(x - y) <= tol, f"{where}: {x} vs {y}"
        else:
            assert x == y and type(x) is type(y), f"{where}: {x!r} vs {y!r}"

    close(a, b, "params")


# ----------------------------------------------------------------------------------
# Spellings and encodings


@pytest.mark.parametrize("convert", [schema.to_prefixed, schema.to_scene_params])
def test_converters_round_trip_exactly(convert: Any) -> None:
    for p in random_params(200):
        back = schema.validate_params(convert(p))
        assert back == p
        assert schema.canonical_json(convert(p)) == schema.canonical_json(p)


def test_converters_survive_json() -> None:
    for p in random_params(50, seed=1):
        text = json.dumps(schema.to_prefixed(p))
        assert schema.validate_params(json.loads(text)) == p


def test_prefixed_spelling_uses_leva_keys() -> None:
    p = random_params(1, seed=2)[0]
    p["layers"] = [
        {
            "rotation": 0.5,
            "position": {"x": 1, "y": 0},
            "scale": {"x": -1, "y": 1},
            "color": "#112233",
        }
    ]
    pre = schema.to_prefixed(p)
    assert pre["Scalars.repetitions"] == p["repetitions"]
    assert pre["Dither.enabled"] == p["ditherEnabled"]
    assert pre["Groups.g0.g0-color"] == "#112233"
    assert "Groups.g0.g0-geometry" not in pre  # absent override stays absent
    assert schema.is_prefixed(pre) and not schema.is_prefixed(p)
    scene = schema.to_scene_params(p)
    assert scene["dither"]["enabled"] == p["ditherEnabled"]
    assert "ditherEnabled" not in scene


def test_encode_decode_round_trip() -> None:
    # Floats come back within float32 precision of their normalised range; ints,
    # categoricals, bools, colours, layer count and which overrides are set, exactly.
    for p in random_params(300, seed=3):
        enc = encoding.encode_params(p)
        assert enc.cont.shape == (encoding.NUM_CONT,)
        assert enc.layer_cont.shape == (schema.MAX_LAYERS, encoding.NUM_LAYER_CONT)
        assert enc.cont.min() >= 0.0 and enc.cont.max() <= 1.0
        assert int(enc.n_layers) == len(p["layers"])
        assert_params_close(encoding.decode_params(enc), p, tol=1e-5)


def test_decode_accepts_torch_tensors() -> None:
    import torch

    p = random_params(1, seed=4)[0]
    enc = encoding.encode_params(p)
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in enc.as_dict().items()}
    assert_params_close(encoding.decode_params(tensors), p, tol=1e-5)


def test_decode_clips_out_of_range_outputs() -> None:
    enc = encoding.encode_params(random_params(1, seed=5)[0])
    enc.cont[:] = 3.0  # a model's raw output can leave [0, 1]
    out = encoding.decode_params(enc)
    assert out["repetitions"] == schema.PARAM["repetitions"].clamp_hi
    assert out["scaleFactor"] == schema.PARAM["scaleFactor"].clamp_hi
    assert_in_range(schema.validate_params(out), hard=True)


# ----------------------------------------------------------------------------------
# Messy refs: everything renderer.md says real refs.jsonl lines do must load


def test_messy_ref_loads() -> None:
    line = {
        "Scalars.repetitions": {"value": 40, "disabled": False},  # Leva wrapper
        "Scalars.scaleFactor": 1,  # an int where a float goes
        "Element.color": "#a1b2c3",  # lower-case hex
        "Element.geometry": "spiral",
        "Scalars.someOldKey": 3,  # unknown key
        "Scene.debug": True,  # ignored key
        "Groups.g0.g0-rotation": 1,
        "Groups.g0.g0-color": {"value": "#fff", "disabled": True},  # disabled override
        "Groups.g0.g0-geoWidth": {"value": 0.02, "disabled": False},
    }
    p = schema.validate_params(line)
    assert p["repetitions"] == 40
    assert p["scaleFactor"] == 1.0 and isinstance(p["scaleFactor"], float)
    assert p["color"] == "#A1B2C3"
    assert p["geometry"] == "spiral"
    assert p["xStep"] == schema.PARAM["xStep"].default  # missing → default
    assert len(p["layers"]) == 1
    layer = p["layers"][0]
    assert layer["rotation"] == 1.0
    assert "color" not in layer  # disabled → absent (inherits the base colour)
    assert layer["geoWidth"] == 0.02
    # required key → the original codec's default: a mirrored copy
    assert layer["scale"] == {"x": -1.0, "y": 1.0}


def test_unknown_layer_keys_are_ignored_and_make_no_layer() -> None:
    p = schema.validate_params(
        {
            "Groups.g0.g0-rotation": 1,
            "Groups.g1.g1-opacity": 0.5,  # unknown: no second layer
            "Groups.g1.g1-repetitions": 3,  # always the base's
            "Groups.g9.g9-foo": 1,
        }
    )
    assert len(p["layers"]) == 1
    flat = schema.validate_params(
        {"layers": [{"rotation": 1, "repetitions": 3, "origin": "center"}]}
    )
    assert flat["layers"] == [
        {
            "rotation": 1.0,
            "position": {"x": 0.0, "y": 0.0},
            "scale": {"x": -1.0, "y": 1.0},
        }
    ]


def test_short_hex_and_clamping_reported() -> None:
    p, clamped = schema.parse_params(
        {"Element.color": "#abc", "Scalars.repetitions": 9000, "Dither.colors": 1}
    )
    assert p["color"] == "#AABBCC"
    assert p["repetitions"] == 500 and p["ditherColors"] == 2
    assert set(clamped) == {"repetitions", "ditherColors"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"Scalars.repetitions": "many"}, "repetitions"),
        ({"Element.geometry": "blob"}, "geometry"),
        ({"Element.color": "red"}, "color"),
        ({"Scalars.alphaFactor": math.nan}, "alphaFactor"),
        ({"Scalars.repetitions": 10**400}, "repetitions"),  # beyond float
        ({"Dither.enabled": "yes"}, "ditherEnabled"),
        ({"Groups.g64.g64-rotation": 0.1}, "layers"),  # beyond MAX_RENDER_LAYERS
        ({"layers": [{}] * 65}, "layers"),
        # beyond MAX_INSTANCES: 500 repetitions × 13 chains
        ({"repetitions": 500, "layers": [{}] * 12}, "layers"),
    ],
)
def test_bad_params_name_their_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(schema.ParamError) as e:
        schema.parse_params(body)
    assert e.value.field == field


def test_load_refs_names_file_and_line(tmp_path: Any) -> None:
    f = tmp_path / "refs.jsonl"
    good = json.dumps(schema.to_prefixed(random_params(1)[0]))
    f.write_text(good + "\n\n" + good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(refs_io.RefsError, match=r"refs\.jsonl line 4: not JSON"):
        refs_io.load_refs(f)
    f.write_text(good + '\n{"Element.geometry": "blob"}\n', encoding="utf-8")
    with pytest.raises(refs_io.RefsError, match=r"line 2: .*blob"):
        refs_io.load_refs(f)
    f.write_text(good + "\n\n" + good + "\n", encoding="utf-8")
    assert [n for n, _ in refs_io.load_refs_numbered(f)] == [1, 3]
    assert refs_io.load_refs(tmp_path / "missing.jsonl") == []


def test_unreadable_refs_files_name_file_and_line(tmp_path: Any) -> None:
    f = tmp_path / "refs.jsonl"
    good = json.dumps(schema.to_prefixed(random_params(1)[0])).encode()
    f.write_bytes(good + b"\n" + b'{"Element.color": "\xff"}\n')
    with pytest.raises(refs_io.RefsError, match=r"refs\.jsonl line 2: not UTF-8"):
        refs_io.load_refs(f)
    f.write_bytes(good + b"\n\n" + b"[" * 100_000 + b"\n")
    with pytest.raises(refs_io.RefsError, match=r"line 3: not JSON \(nested"):
        refs_io.load_refs(f)
    with pytest.raises(refs_io.RefsError, match=r"cannot read it"):
        refs_io.load_refs(tmp_path)  # a folder
    # a BOM is skipped; U+2028 inside a JSON string does not end a line
    messy = {**schema.to_prefixed(schema.default_params()), "Note": "a\u2028b"}
    text = json.dumps(messy, ensure_ascii=False)
    f.write_bytes(codecs.BOM_UTF8 + good + b"\r\n" + text.encode() + b"\n")
    assert [n for n, _ in refs_io.load_refs_numbered(f)] == [1, 2]


def test_load_scored_refs_names_file_and_line(tmp_path: Any) -> None:
    f = tmp_path / "refs-scored.jsonl"
    good = json.dumps({"params": random_params(1)[0], "score": 0.5})
    f.write_text(good + "\n")
    assert refs_io.load_scored_refs(f)[0][1] == 0.5
    for bad in (
        "[1]",
        '{"params": {}}',
        '{"score": 1}',
        '{"params": {}, "score": "high"}',
        '{"params": {}, "score": NaN}',
        '{"params": {}, "score": true}',
    ):
        f.write_text(good + "\n" + bad + "\n")
        with pytest.raises(refs_io.RefsError, match=r"line 2: expected \{\"params\""):
            refs_io.load_scored_refs(f)
    f.write_text('{"params": {"geometry": "blob"}, "score": 1}\n')
    with pytest.raises(refs_io.RefsError, match=r"line 1: geometry: unknown option"):
        refs_io.load_scored_refs(f)
    assert refs_io.load_scored_refs(tmp_path / "missing.jsonl") == []


def test_starter_refs_load_and_are_canonical() -> None:
    """The starter refs are written as `refs.py canonicalize` writes them (the
    original pipeline reads them: no Leva wrappers, no unknown keys); the loader's
    messy cases are test_messy_ref_loads's."""
    path = utils.ROOT / "references" / "refs.jsonl"
    if not path.exists():
        pytest.skip("no references/refs.jsonl yet")
    refs = refs_io.load_refs(path)
    assert len(refs) >= 20
    text = path.read_text(encoding="utf-8")
    assert '"disabled"' not in text
    keys = {k for line in text.splitlines() if line.strip() for k in json.loads(line)}
    known = {p.prefixed for p in schema.SCHEMA}
    assert all(k.startswith("Groups.") or k in known for k in keys)


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


# ----------------------------------------------------------------------------------
# Files and sheets


def test_atomic_write_leaves_no_temp_file(tmp_path: Any) -> None:
    target = tmp_path / "sub" / "x.json"
    atomic.write_json(target, {"a": 1})
    atomic.atomic_write_text(target, "replaced\n")
    assert target.read_text() == "replaced\n"
    assert [f.name for f in target.parent.iterdir()] == ["x.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Any) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["x.txt"]


def test_contact_sheet_layout() -> None:
    white = np.ones((32, 32, 3), np.float32)
    black = np.zeros((32, 32, 3), np.uint8)
    sheet = utils.contact_sheet([white, black, white], ["a", "b", "c"], cols=2, cell=64)
    assert sheet.mode == "RGB"
    # 2 columns and 2 rows of 64 px tiles, 2 px gaps, a 12 px caption under each.
    assert sheet.size == (2 * 66 + 2, 2 * (64 + 12 + 2) + 2)
    a = np.asarray(sheet)
    assert (a[2:66, 2:66] == 255).all()  # first tile: white, enlarged
    assert (a[2:66, 68:132] == 0).all()  # second tile: black
    assert (a[0, :] == 40).all()  # dark grey grid around tiles
    no_labels = utils.contact_sheet([white], None, cols=8)
    assert no_labels.size == (36, 36)


# ----------------------------------------------------------------------------------
# The renderer client and the bundled renderer's start and stop


class FakeRenderer(http.server.BaseHTTPRequestHandler):
    """Answers by path: /html 200 text/html, /500 a JSON 500, /404 a JSON 404,
    /slow nothing for 2 s."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/slow"):
            time.sleep(2.0)
        status, ctype, body = {
            "/html": (200, "text/html", b"<html>hello</html>"),
            "/500": (500, "application/json", b'{"error": "out of memory"}'),
            "/404": (404, "application/json", b'{"error": "no such path: /404"}'),
        }.get(self.path.split("?")[0], (200, "image/png", rendering.PNG_SIGNATURE))
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out first (/slow): that is the test

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_renderer() -> Iterator[str]:
    """http://127.0.0.1:PORT of a FakeRenderer running in a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRenderer)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/html", r"answered 200 but not a PNG \(text/html\)"),
        ("/404", r"refused the request: no such path: /404"),
        ("/500", r"did not answer after 2 tries \(HTTP 500: out of memory\)"),
        ("/slow", r"did not answer after 2 tries \(no answer within 0.5 s\)"),
    ],
)
def test_client_errors_name_the_url_and_say_why(
    fake_renderer: str, path: str, message: str
) -> None:
    url = fake_renderer + path
    timeout = 0.5 if path == "/slow" else 30.0  # only /slow may time out
    client = rendering.RendererClient(url=url, retries=1, backoff=0.01, timeout=timeout)
    with pytest.raises(rendering.RendererError, match=f"renderer at {url} {message}"):
        client.render_png({}, 32)
    client.close()


@pytest.mark.parametrize("url", ["localhost:3000", "ftp://h/api/raster", "http://"])
def test_client_refuses_what_is_not_an_http_url(url: str) -> None:
    with pytest.raises(rendering.RendererError, match="is not a renderer URL"):
        rendering.RendererClient(url=url)


def test_client_says_connection_refused_in_a_few_words() -> None:
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    client = rendering.RendererClient(url=url, retries=0)
    with pytest.raises(rendering.RendererError) as e:
        client.render_png({}, 32)
    assert str(e.value).startswith(
        f"renderer at {url} did not answer after 1 try (Connection refused). Start"
    )


def test_ensure_renderer_starts_and_stops_the_bundled_one() -> None:
    url = f"http://localhost:{rendering.free_port()}/api/raster"
    said: list[str] = []
    with rendering.ensure_renderer(url, log=said.append) as live:
        assert live == url and "starting the bundled renderer" in said[0]
        client = rendering.RendererClient(url=live, retries=0)
        assert client.render(schema.default_params(), 32).shape == (32, 32, 3)
    assert client.health(timeout=1.0) is None  # stopped
    client.close()


def test_bundled_renderer_on_a_taken_port_is_a_clear_error(
    fake_renderer: str,
) -> None:
    port = int(fake_renderer.rsplit(":", 1)[1])  # answers, but is not a renderer
    url = f"http://127.0.0.1:{port}/api/raster"
    expected = f"could not start on 127.0.0.1:{port}"
    with (
        pytest.raises(rendering.RendererError, match=expected),
        rendering.ensure_renderer(url),
    ):
        pass


def test_bundled_renderer_that_dies_at_start_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drawing library failing to load (as skia does without libEGL) is named
    in the error, not guessed as a busy port."""
    (tmp_path / "skia.py").write_text(
        'raise ImportError("libEGL.so.1: cannot open shared object file")\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(rendering.RendererError, match=r"libEGL\.so\.1") as e:
        rendering.start_renderer(rendering.free_port())
    assert "another program" not in str(e.value)


def test_interrupted_renderer_start_leaves_no_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[Any] = []
    popen = subprocess.Popen

    def spy(*args: Any, **kw: Any) -> Any:
        started.append(popen(*args, **kw))
        return started[-1]

    def interrupted(self: Any, timeout: float = 2.0) -> None:
        raise KeyboardInterrupt  # Ctrl-C while waiting for it to answer

    monkeypatch.setattr(rendering.subprocess, "Popen", spy)
    monkeypatch.setattr(rendering.RendererClient, "health", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rendering.start_renderer(rendering.free_port())
    assert started and started[0].poll() is not None  # stopped, not orphaned


# ----------------------------------------------------------------------------------
# Schema v2: the original's defaults, the default layer, new params


def test_empty_params_are_the_originals_defaults() -> None:
    p = schema.validate_params({})
    assert p == schema.default_params()
    assert p["scale"] == 0.4 and p["position"] == {"x": 0.0, "y": -0.5}
    assert p["repetitions"] == 75 and p["alphaFactor"] == 0.68
    assert p["scaleFactor"] == 1.03 and p["rotationFactor"] == -0.48
    assert p["color"] == "#EFEDDB" and p["geoWidth"] == 0.041
    assert p["gradientRange"] == [0.2, 1.0] and p["startAngle"] == 0.0
    assert p["layers"] == [schema.DEFAULT_LAYER]  # the original's g0: mirrored
    assert p["layers"][0]["scale"] == {"x": -1.0, "y": 1.0}


def test_default_layer_only_when_nothing_is_said_about_layers() -> None:
    prefixed = schema.validate_params({"Element.geometry": "wave"})
    assert prefixed["layers"] == [schema.DEFAULT_LAYER]
    scene = schema.validate_params({"geometry": "wave"})
    assert scene["layers"] == [schema.DEFAULT_LAYER]
    assert schema.validate_params({"geometry": "wave", "layers": []})["layers"] == []
    one = schema.validate_params({"Groups.g0.g0-rotation": 0.5})
    assert len(one["layers"]) == 1 and one["layers"][0]["rotation"] == 0.5


def test_no_layers_survive_the_prefixed_spelling() -> None:
    """The prefixed spelling has no empty layer list: to_prefixed writes one layer
    scaled to nothing, which draws nothing."""
    flat = {**schema.default_params(), "layers": []}
    back = schema.validate_params(schema.to_prefixed(flat))
    assert back["layers"] == [schema.EMPTY_LAYER]


def test_more_layers_than_the_models_encode() -> None:
    p = schema.validate_params({"layers": [{}] * 8, "repetitions": 40})
    assert len(p["layers"]) == 8  # the renderer takes them
    with pytest.raises(schema.ParamError, match="at most 5"):
        encoding.encode_params(p)


def test_new_params_parse_and_clamp() -> None:
    p, clamped = schema.parse_params(
        {
            "Element.gradientRange": [-3, 1.5],
            "Element.startAngle": 4.0,
            "CRT.enabled": True,
            "CRT.mask": "VGA",
            "CRT.scale": 20,
            "Scene.scale": 3,
        }
    )
    assert p["gradientRange"] == [-1.0, 1.5]
    assert p["startAngle"] == pytest.approx(4.0 - 2 * math.pi)
    assert p["crtEnabled"] is True and p["crtMask"] == "vga"
    assert p["crtScale"] == 8.0 and p["scale"] == 2.0
    assert {"gradientRange", "crtScale", "scale"} <= set(clamped)
    nested = schema.validate_params({"crt": {"enabled": True, "maskStrength": 0.9}})
    assert nested["crtEnabled"] is True and nested["crtMaskStrength"] == 0.9
    with pytest.raises(schema.ParamError):
        schema.parse_params({"Element.gradientRange": 0.5})
    # every schema value survives the encoding
    enc = encoding.encode_params(p)
    back = encoding.decode_params(enc)
    assert back["gradientRange"] == pytest.approx(p["gradientRange"], abs=1e-6)
    assert back["crtMask"] == "vga"


def test_data_of_another_schema_is_refused(tmp_path: Any) -> None:
    folder = tmp_path / "data"
    (folder / "params").mkdir(parents=True)
    dataset.check_data_schema(folder)  # empty: fine
    old = {k: v for k, v in schema.default_params().items() if k != "gradientRange"}
    atomic.write_json(folder / "params" / "000000.json", old)
    with pytest.raises(dataset.DataSchemaError, match="Regenerate"):
        dataset.check_data_schema(folder)
    dataset.write_data_schema(folder)  # the marker decides when present
    dataset.check_data_schema(folder)
    atomic.write_json(folder / "schema.json", {"version": 1, "hash": "0"})
    with pytest.raises(dataset.DataSchemaError, match="make generate"):
        dataset.check_data_schema(folder)
