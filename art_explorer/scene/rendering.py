"""The renderer client: the one way the pipeline talks to a renderer (HTTP with
retries and a deadline), and starting/stopping the bundled one when nothing answers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from art_explorer import utils
from art_explorer.scene import schema

DEFAULT_RENDERER_URL = "http://localhost:3000/api/raster"

Render = Callable[[dict[str, Any], int], np.ndarray]
"""render(params, size) → float32 (size, size, 3) in [0, 1]: RendererClient.render, or
an in-process renderer's."""


class RendererError(RuntimeError):
    """The renderer could not be reached or refused the request; names the URL."""


def renderer_url(url: str | None = None) -> str:
    """--renderer-url, else $RENDERER_URL, else http://localhost:3000/api/raster."""
    return url or os.environ.get("RENDERER_URL") or DEFAULT_RENDERER_URL


def _sibling(url: str, path: str) -> str:
    u = urlparse(url)
    return u._replace(path=path, query="").geturl()


@dataclass
class RendererClient:
    """HTTP client for POST /api/raster with a connection pool, retries with
    exponential backoff on connection errors, timeouts and 5xx, and a clear error
    naming the URL when it gives up. 4xx answers are not retried (bad params).

    timeout: seconds one try may wait for an answer; deadline: seconds one render may
    take in all, tries and the waits between them together (so a renderer that
    accepts connections and never answers is reported after about `deadline` s)."""

    url: str = field(default_factory=renderer_url)
    timeout: float = 15.0
    deadline: float = 30.0
    retries: int = 4
    backoff: float = 0.25
    pool: int = 8

    def __post_init__(self) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        u = urlparse(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RendererError(
                f"{self.url!r} is not a renderer URL: expected one like "
                f"{DEFAULT_RENDERER_URL} (--renderer-url or RENDERER_URL)"
            )
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=self.pool, pool_maxsize=self.pool)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def render_png(self, params: dict[str, Any], size: int = 256) -> bytes:
        """Params (any spelling) → PNG bytes at size × size (sent prefixed)."""
        import requests

        body = schema.to_prefixed(params)
        last = ""
        end = time.monotonic() + self.deadline
        tries = 0
        for attempt in range(self.retries + 1):
            wait = min(self.timeout, end - time.monotonic())
            if wait <= 0:
                break
            tries += 1
            try:
                r = self._session.post(
                    self.url, params={"size": size}, json=body, timeout=wait
                )
            except requests.Timeout:
                last = f"no answer within {wait:.3g} s"
            except requests.RequestException as e:
                last = _os_reason(e) or type(e).__name__
            else:
                if r.status_code == 200:
                    if not r.content.startswith(PNG_SIGNATURE):
                        kind = r.headers.get("Content-Type", "no Content-Type")
                        raise RendererError(
                            f"renderer at {self.url} answered 200 but not a PNG "
                            f"({kind}): is that URL a renderer's /api/raster?"
                        )
                    return r.content
                if 400 <= r.status_code < 500:
                    raise RendererError(
                        f"renderer at {self.url} refused the request: {_error_text(r)}"
                    )
                last = f"HTTP {r.status_code}: {_error_text(r)}"
            if attempt < self.retries:
                time.sleep(
                    max(0.0, min(self.backoff * 2**attempt, end - time.monotonic()))
                )
        said = f"{tries} tries" if tries != 1 else "1 try"
        raise RendererError(
            f"renderer at {self.url} did not answer after {said} ({last}). "
            "Start it with `make renderer`, or set RENDERER_URL."
        )

    def render(self, params: dict[str, Any], size: int = 256) -> np.ndarray:
        """Params → float32 image (size, size, 3) in [0, 1]."""
        return utils.png_to_array(self.render_png(params, size))

    def health(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """GET /api/health as a dict, or None if nothing answers."""
        import requests

        try:
            r = self._session.get(_sibling(self.url, "/api/health"), timeout=timeout)
            return r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def close(self) -> None:
        self._session.close()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _os_reason(e: BaseException) -> str:
    """The operating system's reason behind a requests error ('Connection refused',
    'Name or service not known'), found down its chain of causes; '' if none."""
    todo, seen = [e], set()
    while todo:
        x = todo.pop(0)
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, OSError) and isinstance(x.errno, int) and x.strerror:
            return x.strerror
        more = (getattr(x, "reason", None), x.__cause__, x.__context__, *x.args)
        todo += [y for y in more if isinstance(y, BaseException)]
    return ""


