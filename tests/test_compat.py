"""Working with the original's own client and files, both ways (issue 18).

The original pipeline (OutThisLife/bb-llm, art-explorer/) and renderer
(OutThisLife/bb-particles) are restated here from their descriptions: its sampler and
breeding (`original_request`), its reading of refs lines (`original_features`) and of
refs-scored.jsonl (`original_score_map`). Against the real renderer on a free port:
leniency where the original is lenient, its GET routes and X-Encoded-Params, and a
replay of a few hundred requests shaped like its client's.
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

import refs
import score_refs
from art_explorer import atomic, utils
from art_explorer.data import refs_io
from art_explorer.scene import sampling, schema
from renderer import codec

GOLDEN = utils.ROOT.parent / "shared" / "golden"
STARTER_REFS = utils.ROOT / "references" / "refs.jsonl"


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return im.size


def golden() -> list[tuple[dict[str, Any], str]]:
    if not (GOLDEN / "cases.jsonl").exists():
        pytest.skip(f"{GOLDEN} is absent (a bare clone has no ../shared)")
    cases = [json.loads(x) for x in (GOLDEN / "cases.jsonl").read_text().splitlines()]
    encoded = (GOLDEN / "encoded.txt").read_text().splitlines()
    assert len(cases) == len(encoded) > 0
    return list(zip(cases, encoded, strict=True))


def rounded(v: Any) -> Any:
    """Numbers to the codec's 3 decimals (JSON objects inside values stay)."""
    if isinstance(v, float):
        return round(v, 3)
    return v


# ----------------------------------------------------------------------------------
# Leniency (schema.parse_params)


@pytest.mark.parametrize(
    ("value", "drawn"),
    [(3, 4), (4.61, 4), (5, 4), (6, 8), (7, 8), (9, 8), (10, 8), (1, 2), (2.4, 2)],
)
def test_a_number_for_dither_matrix_snaps_to_the_nearest_option(
    value: float, drawn: int
) -> None:
    p, clamped = schema.parse_params({"Dither.matrix": value})
    assert p["ditherMatrix"] == drawn and clamped == ["ditherMatrix"]


def test_an_exact_option_is_not_reported() -> None:
    for v in (2, 4.0, "8"):
        p, clamped = schema.parse_params({"Dither.matrix": v})
        assert p["ditherMatrix"] in (2, 4, 8) and clamped == []


