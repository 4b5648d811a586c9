"""Integration tests: the real renderer service (python -m renderer.server) over HTTP
on a free port, started once per session by the `renderer_url` fixture."""

from __future__ import annotations

import io
import json
import random
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from PIL import Image

from art_explorer.scene import rendering, sampling, schema


def post(
    url: str, body: Any = None, size: int | str | None = 64, **kw: Any
) -> requests.Response:
    q = {} if size is None else {"size": size}
    if body is not None and "data" not in kw:
        kw["json"] = body
    return requests.post(url, params=q, timeout=30, **kw)


def sibling(url: str, path: str) -> str:
    return urlparse(url)._replace(path=path).geturl()


def raw_request(url: str, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection and hang up our side; the whole answer."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        return im.size


def test_port_from_flag_or_env_and_bad_ones_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from renderer import server

    monkeypatch.setenv("PORT", "3123")
    assert server.parse_args([]).port == 3123
    assert server.parse_args(["--port", "0"]).port == 0
    for argv, env in ((["--port", "70000"], "3000"), ([], "abc")):
        monkeypatch.setenv("PORT", env)
        with pytest.raises(SystemExit) as e:
            server.parse_args(argv)
        assert e.value.code == 2


def test_raster_answers_a_png_of_the_requested_size(renderer_url: str) -> None:
    for size in (32, 100, 257):
        r = post(renderer_url, {}, size)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "image/png"
        assert png_size(r.content) == (size, size)


def test_default_size_is_1024(renderer_url: str) -> None:
    r = post(renderer_url, {"Scalars.repetitions": 5}, size=None)
    assert r.status_code == 200 and png_size(r.content) == (1024, 1024)


def test_same_params_same_bytes_and_matches_in_process(renderer_url: str) -> None:
    from renderer.scene import render_png

    p = sampling.sample_params(random.Random(5))
    p["noiseEnabled"] = p["ditherEnabled"] = True
    a = post(renderer_url, schema.to_prefixed(p), 96).content
    b = post(renderer_url, schema.to_scene_params(p), 96).content
    assert a == b == render_png(schema.validate_params(p), 96)


def test_client_renders_sampled_params(renderer_url: str) -> None:
    client = rendering.RendererClient(url=renderer_url)
    try:
        img = client.render(sampling.sample_params(random.Random(1)), size=64)
    finally:
        client.close()
    assert img.shape == (64, 64, 3) and img.min() >= 0.0 and img.max() <= 1.0


def test_health_counts_renders(renderer_url: str) -> None:
    h0 = requests.get(sibling(renderer_url, "/api/health"), timeout=10).json()
    assert h0["version"] and h0["uptime"] >= 0 and h0["workers"] >= 1
    post(renderer_url, {}, 32)
    h1 = requests.get(sibling(renderer_url, "/api/health"), timeout=10).json()
    assert h1["renders"] >= h0["renders"] + 1


def test_schema_is_utils_schema(renderer_url: str) -> None:
    r = requests.get(sibling(renderer_url, "/api/schema"), timeout=10)
    assert r.status_code == 200 and r.json() == schema.schema_json()


def test_clamped_fields_are_named(renderer_url: str) -> None:
    r = post(
        renderer_url,
        {"Scalars.repetitions": 900, "Element.geoWidth": 5, "Scene.scale": 1},
    )
    assert r.status_code == 200
    assert set(r.headers["X-Clamped"].split(",")) == {"repetitions", "geoWidth"}
    assert "X-Clamped" not in post(renderer_url, {}).headers


BAD_BODIES = [
    (b"not json", "body"),
    (b"[1, 2]", "body"),
    (b'"a string"', "body"),
    (b'{"repetitions": NaN}', "body"),
    (b'{"repetitions": Infinity}', "body"),
    (b'{"Scalars.repetitions": 1e999}', "repetitions"),
    (b'{"Scalars.repetitions": 1' + b"0" * 400 + b"}", "repetitions"),
    (b'{"repetitions": "many"}', "repetitions"),
    (b'{"geometry": "blob"}', "geometry"),
    (b'{"Element.geometry": 3}', "geometry"),
    (b'{"color": "#GGHHII"}', "color"),
    (b'{"positionCoupled": "yes"}', "positionCoupled"),
    (b'{"position": 3}', "position"),
    (b'{"layers": {"a": 1}}', "layers"),
    (b'{"layers": [1]}', "layers[0]"),
    (b'{"layers": [' + b", ".join([b"{}"] * 65) + b"]}", "layers"),
    (b'{"Groups.g64.g64-rotation": 0.1}', "layers"),
    (b'{"repetitions": 500, "layers": [' + b", ".join([b"{}"] * 12) + b"]}", "layers"),
    (b'{"dither": 7}', "dither"),
    (b"\xff\xfe\x00", "body"),
    (b"[" * 100000, "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_bodies_answer_400_with_the_field(
    renderer_url: str, body: bytes, field: str
) -> None:
    r = post(renderer_url, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["field"] == field and err["error"]


def test_type_errors_use_json_names(renderer_url: str) -> None:
    for body, said in [
        (b"null", "body: expected a JSON object, got null"),
        (b"[1]", "body: expected a JSON object, got array"),
        (b'{"repetitions": "10"}', "repetitions: expected a number, got string"),
        (b'{"color": 255}', "color: expected a hex colour string, got number"),
    ]:
        assert post(renderer_url, data=body).json()["error"] == said


@pytest.mark.parametrize("size", ["31", "4097", "0", "-5", "abc", "1.5", "", "1e3"])
def test_bad_sizes_answer_400(renderer_url: str, size: str) -> None:
    r = post(renderer_url, {}, size)
    assert r.status_code == 400 and r.json()["field"] == "size"


def test_body_too_large_is_413(renderer_url: str) -> None:
    for n in (300 * 1024, 3 * 1024 * 1024):
        big = b'{"x": "' + b"a" * n + b'"}'
        r = post(renderer_url, data=big)
        assert r.status_code == 413 and r.json()["field"] == "body"


def test_missing_content_length_is_411(renderer_url: str) -> None:
    u = urlparse(renderer_url)
    answer = raw_request(
        renderer_url,
        f"POST {u.path}?size=32 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 411")
    assert b'"field": "body"' in answer


def test_chunked_body_is_read(renderer_url: str) -> None:
    r = post(renderer_url, data=iter([b'{"Scalars.', b'repetitions": 3}']))
    assert r.status_code == 200 and png_size(r.content) == (64, 64)


def test_unknown_path_404_and_wrong_method_405(renderer_url: str) -> None:
    r = requests.get(sibling(renderer_url, "/nope"), timeout=10)
    assert r.status_code == 404 and r.json()["field"] == "path"
    r = requests.delete(renderer_url, timeout=10)  # GET: the original's routes
    assert r.status_code == 405 and r.headers["Allow"] == "POST, GET"
    r = requests.post(sibling(renderer_url, "/api/health"), json={}, timeout=10)
    assert r.status_code == 405 and r.json()["field"] == "method"
    r = requests.put(renderer_url, json={}, timeout=10)
    assert r.status_code == 405


def test_keep_alive_survives_an_error(renderer_url: str) -> None:
    with requests.Session() as s:
        assert (
            s.post(
                renderer_url, params={"size": 99999}, json={}, timeout=10
            ).status_code
            == 400
        )
        assert s.post(renderer_url, data=b"{", timeout=10).status_code == 400
        r = s.post(renderer_url, params={"size": 32}, json={}, timeout=10)
        assert r.status_code == 200 and png_size(r.content) == (32, 32)


def test_concurrent_requests(renderer_url: str) -> None:
    rng = random.Random(9)
    bodies = [schema.to_prefixed(sampling.sample_params(rng)) for _ in range(6)]
    jobs = [bodies[i % len(bodies)] for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: post(renderer_url, b, 128), jobs))
    assert all(r.status_code == 200 for r in answers)
    for i, r in enumerate(answers):
        assert r.content == answers[i % len(bodies)].content


@pytest.mark.parametrize(
    ("request_line", "status"),
    [(b"GET /api/health extra HTTP/1.1", 400), (b"BREW /api/raster HTTP/1.1", 501)],
)
def test_malformed_requests_answer_json(
    renderer_url: str, request_line: bytes, status: int
) -> None:
    answer = raw_request(renderer_url, request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status)
    assert b"Content-Type: application/json" in head
    err = json.loads(body)
    assert err["field"] == "request" and err["error"].startswith("request: ")


def test_still_answers_after_garbage(renderer_url: str) -> None:
    raw_request(renderer_url, b"\x00\x01garbage that is not http\r\n\r\n")
    short = raw_request(
        renderer_url, b"POST /api/raster HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"
    )
    assert short.startswith(b"HTTP/1.1 400")
    with socket.create_connection(
        (urlparse(renderer_url).hostname, urlparse(renderer_url).port)
    ):
        pass  # connect and hang up
    for body, _ in BAD_BODIES:
        post(renderer_url, data=body)
    r = post(renderer_url, {}, 32)
    assert r.status_code == 200
    assert (
        requests.get(sibling(renderer_url, "/api/health"), timeout=10).status_code
        == 200
    )
