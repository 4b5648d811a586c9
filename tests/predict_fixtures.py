"""Fixtures and helpers shared by the tests of predict (tests/test_predict*.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import predict
from art_explorer import atomic
from art_explorer.predict.registration import apply_similarity
from art_explorer.scene import rendering, sampling, schema

ROOT = Path(__file__).resolve().parent.parent


def sample(seed: int) -> dict[str, Any]:
    return sampling.sample_params(random.Random(seed))


def plain(p: dict[str, Any]) -> dict[str, Any]:
    """No noise or dither: a picture that is only lines."""
    return {**p, "noiseEnabled": False, "ditherEnabled": False}


@pytest.fixture(scope="module")
def client(renderer_url: str) -> Any:
    c = rendering.RendererClient(url=renderer_url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def target_params() -> dict[str, Any]:
    """A clearly visible scene: one ring chain with a layer."""
    p = schema.validate_params(
        {
            "geometry": "ring",
            "repetitions": 24,
            "scaleFactor": 1.06,
            "rotationFactor": 0.02,
            "stepFactor": 0.3,
            "xStep": 0.4,
            "yStep": -0.2,
            "origin": "center",
            "scale": 1.0,
            "position": {"x": 0.0, "y": 0.0},
            "color": "#FFAA44",
            "layers": [
                {
                    "rotation": 1.0,
                    "position": {"x": 0.3, "y": 0.2},
                    "scale": {"x": 1.0, "y": 1.0},
                }
            ],
        }
    )
    return p


@pytest.fixture(scope="module")
def bank_dir(
    tmp_path_factory: pytest.TempPathFactory,
    client: rendering.RendererClient,
    target_params: dict[str, Any],
) -> Path:
    """A small rendered 'training set': the target's params jittered ±20%, turned and
    moved (so retrieval must align it), plus random draws."""
    d = tmp_path_factory.mktemp("data")
    rng = random.Random(3)
    near = sampling.breed([target_params], rng, p_copy=1.0, jitter=(0.8, 1.2))
    near = apply_similarity(near, 0.6, 1.1, (0.3, -0.2))
    params = [near] + [plain(sample(100 + i)) for i in range(5)]
    for i, p in enumerate(params):
        atomic.write_json(d / "params" / f"{i:06d}.json", p)
        atomic.atomic_write_bytes(
            d / "images" / f"{i:06d}.png", client.render_png(p, 64)
        )
    return d


def run(argv: list[str]) -> dict[str, Any]:
    return predict.main(predict.parse_args(argv))


@pytest.fixture(scope="module")
def refs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("refs")
    lines = [json.dumps(schema.to_prefixed(plain(sample(200 + i)))) for i in range(4)]
    (d / "refs.jsonl").write_text("\n".join(lines) + "\n")
    return d / "refs.jsonl"


def explore_argv(tmp_path: Path, renderer_url: str, refs: Path) -> list[str]:
    return [
        "--explore", "-n", "3", "--candidates", "12", "--final-size", "64",
        "--refs", str(refs), "--scored-refs", str(tmp_path / "none.jsonl"),
        "--out", str(tmp_path / "o"), "--renderer-url", renderer_url,
        "--forward", str(tmp_path / "none"),
    ]  # fmt: skip
