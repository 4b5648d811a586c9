"""The bundled renderer's HTTP service (docs/scene.md; the API: this docstring).

    POST /api/raster[?size=N]  JSON params (either spelling) → 200 image/png
                               (X-Clamped: field,field when numbers were clamped)
    GET  /api/health           → {"version", "schema", "uptime", "renders", "workers"}
    GET  /api/schema           → utils.schema_json()

Bad input answers 4xx with {"error": "...", "field": "..."}; a bad request never
takes the server down. Concurrency: `--workers` pre-forked processes share the
listening socket (skia holds the GIL while it draws, so threads alone do not use a
second core); each process also serves its connections on threads.

    python -m renderer.server [--host 127.0.0.1] [--port 3000] [--workers 2]

Env: PORT (default 3000), HOST (default 127.0.0.1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import utils
from renderer import __version__
from renderer.scene import render_png

MAX_BODY = 256 * 1024  # bytes
DISCARD_MAX = 4 * 1024 * 1024  # a refused body up to this size is read and dropped
DEFAULT_SIZE = 1024
MIN_SIZE, MAX_SIZE = 32, 2048
RENDER_SLOTS = 2  # concurrent renders per process (the rest wait their turn)
ROUTES = {"/api/raster": "POST", "/api/health": "GET", "/api/schema": "GET"}


class RequestError(Exception):
    """A refused request: HTTP status, message and the offending field."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def parse_size(query: str) -> int:
    """`?size=N` → N (default 1024); an int in [32, 2048] or a RequestError."""
    values = parse_qs(query, keep_blank_values=True).get("size")
    if not values:
        return DEFAULT_SIZE
    raw = values[-1].strip()
    if not re.fullmatch(r"[+]?\d{1,9}", raw):
        raise RequestError(400, f"size: expected an integer, got {raw!r}", "size")
    size = int(raw)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise RequestError(
            400, f"size: {size} is outside {MIN_SIZE}–{MAX_SIZE}", "size"
        )
    return size


def _reject_constant(name: str) -> Any:
    raise RequestError(400, f"body: {name} is not a finite number", "body")


def parse_body(raw: bytes) -> tuple[dict[str, Any], list[str]]:
    """JSON body (either spelling) → (complete flat params, clamped field names)."""
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (ValueError, RecursionError) as e:
        raise RequestError(400, f"body: not JSON ({e})", "body") from None
    if not isinstance(obj, dict):
        raise RequestError(
            400, f"body: expected a JSON object, got {utils.json_type(obj)}", "body"
        )
    try:
        params, clamped = utils.parse_params(obj)
    except utils.ParamError as e:
        raise RequestError(400, e.message, e.field or "body") from None
    return params, list(dict.fromkeys(clamped))


class RendererHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server on an already bound, listening socket."""

    daemon_threads = True

    def __init__(
        self, sock: socket.socket, renders: Any, workers: int, verbose: bool
    ) -> None:
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.renders = renders  # multiprocessing.Value shared by all workers
        self.workers = workers
        self.verbose = verbose
        self.started = time.time()
        # skia holds the GIL while drawing, so more concurrent renders per process
        # gain nothing and only add memory (a 2048² render holds ~150 MB)
        self.render_slots = threading.BoundedSemaphore(RENDER_SLOTS)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log(f"{client_address[0]} connection error: {sys.exc_info()[1]!r}")


class Handler(BaseHTTPRequestHandler):
    """One connection; routes, size limits and JSON errors."""

    server: RendererHTTPServer
    body_read = False
    protocol_version = "HTTP/1.1"
    server_version = f"art-explorer-renderer/{__version__}"
    timeout = 60  # seconds a connection may sit idle or trickle its body

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to every answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        t0 = time.perf_counter()
        url = urlsplit(self.path)
        self.body_read = False
        try:
            allowed = ROUTES.get(url.path)
            if allowed is None:
                raise RequestError(404, f"no such path: {url.path}", "path")
            if method != allowed:
                raise RequestError(
                    405, f"{url.path} takes {allowed}, not {method}", "method"
                )
            if url.path == "/api/raster":
                self._raster(url.query)
            elif url.path == "/api/health":
                self._send_json(200, self._health())
            else:
                self._send_json(200, utils.schema_json())
        except RequestError as e:
            if not self.body_read and self._has_body():
                self._discard_body()  # so that the client reads our answer
                self.close_connection = True  # its unread body would poison the next
            extra = {"Allow": ROUTES[url.path]} if e.status == 405 else {}
            self._send_json(e.status, {"error": e.message, "field": e.field}, extra)
            log(
                f"{self.client_address[0]} {method} {url.path} → {e.status} {e.message}"
            )
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as e:
            self.close_connection = True
            log(
                f"{self.client_address[0]} {method} {url.path}: connection lost ({e!r})"
            )
        except Exception as e:  # a bad request must never take the server down
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_json(500, {"error": f"internal error: {e!r}", "field": ""})
            where = traceback.extract_tb(e.__traceback__)[-1]
            log(
                f"{self.client_address[0]} {method} {url.path} → 500 {e!r} "
                f"at {where.filename}:{where.lineno}"
            )
        else:
            if self.server.verbose:
                ms = 1000 * (time.perf_counter() - t0)
                log(
                    f"{self.client_address[0]} {method} {self.path} → 200 in {ms:.1f} ms"
                )

    def _raster(self, query: str) -> None:
        body = self._read_body()
        size = parse_size(query)
        params, clamped = parse_body(body)
        with self.server.render_slots:
            png = render_png(params, size)
        with self.server.renders.get_lock():
            self.server.renders.value += 1
        headers = {"Cache-Control": "no-store"}
        if clamped:
            headers["X-Clamped"] = ",".join(clamped)
        self._send(200, "image/png", png, headers)

    def _has_body(self) -> bool:
        return bool(self.headers.get("Transfer-Encoding")) or self.headers.get(
            "Content-Length", "0"
        ).strip() not in ("", "0")

    def _read_body(self) -> bytes:
        """The request body, at most MAX_BODY bytes (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = self._read_chunked()
            self.body_read = True
            return data
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "body: Content-Length is required", "body")
        if not length.strip().isdigit():
            raise RequestError(400, f"body: bad Content-Length {length!r}", "body")
        n = int(length)
        if n > MAX_BODY:
            raise RequestError(
                413, f"body: {n} bytes is over the {MAX_BODY}-byte limit", "body"
            )
        data = self.rfile.read(n)
        if len(data) < n:
            raise RequestError(400, "body: shorter than its Content-Length", "body")
        self.body_read = True
        return data

    def _discard_body(self) -> None:
        """Read and drop a refused body of up to DISCARD_MAX bytes (a bigger one is
        left unread: the connection closes)."""
        length = self.headers.get("Content-Length", "").strip()
        if length.isdigit() and int(length) <= DISCARD_MAX:
            with contextlib.suppress(OSError):
                self.rfile.read(int(length))

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                n = int(line, 16)
            except ValueError:
                raise RequestError(400, "body: bad chunked encoding", "body") from None
            if n == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return bytes(data)
            if len(data) + n > MAX_BODY:
                raise RequestError(413, f"body: over the {MAX_BODY}-byte limit", "body")
            data += self.rfile.read(n)
            self.rfile.readline(16)

    def _health(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "schema": utils.SCHEMA_VERSION,
            "uptime": round(time.time() - self.server.started, 3),
            "renders": int(self.server.renders.value),
            "workers": self.server.workers,
        }

    def _send_json(
        self, status: int, obj: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = (json.dumps(obj) + "\n").encode()
        self._send(status, "application/json", body, headers or {})

    def _send(
        self, status: int, ctype: str, body: bytes, headers: dict[str, str]
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        """http.server's own refusals (a malformed request line, headers too long,
        an unknown method) answer in JSON like every other error."""
        self.close_connection = True
        text = message or HTTPStatus(code).phrase
        with contextlib.suppress(OSError):
            self._send_json(code, {"error": f"request: {text}", "field": "request"})
        log(f"{self.client_address[0]} → {code} {text}")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per error is logged by _dispatch; 200s only with --verbose


def log(msg: str) -> None:
    print(f"renderer[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------
# Processes


def serve(sock: socket.socket, renders: Any, workers: int, verbose: bool) -> None:
    """Serve on `sock` in this process until killed."""
    server = RendererHTTPServer(sock, renders, workers, verbose)
    server.serve_forever(poll_interval=0.5)


def _watch_parent(parent: int) -> None:
    """In a worker: exit when the parent process is gone (no orphans)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _spawn(sock: socket.socket, renders: Any, workers: int, verbose: bool) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
        serve(sock, renders, workers, verbose)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def run_prefork(sock: socket.socket, renders: Any, workers: int, verbose: bool) -> None:
    """Fork `workers` processes on the shared socket; respawn one that dies; stop them
    all on SIGTERM/SIGINT."""
    sock.setblocking(False)  # workers race for accept(); the losers just poll again
    pids = {_spawn(sock, renders, workers, verbose) for _ in range(workers)}
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while pids:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        pids.discard(pid)
        if not stopping:
            log(f"worker {pid} exited (status {status}); starting another")
            pids.add(_spawn(sock, renders, workers, verbose))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="The bundled scene renderer (HTTP).")
    g = ap.add_argument_group("network")
    g.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="address to bind (default $HOST or 127.0.0.1)",
    )
    g.add_argument(
        "--port", type=int, default=None, help="port to bind (default $PORT or 3000)"
    )
    g = ap.add_argument_group("serving")
    g.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="pre-forked worker processes sharing the socket; 1 = a single threaded "
        "process (default: the CPU count, at most 4)",
    )
    g.add_argument(
        "--verbose", action="store_true", help="log one line per request too"
    )
    args = ap.parse_args(argv)
    if args.port is None:
        env = os.environ.get("PORT", "3000")
        if not env.strip().isdigit():
            ap.error(f"$PORT is {env!r}, not a port number")
        args.port = int(env)
    if not 0 <= args.port <= 65535:
        ap.error(f"--port must be in 0-65535, got {args.port}")
    return args


def main(args: argparse.Namespace) -> None:
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        sock = socket.create_server((args.host, args.port), family=family, backlog=256)
    except OSError as e:
        raise SystemExit(
            f"renderer: cannot listen on {args.host}:{args.port}: {e}"
        ) from None
    workers = max(1, args.workers)
    if not hasattr(os, "fork"):
        workers = 1
    renders = multiprocessing.Value("q", 0)
    host = f"[{args.host}]" if ":" in args.host else args.host
    kind = f"{workers} processes" if workers > 1 else "1 process, threads"
    log(
        f"serving http://{host}:{sock.getsockname()[1]}/api/raster ({kind}, v{__version__})"
    )
    try:
        if workers > 1:
            run_prefork(sock, renders, workers, args.verbose)
        else:
            serve(sock, renders, workers, args.verbose)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    main(parse_args())