def _error_text(r: Any) -> str:
    """What an error answer says: its JSON "error", else the start of its body."""
    try:
        obj = r.json()
    except ValueError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("error"), str):
        return obj["error"]
    return " ".join(r.text[:200].split()) or f"HTTP {r.status_code}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_renderer(
    port: int, host: str = "127.0.0.1", quiet: bool = True
) -> subprocess.Popen[bytes]:
    """Start the bundled renderer (renderer/server.py) on host:port and wait until it
    answers /api/health. The caller stops it (`stop_renderer`). A renderer that
    cannot start, or an interruption while waiting, leaves no process behind."""
    env = {**os.environ, "PORT": str(port), "RENDERER_HOST": host}
    out = subprocess.DEVNULL if quiet else None
    # Its stderr goes to a file (only errors are logged there), so that a renderer
    # that dies at start can say why: a missing library, a busy port.
    err: Any = tempfile.TemporaryFile() if quiet else None  # noqa: SIM115 (closed below)
    # Its own session: a Ctrl-C in the terminal reaches the pipeline, which finishes
    # its in-flight renders and then stops the renderer itself.
    proc = subprocess.Popen(
        # --parent-pid: it stops by itself if this process dies without stopping
        # it (kill -9), instead of staying up orphaned
        [sys.executable, "-m", "renderer.server", "--parent-pid", str(os.getpid())],
        cwd=utils.ROOT,
        env=env,
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    url_host = f"[{host}]" if ":" in host else host
    client = RendererClient(url=f"http://{url_host}:{port}/api/raster")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if client.health(timeout=0.5) is not None:
                return proc
            if proc.poll() is not None:
                why = _tail(err)
                hint = (
                    "is another program using the port? Free it, or set RENDERER_URL"
                    if not why or "in use" in why
                    else "set RENDERER_URL to a renderer that runs"
                )
                raise RendererError(
                    f"the bundled renderer could not start on {url_host}:{port} "
                    f"(exit code {proc.returncode}"
                    + (f": {why}" if why else "")
                    + f"): {hint}"
                )
            time.sleep(0.1)
        raise RendererError(
            f"the bundled renderer did not answer on {url_host}:{port} within 30 s"
        )
    except BaseException:
        stop_renderer(proc)
        raise
    finally:
        client.close()
        if err is not None:
            err.close()  # the server keeps writing to its own descriptor


def _tail(f: Any) -> str:
    """The last non-empty line of a captured stderr file ('' when there is none)."""
    if f is None:
        return ""
    f.seek(0)
    lines = f.read()[-4096:].decode("utf-8", "replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def stop_renderer(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a renderer that start_renderer started: SIGTERM (it stops its workers),
    SIGKILL when it has not exited after `timeout` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def ensure_renderer(url: str | None = None, log: Any = print) -> Iterator[str]:
    """Yield a renderer URL that answers. When nothing answers at `url` and it is on
    this machine, start the bundled renderer on its host and port, say so, and stop
    it at the end. A remote URL is used as it is (errors come with the first
    request)."""
    url = renderer_url(url)
    client = RendererClient(url=url, retries=0)
    try:
        if client.health() is not None:
            yield url
            return
    finally:
        client.close()
    u = urlparse(url)
    if u.hostname not in ("localhost", "127.0.0.1", "::1"):
        yield url
        return
    port = u.port or 80
    log(
        f"renderer: nothing answers at {url}; starting the bundled renderer on port {port}"
    )
    proc = start_renderer(port, "::1" if u.hostname == "::1" else "127.0.0.1")
    try:
        yield url
    finally:
        stop_renderer(proc)


# ----------------------------------------------------------------------------------
# Many renders at once


def render_in_order(
    render: Render, params: Iterable[dict[str, Any]], size: int, workers: int = 4
) -> Iterator[np.ndarray]:
    """render(p, size) for each p, in order, with up to `workers` requests in flight
    and no more finished renders waiting than that (so a long list streams in bounded
    memory). A failed render raises its error when its turn comes."""
    workers = max(1, workers)
    with ThreadPoolExecutor(workers, thread_name_prefix="render") as pool:
        pending: deque[Future[np.ndarray]] = deque()
        it = iter(params)
        for p in it:
            pending.append(pool.submit(render, p, size))
            if len(pending) >= workers:
                break
        while pending:
            img = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(render, nxt, size))
            yield img


def render_many(
    render: Render, params: Iterable[dict[str, Any]], size: int, workers: int = 4
) -> list[np.ndarray]:
    """Every render of `render_in_order`, as a list in the order of params."""
    return list(render_in_order(render, params, size, workers))
