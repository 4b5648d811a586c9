"""rendering.py: the renderer client's errors and the bundled renderer's start and
stop."""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from art_explorer.scene import rendering, schema

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


def test_render_many_keeps_the_order_and_bounds_what_is_in_flight() -> None:
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def render(params: dict[str, Any], size: int) -> np.ndarray:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.01 * (params["i"] % 3))  # finish out of order
        with lock:
            state["now"] -= 1
        return np.full((size, size, 3), params["i"], np.float32)

    out = rendering.render_many(render, [{"i": i} for i in range(12)], 4, workers=3)
    assert [int(o[0, 0, 0]) for o in out] == list(range(12))
    assert out[0].shape == (4, 4, 3) and 1 <= state["most"] <= 3

    def broken(params: dict[str, Any], size: int) -> np.ndarray:
        raise rendering.RendererError("down")

    with pytest.raises(rendering.RendererError, match="down"):
        rendering.render_many(broken, [{"i": 0}], 4)