@pytest.mark.parametrize(
    ("value", "drawn", "reported"),
    [(1.17, True, True), (0.0, False, False), (1, True, False), (-0.3, True, True)],
)
def test_a_number_for_a_boolean_means_not_zero(
    value: float, drawn: bool, reported: bool
) -> None:
    p, clamped = schema.parse_params(
        {"Scalars.positionCoupled": value, "Groups.g0.g0-rotation": 0}
    )
    assert p["positionCoupled"] is drawn
    assert clamped == (["positionCoupled"] if reported else [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"Element.geometry": 3}, "geometry"),
        ({"Element.geometry": "blob"}, "geometry"),
        ({"Dither.matrix": "3"}, "ditherMatrix"),
        ({"Dither.matrix": math.nan}, "ditherMatrix"),
        ({"Scalars.positionCoupled": math.nan}, "positionCoupled"),
        ({"Scalars.positionCoupled": "1"}, "positionCoupled"),
        ({"Dither.enabled": [1]}, "ditherEnabled"),
    ],
)
def test_what_cannot_be_drawn_is_still_refused(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(schema.ParamError) as e:
        schema.parse_params(body)
    assert e.value.field == field


# ----------------------------------------------------------------------------------
# The codec (renderer/codec.py) against the original's own strings


def test_encoder_gives_the_originals_strings() -> None:
    for n, (case, text) in enumerate(golden(), 1):
        assert codec.encode_body(case) == text, f"golden case line {n}"


def test_decoder_gives_back_the_golden_params() -> None:
    for n, (case, text) in enumerate(golden(), 1):
        entries = codec.decode(text)
        assert list(entries) == list(case), f"line {n}: keys or their order"
        got = {k: e["value"] for k, e in entries.items()}
        assert got == {k: rounded(v) for k, v in case.items()}, f"line {n}"


def test_round_trip_of_sampled_params_keeps_three_decimals() -> None:
    rng = random.Random(7)
    for _ in range(200):
        pre = json.loads(json.dumps(schema.to_prefixed(sampling.sample_params(rng))))
        back = codec.decode(codec.encode_body(pre))
        assert {k: e["value"] for k, e in back.items()} == {
            k: rounded(v) for k, v in pre.items()
        }


def test_entries_with_disabled_flags_and_json_values_round_trip() -> None:
    entries = {
        "Groups.g0.g0-geometry": {"value": "spiral", "disabled": True},
        "Groups.g0.g0-stepFactor": {"value": -0.0125, "disabled": False},
        "Groups.g0.g0-alphaFactor": {"value": 0.0125, "disabled": False},
        "Element.gradientRange": {"value": [0.2, 1.0]},
        "Scene.position": {"value": {"x": 0.0, "y": -0.5}},
        "Noise.enabled": {"value": False},
        "Scalars.repetitions": {"value": 1_000_000},
        "Élément.ünïcode": {"value": "✓ \n \u2028 \x01"},
    }
    back = codec.decode(codec.encode(entries))
    assert back == {
        **entries,
        "Element.gradientRange": {"value": [0.2, 1]},
        "Scene.position": {"value": {"x": 0, "y": -0.5}},
        # 3 decimals, half up as JavaScript's Math.round
        "Groups.g0.g0-stepFactor": {"value": -0.012, "disabled": False},
        "Groups.g0.g0-alphaFactor": {"value": 0.013, "disabled": False},
    }


@pytest.mark.parametrize(
    ("x", "js"),
    [(0.0, "0"), (-0.0, "0"), (100.0, "100"), (1e21, "1e+21"), (1e-7, "1e-7"),
     (1.2345e20, "123450000000000000000"), (1e-6, "0.000001"), (0.1 + 0.2,
     "0.30000000000000004"), (2**60, "1152921504606847000"), (math.inf, "null")],
)  # fmt: skip
def test_numbers_print_as_javascript_prints_them(x: float, js: str) -> None:
    assert codec.js_number(x) == js


def test_unreadable_strings_decode_without_raising() -> None:
    good = codec.encode({"Scalars.repetitions": {"value": 40}, "A": {"value": "b"}})
    assert codec.decode(good[:-3])["Scalars.repetitions"] == {"value": 40}
    for junk in ("", "!!!!", "A", "____", "AAAA", good + "*", "Aw" * 50):
        assert isinstance(codec.decode(junk), dict)
    bad_json = base64.urlsafe_b64encode(b"\x01k\x03\x03[1}").decode().rstrip("=")
    assert codec.decode(bad_json) == {}  # as the original: nothing, not a part


# ----------------------------------------------------------------------------------
# The original's GET routes and header on the real renderer


def test_health_answers_like_the_original(renderer_url: str) -> None:
    r = requests.get(renderer_url + "?health", timeout=10)
    assert r.status_code == 200
    h = r.json()
    assert h["ok"] is True and h["recycling"] is False and h["consecutiveFails"] == 0
    assert isinstance(h["totalRenders"], int) and isinstance(h["pool"], int)


def test_get_without_params_or_parse_is_400(renderer_url: str) -> None:
    for q in ("", "?params=", "?parse=", "?size=64"):
        r = requests.get(renderer_url + q, timeout=10)
        assert r.status_code == 400, q
        assert r.json()["error"] == "Missing ?params= or ?parse= param"


def test_post_answers_the_originals_encoding_and_parse_decodes_it(
    renderer_url: str,
) -> None:
    for case, text in golden()[:12]:
        r = requests.post(renderer_url, params={"size": 32}, json=case, timeout=30)
        assert r.status_code == 200 and r.headers["X-Encoded-Params"] == text
        p = requests.get(renderer_url, params={"parse": text}, timeout=10)
        assert p.status_code == 200 and p.headers["Content-Type"] == "application/json"
        assert p.json() == codec.decode(text)
        # ?parse= answers a body POST takes ("for exact replay"): the same params
        again = requests.post(renderer_url, params={"size": 32}, json=p.json())
        assert again.status_code == 200
        assert again.headers["X-Encoded-Params"] == text


def test_get_params_renders_like_post(renderer_url: str) -> None:
    body = {"Element.geometry": "spiral", "Dither.matrix": 3, "Dither.enabled": True}
    body |= {"Scalars.positionCoupled": 1.17}
    post = requests.post(renderer_url, params={"size": 48}, json=body, timeout=30)
    get = requests.get(
        renderer_url, params={"params": json.dumps(body), "size": 48}, timeout=30
    )
    for r in (post, get):
        assert r.status_code == 200 and png_size(r.content) == (48, 48)
        assert set(r.headers["X-Clamped"].split(",")) == {
            "ditherMatrix",
            "positionCoupled",
        }
        assert codec.decode(r.headers["X-Encoded-Params"]) == {
            k: {"value": v} for k, v in body.items()
        }
    assert get.content == post.content
    bad = requests.get(renderer_url, params={"params": "{not json"}, timeout=10)
    assert bad.status_code == 400


def test_flat_bodies_encode_what_was_drawn(renderer_url: str) -> None:
    flat = sampling.sample_params(random.Random(11))
    r = requests.post(renderer_url, params={"size": 32}, json=flat, timeout=30)
    assert r.status_code == 200
    entries = codec.decode(r.headers["X-Encoded-Params"])
    drawn = {k: e["value"] for k, e in entries.items()}
    assert schema.canonical_json(drawn) == schema.canonical_json(
        {k: rounded(v) for k, v in schema.to_prefixed(flat).items()}
    )


# ----------------------------------------------------------------------------------
# Files: what the original pipeline's code does with ours (restated from its source)

ORIGINAL_RANGES = {  # flat key: (lo, hi), the original's CONTINUOUS_RANGES
    "repetitions": (1, 500), "alphaFactor": (0, 1), "scaleFactor": (0, 3),
    "rotationFactor": (-1, 1), "stepFactor": (0, 2), "xStep": (-3, 3),
    "yStep": (-3, 3), "scale": (0.85, 1.5), "geoWidth": (0.001, 0.1),
    "gradientAngle": (-3.14159, 3.14159), "noiseDensity": (0, 1),
    "noiseOpacity": (0, 0.4), "noiseSize": (0.1, 0.5), "ditherColors": (8, 32),
    "ditherStrength": (0.2, 0.8), "ditherScale": (1, 8), "ditherBias": (0, 0.5),
}  # fmt: skip
ORIGINAL_LAYER_NUMBERS = ("rotation", "stepFactor", "alphaFactor", "scaleFactor")
ORIGINAL_LAYER_NUMBERS += ("rotationFactor", "geoWidth")
ORIGINAL_BOOLS = ("positionCoupled", "noiseEnabled", "ditherEnabled", "ditherGrayscale")


def _original_flat_name(prefixed: str) -> str:
    """The original's PREFIX_MAP: 'Noise.enabled' → 'noiseEnabled', 'Scalars.x' → 'x';
    '' for a group it does not map (CRT.*: ignored)."""
    group, _, name = prefixed.partition(".")
    if group in ("Noise", "Dither"):
        return group.lower() + name[:1].upper() + name[1:]
    return name if group in ("Scalars", "Spatial", "Scene", "Element") else ""


def _number(v: Any) -> float:
    """What the original does with a number: comparisons and arithmetic (a dict
    here raises TypeError: "'<' not supported between 'dict' and 'int'")."""
    _ = v < 0
    return v - 0


def original_features(line: dict[str, Any]) -> list[float]:
    """A refs line read as the original pipeline reads it (to_scene_params, then its
    taste features): prefixed keys, plain values. Raises TypeError where its code
    crashes (a Leva wrapper where a number is expected) and AssertionError where it
    would silently read nonsense (a wrapper for a boolean or a category)."""
    assert "Scalars.repetitions" in line or "Element.geometry" in line  # prefixed
    flat: dict[str, Any] = {}
    layers: dict[int, dict[str, Any]] = {}
    for k, v in line.items():
        if k.startswith("Groups."):
            head, _, name = k.partition("-")
            layers.setdefault(int(head.split(".")[1][1:]), {})[name] = v
        else:
            flat[_original_flat_name(k)] = v
    feats: list[float] = []
    for name, (lo, hi) in ORIGINAL_RANGES.items():
        v = flat.get(name, 0)
        feats.append(max(0, min(1, (_number(v) - lo) / (hi - lo))))
    for name in ORIGINAL_BOOLS:
        assert isinstance(flat.get(name, False), bool), name
        feats.append(1.0 if flat.get(name) else 0.0)
    for name in ("geometry", "origin", "ditherType", "scaleProgression"):
        assert not isinstance(flat.get(name), dict), name
    assert sorted(layers) == list(range(len(layers)))  # g0, g1, ... in order
    for layer in layers.values():
        for axis in ("position", "scale"):
            vec = layer.get(axis, {"x": 0, "y": 0})
            feats += [_number(vec.get("x", 0)), _number(vec.get("y", 0))]
        for name in ORIGINAL_LAYER_NUMBERS:
            if name in layer:
                feats.append(_number(layer[name]))
        for name in ("color", "geometry"):
            assert not isinstance(layer.get(name), dict), name
    return feats


def original_score_map(scored: Path, refs_path: Path) -> dict[str, float]:
    """The original's score_refs/generate --scored: entries' "params" and "score",
    keyed by json.dumps(params, sort_keys=True); every refs line must find its score
    (else the original rescores it and its breeding inherits nothing)."""
    entries = [json.loads(x) for x in scored.read_text().splitlines() if x]
    by_key = {json.dumps(e["params"], sort_keys=True): e["score"] for e in entries}
    for line in refs_path.read_text().splitlines():
        if line.strip():
            assert json.dumps(json.loads(line), sort_keys=True) in by_key
    for e in entries:  # breeding from them: child keys are prefixed
        assert "Scalars.repetitions" in e["params"] or "Element.geometry" in e["params"]
        original_features(e["params"])
    return by_key


def test_starter_refs_read_in_the_original_and_are_canonical(tmp_path: Path) -> None:
    lines = [json.loads(x) for x in STARTER_REFS.read_text().splitlines() if x]
    assert lines
    for line in lines:
        original_features(line)
        assert not any(codec.is_entry(v) for v in line.values())
    copy = tmp_path / "refs.jsonl"
    shutil.copy(STARTER_REFS, copy)
    assert refs.cmd_canonicalize(copy) == 0  # already canonical


def test_canonicalize_drops_wrappers_and_keeps_pictures(tmp_path: Path) -> None:
    rng = random.Random(5)
    samples = [sampling.sample_params(rng) for _ in range(3)]
    wrapped = {
        k: {"value": v, "disabled": False}
        for k, v in schema.to_prefixed(samples[0]).items()
    }
    wrapped["Groups.g3.g3-geometry"] = {"value": "spiral", "disabled": True}
    path = tmp_path / "refs.jsonl"
    path.write_text(
        json.dumps(wrapped)
        + "\n\n"
        + json.dumps(samples[1])  # flat spelling
        + "\n"
        + json.dumps(schema.to_prefixed(samples[2]))
        + "\n"
    )
    before = refs_io.load_refs_numbered(path)
    with pytest.raises(TypeError):
        original_features(json.loads(path.read_text().splitlines()[0]))
    assert refs.cmd_canonicalize(path) == 2
    after = refs_io.load_refs_numbered(path)
    assert [n for n, _ in after] == [n for n, _ in before] == [1, 3, 4]
    assert list(map(schema.canonical_json, (p for _, p in after))) == list(
        map(schema.canonical_json, (p for _, p in before))
    )
    for line in filter(None, path.read_text().splitlines()):
        original_features(json.loads(line))
    assert refs.cmd_canonicalize(path) == 0


def test_saved_and_scored_refs_read_in_the_original(
    tmp_path: Path, renderer_url: str
) -> None:
    rng = random.Random(9)
    samples = [sampling.sample_params(rng) for _ in range(3)]
    params_dir = tmp_path / "data" / "params"
    wrapped = {
        k: {"value": v, "disabled": False}
        for k, v in schema.to_prefixed(samples[1]).items()
    }
    for i, body in enumerate((samples[0], wrapped, schema.to_scene_params(samples[2]))):
        atomic.write_json(params_dir / f"{i:06d}.json", body)
    ref_path = tmp_path / "refs.jsonl"
    base = ["--refs", str(ref_path), "--data", str(tmp_path / "data")]
    for i in range(3):
        assert refs.main(refs.parse_args([*base, "save", str(i)])) == 0
    for line in ref_path.read_text().splitlines():
        original_features(json.loads(line))
    scored = tmp_path / "refs-scored.jsonl"
    argv = ["--refs", str(ref_path), "--out", str(scored), "--cache"]
    argv += [str(tmp_path / "cache.json"), "--sheet", "", "--scorer", "heuristic"]
    argv += ["--renderer-url", renderer_url, "--size", "64", "--no-autostart"]
    score_refs.main(score_refs.parse_args(argv))
    assert len(original_score_map(scored, ref_path)) == 3
    # ours reads it back, and the layout from before (flat params) too
    ours = refs_io.load_scored_refs(scored)
    old = tmp_path / "old-scored.jsonl"
    old.write_text(
        "".join(json.dumps({"params": p, "score": s}) + "\n" for p, s in ours)
    )
    assert [
        (schema.canonical_json(p), s) for p, s in refs_io.load_scored_refs(old)
    ] == [(schema.canonical_json(p), s) for p, s in ours]
    assert {schema.canonical_json(p) for p, _ in ours} == {
        schema.canonical_json(p) for p in samples
    }


# ----------------------------------------------------------------------------------
# Replay: requests shaped like the original client's

COLORS = ("#FFFDDD", "#FFFEF0", "#FFFFF0", "#FFF8DC", "#FFEFD5", "#FFE4B5")
ORIGINAL_SCHEMA: dict[str, tuple[Any, ...]] = {  # prefixed key: (kind, ...)
    "Scalars.repetitions": ("int", 1, 500),
    "Scalars.alphaFactor": ("float", 0, 1),
    "Scalars.scaleFactor": ("float", 0, 2),
    "Scalars.rotationFactor": ("float", -1, 1),
    "Scalars.stepFactor": ("float", 0.02, 2),
    "Scalars.positionCoupled": ("bool", 0.5),
    "Scalars.scaleProgression": ("cat", *schema.SCALE_PROGRESSIONS),
    "Scalars.rotationProgression": ("cat", *schema.ROTATION_PROGRESSIONS),
    "Scalars.alphaProgression": ("cat", *schema.ALPHA_PROGRESSIONS),
    "Scalars.positionProgression": ("cat", *schema.POSITION_PROGRESSIONS),
    "Spatial.xStep": ("float", -2, 2),
    "Spatial.yStep": ("float", -2, 2),
    "Spatial.origin": ("cat", *schema.ORIGINS),
    "Scene.scale": ("float", 0.85, 1.5),
    "Scene.rotation": ("fixed", 0),
    "Scene.position": ("fixed", {"x": 0, "y": 0}),
    "Scene.debug": ("fixed", False),
    "Scene.transform": ("fixed", False),
    "Element.geometry": ("cat", *schema.GEOMETRIES),
    "Element.geoWidth": ("float", 0.001, 0.1),
    "Element.gradientAngle": ("float", -3.14159, 3.14159),
    "Element.color": ("color",),
    "Noise.enabled": ("bool", 0.35),
    "Noise.density": ("float", 0, 1),
    "Noise.opacity": ("float", 0, 0.4),
    "Noise.size": ("float", 0.1, 0.5),
    "Dither.enabled": ("bool", 0.35),
    "Dither.type": ("cat", "bayer", "noise", "halftone"),
    "Dither.matrix": ("cat", 2, 4, 8),
    "Dither.colors": ("int", 8, 32),
    "Dither.strength": ("float", 0.2, 0.8),
    "Dither.scale": ("float", 1, 8),
    "Dither.bias": ("float", 0, 0.5),
    "Dither.grayscale": ("bool", 0.1),
}
ORIGINAL_LAYER: dict[str, tuple[float, tuple[Any, ...]]] = {  # name: (p, spec)
    "rotation": (1.0, ("float", -3.14159, 3.14159)),
    "position": (1.0, ("vec", -1, 1)),  # drawn in ±2, then clamped to ±1
    "scale": (1.0, ("vec", -2, 2)),
    "stepFactor": (0.3, ("float", 0, 2)),
    "alphaFactor": (0.3, ("float", 0, 1)),
    "scaleFactor": (0.3, ("float", 0, 2)),
    "rotationFactor": (0.3, ("float", -1, 1)),
    "color": (0.2, ("color",)),
    "geoWidth": (0.3, ("float", 0.001, 0.1)),
    "geometry": (0.4, ("cat", *schema.GEOMETRIES)),
}


def _draw(spec: tuple[Any, ...], rng: random.Random, counter: list[int]) -> Any:
    kind = spec[0]
    if kind == "int":
        if spec[1] == 1 and rng.random() < 0.8:  # repetitions: biased to 15+
            return rng.randint(15, spec[2])
        return rng.randint(spec[1], spec[2])
    if kind == "float":
        return round(rng.uniform(spec[1], spec[2]), 4)
    if kind == "bool":
        return rng.random() < spec[1]
    if kind == "cat":
        counter[0] += 1  # stratified: round-robin through the options
        return spec[1 + counter[0] % (len(spec) - 1)]
    if kind == "color":
        return rng.choice(COLORS)
    if kind == "vec":
        x, y = (round(rng.uniform(-2, 2), 4) for _ in "xy")
        return {"x": max(spec[1], min(spec[2], x)), "y": max(spec[1], min(spec[2], y))}
    return spec[1]  # fixed


def original_random(rng: random.Random, counter: list[int]) -> dict[str, Any]:
    """The original's random_params(stratified=True), prefixed."""
    out = {k: _draw(spec, rng, counter) for k, spec in ORIGINAL_SCHEMA.items()}
    for i in range(rng.choices(range(1, 6), weights=[4, 3, 2, 1, 1])[0]):
        for name, (p, spec) in ORIGINAL_LAYER.items():
            if rng.random() < p:
                out[f"Groups.g{i}.g{i}-{name}"] = _draw(spec, rng, counter)
    return out


def original_breed(
    parents: list[dict[str, Any]], rng: random.Random, counter: list[int], later: bool
) -> dict[str, Any]:
    """The original's breeding: a random child takes 60% of its keys from one of the
    parents, every number (booleans and Dither.matrix too) times U(0.8, 1.2). The
    first version rounds when the parent's value is an int (a bool is one); the
    later one unwraps Leva values first and rounds only plain ints, and keeps the
    mirror-layer keys and re-biases widths."""
    chosen = rng.sample(parents, 2) if rng.random() < 0.7 else [rng.choice(parents)]
    child = original_random(rng, counter)
    for k in list(child):
        if (
            later
            and k.startswith("Groups.")
            and k.split("-", 1)[-1]
            in (
                "position",
                "rotation",
                "scale",
            )
        ):
            continue
        if rng.random() < 0.6:
            parent = rng.choice(chosen)
            if k in parent:
                raw = parent[k]
                val = raw["value"] if later and codec.is_entry(raw) else raw
                if isinstance(val, (int, float)):
                    val = val * rng.uniform(0.8, 1.2)
                    if later and k.endswith("geoWidth"):
                        val = max(0.001, min(0.1, val * rng.random() ** 1.5))
                    if isinstance(raw, int):
                        val = round(val)
                child[k] = val
    if later and rng.random() < 0.3:  # its figma mode sends keys ours lacks
        child["Element.startAngle"] = round(rng.uniform(-1, 1), 4)
        child["Element.gradientRange"] = [round(rng.uniform(-0.2, 0.4), 4), 1.0]
    return child


def wrap_some(line: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A ref as the original's later refs files hold some: Leva-wrapped values."""
    return {
        k: {"value": v, "disabled": False} if rng.random() < 0.5 else v
        for k, v in line.items()
    }


def test_replay_of_the_original_clients_requests_draws_everything(
    renderer_url: str,
) -> None:
    rng = random.Random(18)
    counter = [0]
    ours = [json.loads(x) for x in STARTER_REFS.read_text().splitlines() if x]
    wrapped = [wrap_some(x, rng) for x in ours]
    bodies: list[dict[str, Any]] = []
    for i in range(360):
        kind = i % 4
        if kind == 0:
            bodies.append(original_random(rng, counter))
        else:  # breeding from our refs, from wrapped ones, the later rules
            parents = ours if kind == 1 else wrapped
            bodies.append(original_breed(parents, rng, counter, later=kind == 3))

    def send(body: dict[str, Any]) -> tuple[int, str, bytes, str]:
        r = requests.post(renderer_url, params={"size": 32}, json=body, timeout=60)
        return r.status_code, r.headers.get("X-Clamped", ""), r.content, r.text[:200]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, bodies))
    refused = [(b, a[3]) for b, a in zip(bodies, answers, strict=True) if a[0] != 200]
    assert not refused, f"{len(refused)} refused, e.g. {refused[0]}"
    assert all(png_size(a[2]) == (32, 32) for a in answers)
    # the leniency was exercised, and said so
    snapped = sum(
        b.get("Dither.matrix") not in (2, 4, 8, None)
        and not codec.is_entry(b.get("Dither.matrix"))
        for b in bodies
    )
    said = sum("ditherMatrix" in a[1] for a in answers)
    assert snapped > 0 and said >= snapped
    coerced = [
        "positionCoupled" in a[1]
        for b, a in zip(bodies, answers, strict=True)
        if isinstance(b.get("Scalars.positionCoupled"), float)
        and b["Scalars.positionCoupled"] not in (0, 1)
    ]
    assert coerced and all(coerced)


