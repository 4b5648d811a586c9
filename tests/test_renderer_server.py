"""Integration tests: the real renderer service over HTTP on a free port."""

from __future__ import annotations

import io

import requests
from PIL import Image

import utils


def test_raster_answers_a_png_of_the_requested_size(renderer_url: str) -> None:
    r = requests.post(renderer_url, params={"size": 64}, json={}, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.size == (64, 64)
        assert im.mode == "RGB"


def test_client_renders_sampled_params(renderer_url: str) -> None:
    import random

    client = utils.RendererClient(url=renderer_url)
    img = client.render(utils.sample_params(random.Random(1)), size=64)
    assert img.shape == (64, 64, 3)
    client.close()
