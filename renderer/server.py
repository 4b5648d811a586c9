"""The bundled renderer's HTTP service (docs/scene.md; the API: this docstring).

    POST /api/raster[?size=N]  JSON params (either spelling) → 200 image/png
                               (X-Clamped: field,field when numbers were clamped;
                               X-Encoded-Params: the original's encoding, codec.py;
                               X-Drawn-Size: N when drawn smaller and scaled up)
    GET  /api/raster?params=J[&size=N]  the same, J the JSON in the query
    GET  /api/raster?parse=S   the original's encoded string S → its Leva entries
                               ({"Key": {"value": v}, ...}, a body POST takes)
    GET  /api/raster?health    → {"ok": true, "recycling": false, ...} (as the
                               original: its clients poll it after failures)
    GET  /render?c=S[&size=N]  the picture of the encoded string S (the original's
                               page): image/png, or for a browser (Accept:
                               text/html) a page showing it with its params;
                               &format=png always answers the PNG
    GET  /api/health           → {"version", "schema", "uptime", "renders", "workers"}
    GET  /api/schema           → schema.schema_json()

Sizes: 32–4096 (default 1024). Work: bound.py states the bound (1.5 CPU-s at 1024²,
3 s at 2048², 384 MB a request, 768 MB over the server) and holds it by drawing
smaller and scaling up. Bad input answers 4xx with {"error": "...", "field": "..."} before
anything is drawn; a bad request never takes the server down. Requests from web
pages elsewhere are refused (403; guard.py): a Host that is not this machine's (DNS
rebinding), an Origin of another machine, a browser's cross-site GET (an `<img>`
on another site). Numbers in the request (size, Content-Length, chunk sizes) are
ASCII digits of bounded length (schema.parse_uint); the log escapes control bytes.
Concurrency: `--workers` pre-forked processes share the
listening socket (skia holds the GIL while it draws, so threads alone do not use a
second core); each process also serves its connections on threads.

    python -m renderer.server [--host 127.0.0.1] [--port 3000] [--workers 2]
                              [--allow-host NAME ...]

Env: PORT (default 3000), RENDERER_HOST (the address to bind, default 127.0.0.1;
0.0.0.0 serves every network the machine is on: add the names clients use with
--allow-host or RENDERER_ALLOW_HOSTS=name,name). `--parent-pid PID` (what rendering.start_renderer passes) stops the
server when that process is gone, even when it was killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from art_explorer.scene import schema
from renderer import __version__, bound, codec, page
from renderer.guard import (
    RequestError,
    check_depth,
    check_fetch_site,
    check_host,
    check_origin,
    content_length,
    host_name,
    parse_json,
    parse_request_params,
    parse_size,
)
from renderer.workers import (
    exit_with_parent,
    log,
    printable,  # noqa: F401  (tests import it from here)
    run_prefork,
    tune_malloc,
)

MAX_BODY = 256 * 1024  # bytes
DISCARD_MAX = 4 * 1024 * 1024  # a refused body up to this size is read and dropped
RENDER_SLOTS = 2  # concurrent renders per process (the rest wait their turn)
MEMORY_WAIT_S = 60.0  # a render waits this long for memory, then answers 503
ROUTES = {
    "/api/raster": "POST, GET",
    "/render": "GET",
    "/api/health": "GET",
    "/api/schema": "GET",
}
MAX_CHUNK_DIGITS = 8  # hex digits of a chunk size (4 GiB - 1)


@dataclass
class Shared:
    """What every worker process shares (made before they fork): the render count,
    the memory pool, and the settings."""

    renders: Any  # multiprocessing.Value("q")
    memory: bound.MemoryPool
    workers: int
    verbose: bool
    allowed_hosts: tuple[str, ...]  # besides guard.LOCAL_HOSTS


class RendererHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server on an already bound, listening socket."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, shared: Shared, worker: int) -> None:
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.shared = shared
        self.worker = worker  # this process's slot in shared.memory
        self.started = time.time()
        # skia holds the GIL while drawing, so more concurrent renders per process
        # gain nothing and only add memory (bound.py: up to 384 MB a render)
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
            check_host(self.headers.get("Host"), self.server.shared.allowed_hosts)
            check_origin(self.headers.get("Origin"))
            check_fetch_site(
                self.headers.get("Sec-Fetch-Site"),
                self.headers.get("Sec-Fetch-Mode"),
                page=url.path == "/render",
            )
            allowed = ROUTES.get(url.path)
            if allowed is None:
                raise RequestError(404, f"no such path: {url.path}", "path")
            if method not in allowed.split(", "):
                raise RequestError(
                    405, f"{url.path} takes {allowed}, not {method}", "method"
                )
            if url.path == "/api/raster":
                self._raster(url.query)
            elif url.path == "/render":
                self._render_page(url.query)
            elif url.path == "/api/health":
                self._send_json(200, self._health())
            else:
                self._send_json(200, schema.schema_json())
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
            if self.server.shared.verbose:
                ms = 1000 * (time.perf_counter() - t0)
                log(
                    f"{self.client_address[0]} {method} {self.path} → 200 in {ms:.1f} ms"
                )

    def _raster(self, query: str) -> None:
        body = self._raster_get(query) if self.command == "GET" else self._read_body()
        if body is None:
            return
        size = parse_size(query)
        obj = parse_json(body)
        params, clamped = parse_request_params(obj)
        self._send_picture(params, size, codec.header_for(obj, params), clamped)

    def _send_picture(
        self,
        params: dict[str, Any],
        size: int,
        encoded: str | None,
        clamped: list[str],
    ) -> None:
        """Draw within the work bound (bound.py) and answer the PNG."""
        plan = bound.plan_render(params, size)
        shared = self.server.shared
        try:
            with (
                self.server.render_slots,
                shared.memory.reserve(
                    self.server.worker, plan.megabytes, MEMORY_WAIT_S
                ),
            ):
                png = bound.render_png(params, plan)
        except TimeoutError:
            raise RequestError(
                503, "busy: too many large renders at once, try again", "size"
            ) from None
        with shared.renders.get_lock():
            shared.renders.value += 1
        headers = {"Cache-Control": "no-store"}
        if clamped:
            headers["X-Clamped"] = ",".join(clamped)
        if encoded is not None:
            headers["X-Encoded-Params"] = encoded
        if plan.drawn != size:
            headers["X-Drawn-Size"] = str(plan.drawn)
        self._send(200, "image/png", png, headers)

    def _raster_get(self, query: str) -> bytes | None:
        """The original's GET routes, in its order: ?health, then ?params= (the body
        to render, returned), then ?parse= (answered here, None returned)."""
        q = parse_qs(query, keep_blank_values=True)
        if "health" in q:
            health = {"ok": True, "pool": RENDER_SLOTS, "consecutiveFails": 0}
            health |= {"totalRenders": int(self.server.shared.renders.value)}
            self._send_json(200, health | {"recycling": False} | self._health())
            return None
        if q.get("params", [""])[0]:
            return q["params"][0].encode()
        if not q.get("parse", [""])[0]:
            raise RequestError(400, "Missing ?params= or ?parse= param", "query")
        entries = codec.decode(q["parse"][0])
        check_depth(entries, "parse")
        self._send(
            200, "application/json", (codec.js_json(entries) + "\n").encode(), {}
        )
        return None

    def _render_page(self, query: str) -> None:
        """GET /render?c=S: the picture of the encoded string S (no c: the
        defaults, as the original's page draws), or for a browser its page."""
        q = parse_qs(query, keep_blank_values=True)
        encoded = q.get("c", [""])[-1]
        entries = codec.decode(encoded)
        if encoded.strip() and not entries:
            raise RequestError(
                400, "c: not an encoded params string (the original's codec)", "c"
            )
        check_depth(entries, "c")
        size = parse_size(query)
        params, clamped = parse_request_params(entries, "c")
        if page.wants_page(self.headers.get("Accept"), q):
            html = page.render_page(encoded, size, entries)
            self._send(200, "text/html; charset=utf-8", html, page.PAGE_HEADERS)
            return
        self._send_picture(params, size, codec.header_for(entries, params), clamped)

    def _has_body(self) -> bool:
        return bool(self.headers.get("Transfer-Encoding")) or self.headers.get(
            "Content-Length", "0"
        ).strip() not in ("", "0")

    def _read_body(self) -> bytes:
        """The request body, at most MAX_BODY bytes (Content-Length or chunked)."""
        te = self.headers.get("Transfer-Encoding")
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1 or (te is not None and lengths):
            # two framings of one body: how a request is smuggled past a proxy
            raise RequestError(
                400, "body: one Content-Length, or Transfer-Encoding alone", "body"
            )
        if te is not None:
            if te.strip().lower() != "chunked":
                raise RequestError(
                    400,
                    f"body: Transfer-Encoding {schema.clip_text(te)} is not supported "
                    "(chunked or a Content-Length)",
                    "body",
                )
            data = self._read_chunked()
            self.body_read = True
            return data
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "body: Content-Length is required", "body")
        n = content_length(length)
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
        if self.headers.get("Transfer-Encoding") is not None:
            self._drain()  # chunked: its length is unknown
            return
        try:
            n = content_length(self.headers.get("Content-Length", ""))
        except RequestError:
            self._drain()
            return
        if n <= DISCARD_MAX:
            with contextlib.suppress(OSError):
                self.rfile.read(n)

    def _drain(self, idle: float = 0.2, total: float = 1.0) -> None:
        """Read and drop what the client is still sending, up to DISCARD_MAX bytes,
        for at most `total` s or until it pauses for `idle` s: an answer sent while
        unread bytes wait would be lost to the reset that closing then causes."""
        end = time.monotonic() + total
        got = 0
        with contextlib.suppress(OSError, ValueError):
            while got < DISCARD_MAX and (left := end - time.monotonic()) > 0:
                self.connection.settimeout(min(idle, left))
                chunk = self.rfile.read1(65536)
                if not chunk:
                    break
                got += len(chunk)

    def _read_chunked(self) -> bytes:
        """A chunked body: each chunk size is 1-8 ASCII hex digits, and the total is
        counted against MAX_BODY before each chunk is read."""
        data = bytearray()
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                n = schema.parse_uint(
                    line.decode("ascii", "replace"), "chunk size", MAX_CHUNK_DIGITS, 16
                )
            except schema.NumberError as e:
                raise RequestError(
                    400, f"body: bad chunked encoding ({e})", "body"
                ) from None
            if n == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return bytes(data)
            if len(data) + n > MAX_BODY:
                raise RequestError(413, f"body: over the {MAX_BODY}-byte limit", "body")
            chunk = self.rfile.read(n)
            if len(chunk) < n:
                raise RequestError(400, "body: a chunk is cut short", "body")
            data += chunk
            self.rfile.readline(16)

    def _health(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "schema": schema.SCHEMA_VERSION,
            "uptime": round(time.time() - self.server.started, 3),
            "renders": int(self.server.shared.renders.value),
            "workers": self.server.shared.workers,
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
        if self.request_version == "HTTP/0.9":  # a line too broken to have parsed a
            self.request_version = "HTTP/1.0"  # version: answer with a status line
        text = message or HTTPStatus(code).phrase
        with contextlib.suppress(OSError):
            self._send_json(code, {"error": f"request: {text}", "field": "request"})
        log(f"{self.client_address[0]} → {code} {text}")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per error is logged by _dispatch; 200s only with --verbose


# ----------------------------------------------------------------------------------
# Processes


def serve(sock: socket.socket, shared: Shared, worker: int = 0) -> None:
    """Serve on `sock` in this process (worker slot `worker`) until killed."""
    server = RendererHTTPServer(sock, shared, worker)
    server.serve_forever(poll_interval=0.5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="The bundled scene renderer (HTTP).")
    g = ap.add_argument_group("network")
    g.add_argument(
        "--host",
        default=os.environ.get("RENDERER_HOST") or "127.0.0.1",
        help="address to bind (default $RENDERER_HOST or 127.0.0.1; 0.0.0.0 = every "
        "network this machine is on)",
    )
    g.add_argument(
        "--port", type=int, default=None, help="port to bind (default $PORT or 3000)"
    )
    g.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name or address to answer to besides localhost, 127.0.0.1, "
        "::1, --host and $RENDERER_ALLOW_HOSTS (comma-separated); repeatable, e.g. "
        "this machine's LAN name with --host 0.0.0.0. Requests naming any other "
        "host are refused: DNS rebinding",
    )
    g = ap.add_argument_group("serving")
    g.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("RENDERER_WORKERS") or min(os.cpu_count() or 1, 4)),
        help="pre-forked worker processes sharing the socket; 1 = a single threaded "
        "process (default: $RENDERER_WORKERS, else the CPU count, at most 4)",
    )
    g.add_argument(
        "--verbose", action="store_true", help="log one line per request too"
    )
    g.add_argument(
        "--parent-pid",
        type=schema.arg_uint,
        default=None,
        help="stop when the process PID (the one that started this server) is gone",
    )
    args = ap.parse_args(argv)
    if args.port is None:
        env = os.environ.get("PORT", "3000")
        try:
            args.port = schema.parse_uint(env.strip(), "$PORT", max_digits=5)
        except schema.NumberError:
            ap.error(f"$PORT is {schema.clip_text(env)}, not a port number")
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
    if args.parent_pid is not None:
        exit_with_parent(args.parent_pid)
    tune_malloc()
    workers = max(1, args.workers)
    if not hasattr(os, "fork"):
        workers = 1
    env_hosts = os.environ.get("RENDERER_ALLOW_HOSTS", "").split(",")
    allowed = [args.host, *args.allow_host, *(h for h in env_hosts if h.strip())]
    shared = Shared(
        renders=multiprocessing.Value("q", 0),
        memory=bound.MemoryPool(bound.SERVER_MEMORY_MB, workers),
        workers=workers,
        verbose=args.verbose,
        allowed_hosts=tuple(n for a in allowed if (n := host_name(a)) is not None),
    )
    host = f"[{args.host}]" if ":" in args.host else args.host
    kind = f"{workers} processes" if workers > 1 else "1 process, threads"
    log(
        f"serving http://{host}:{sock.getsockname()[1]}/api/raster ({kind}, v{__version__})"
    )
    try:
        if workers > 1:
            run_prefork(
                sock,
                workers,
                lambda worker: serve(sock, shared, worker),
                shared.memory.forget,
            )
        else:
            serve(sock, shared)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    main(parse_args())