def test_canonicalize_command_and_a_broken_line(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "refs.jsonl"
    line = {"Scalars.repetitions": {"value": 41, "disabled": False}}
    path.write_text(json.dumps(line) + "\n")
    argv = ["--refs", str(path), "canonicalize"]
    assert refs.main(refs.parse_args(argv)) == 0
    assert "1 of 1 refs rewritten" in capsys.readouterr().out
    assert json.loads(path.read_text())["Scalars.repetitions"] == 41
    broken = path.read_text() + "{not json\n"
    path.write_text(broken)
    assert refs.main(refs.parse_args(argv)) == 1
    assert "line 2: not JSON" in capsys.readouterr().err
    assert path.read_text() == broken  # nothing written


# ----------------------------------------------------------------------------------
# Issue 35: the original's own controls' ranges, its /render page, its big sizes

# A ref of the original's (one of 120 with noise beyond today's controls): its Leva
# panel had Noise.opacity in 0–1 and Noise.size in 0.1–3 when it was saved.
WIDE_NOISE = {"Noise.enabled": True, "Noise.opacity": 0.5472, "Noise.size": 1.7499}


def test_noise_the_originals_controls_allowed_is_drawn_as_asked(
    renderer_url: str,
) -> None:
    r = requests.post(renderer_url, params={"size": 128}, json=WIDE_NOISE, timeout=30)
    assert r.status_code == 200 and "X-Clamped" not in r.headers
    narrowed = WIDE_NOISE | {"Noise.opacity": 0.3, "Noise.size": 0.55}
    old = requests.post(renderer_url, params={"size": 128}, json=narrowed, timeout=30)
    assert old.status_code == 200 and old.content != r.content
    drawn = codec.decode(r.headers["X-Encoded-Params"])
    assert drawn["Noise.opacity"]["value"] == 0.547
    assert drawn["Noise.size"]["value"] == 1.75


def test_beyond_the_widest_control_the_value_is_clamped_and_said() -> None:
    # the original's panel never drew Noise.opacity above 1 or Noise.size above 3
    # (nor Dither.scale below 0.25): such a value is a typo, drawn at the edge
    params, clamped = schema.parse_params(
        {"Noise.opacity": 1.5, "Noise.size": 7, "Dither.scale": 0.1}
    )
    assert (params["noiseOpacity"], params["noiseSize"]) == (1.0, 3.0)
    assert params["ditherScale"] == 0.25
    assert set(clamped) == {"noiseOpacity", "noiseSize", "ditherScale"}


def test_the_models_keep_encoding_the_sampled_noise_range() -> None:
    # checkpoints encode [clamp_lo, clamp_hi] and check the schema hash: the wider
    # draw range is neither, so a value beyond encodes at the edge
    from art_explorer.scene import encoding

    served = {p["key"]: p for p in schema.schema_json()["params"]}
    assert served["noiseOpacity"]["range"] == [0, 0.3]
    assert "clampRange" not in served["noiseOpacity"]
    at_edge = schema.default_params() | {"noiseOpacity": 0.3}
    beyond = schema.default_params() | {"noiseOpacity": 0.5472}
    assert (
        encoding.encode_params(at_edge).cont == encoding.encode_params(beyond).cont
    ).all()


def test_render_page_answers_the_picture_of_the_encoded_params(
    renderer_url: str,
) -> None:
    body = {"Element.geometry": "spiral", "Scalars.repetitions": 40} | WIDE_NOISE
    posted = requests.post(renderer_url, params={"size": 96}, json=body, timeout=30)
    encoded = posted.headers["X-Encoded-Params"]
    page = renderer_url.replace("/api/raster", "/render")
    r = requests.get(page, params={"c": encoded, "size": 96}, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    # the string keeps 3 decimals: the page draws what it decodes to
    replay = requests.post(
        renderer_url, params={"size": 96}, json=codec.decode(encoded), timeout=30
    )
    assert r.content == replay.content
    assert r.headers["X-Encoded-Params"] == encoded
    # the original's own page is 1024 px: so is ours by default
    assert png_size(requests.get(page, params={"c": encoded}, timeout=60).content) == (
        1024,
        1024,
    )


def test_render_page_for_a_browser_shows_the_picture_and_its_params(
    renderer_url: str,
) -> None:
    encoded = codec.encode({k: {"value": v} for k, v in WIDE_NOISE.items()})
    page = renderer_url.replace("/api/raster", "/render")
    r = requests.get(
        page,
        params={"c": encoded, "size": 64},
        headers={"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Site": "none"},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    text = r.text
    src = text.split('<img src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert src.startswith("/render?") and "format=png" in src
    img = requests.get(
        renderer_url.replace("/api/raster", src),
        headers={"Accept": "text/html"},
        timeout=30,
    )
    assert img.status_code == 200 and img.headers["Content-Type"] == "image/png"
    assert "Noise.opacity" in text and "0.547" in text


def test_render_page_without_c_draws_the_defaults_and_refuses_garbage(
    renderer_url: str,
) -> None:
    page = renderer_url.replace("/api/raster", "/render")
    r = requests.get(page, params={"size": 48}, timeout=30)
    default = requests.post(renderer_url, params={"size": 48}, json={}, timeout=30)
    assert r.status_code == 200 and r.content == default.content
    bad = requests.get(page, params={"c": "!!!!", "size": 48}, timeout=10)
    assert bad.status_code == 400 and bad.json()["field"] == "c"
    odd = requests.get(page, params={"c": "AAAA", "size": 4097}, timeout=10)
    assert odd.status_code == 400


def test_sizes_above_2048_are_drawn_smaller_and_scaled_up(renderer_url: str) -> None:
    # the original's thumbnail tool asks for 3840
    body = {"Element.geometry": "ring", "Scalars.repetitions": 20}
    r = requests.post(renderer_url, params={"size": 3840}, json=body, timeout=120)
    assert r.status_code == 200 and png_size(r.content) == (3840, 3840)
    assert int(r.headers["X-Drawn-Size"]) <= 2048
    too_big = requests.post(renderer_url, params={"size": 4097}, json={}, timeout=10)
    assert too_big.status_code == 400 and "4096" in too_big.json()["error"]
