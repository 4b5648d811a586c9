"""schema.py and encoding.py: the spellings and their round trips, messy refs,
parsing with clear errors, schema v2's defaults and new params, data of another
schema."""

from __future__ import annotations

import codecs
import json
import math
import random
from typing import Any

import numpy as np
import pytest

from art_explorer import atomic, utils
from art_explorer.data import dataset, refs_io
from art_explorer.scene import encoding, sampling, schema


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
