"""What a request must pass before anything is read further or drawn: who sent it
(Host, Origin, Sec-Fetch-Site), its numbers (size, Content-Length) and its JSON.

Web pages are the threat here, not people: a page in the user's browser can make
the browser send requests to a renderer on 127.0.0.1. Three checks close that:

- Host must name this machine (localhost, 127.0.0.1, [::1]) or a host the server
  was told to answer to (the address it binds, `--allow-host`): DNS rebinding
  points a web site's own name at 127.0.0.1, so its requests carry that name.
- Origin, when present, must be a page on this machine (a POST from elsewhere).
- Sec-Fetch-Site `cross-site` is refused (browsers send it with an `<img src>` or
  a fetch from another site's page, and they send no Origin with an image GET),
  except a top-level navigation to the /render page: a person opening a link.
  Clients that are not browsers (Python's requests, curl, the original's own
  client) send no Sec-Fetch header and are not affected.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from art_explorer.scene import schema

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_SIZE = 1024
# Sizes the API takes. The original answers any size (1024 px above 1024); its
# thumbnail tool asks for 3840. Above bound.MAX_DRAW_SIZE the picture is drawn
# at that size and scaled up.
MIN_SIZE, MAX_SIZE = 32, 4096
MAX_LENGTH_DIGITS = 15  # a Content-Length longer than this is malformed, not big
# JSON nesting a request may carry: params nest 4 deep (a Leva entry holding a
# layer's {x, y}); 32 leaves room for clients' own keys, and keeps the recursive
# code that reads and re-encodes bodies far from Python's recursion limit.
MAX_JSON_DEPTH = 32


class RequestError(Exception):
    """A refused request: HTTP status, message and the offending field."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def host_name(host_header: str) -> str | None:
    """'Name:port', '[::1]:port', 'name' or a bare IPv6 address ('::1', as --host
    takes it) → the lower-case name without a trailing dot; None when it is not a
    host."""
    text = host_header.strip()
    if text.count(":") > 1 and not text.startswith("["):
        return text.lower()  # a Host header brackets an IPv6 address; --host not
    try:
        name = urlsplit(f"//{text}").hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def check_host(host_header: str | None, allowed: tuple[str, ...]) -> None:
    """RequestError 403 unless the Host header names this machine or one of
    `allowed` (names and addresses, any port). A request without Host (HTTP/1.0
    from a raw client) passes: a browser always sends one."""
    if host_header is None:
        return
    name = host_name(host_header)
    if name not in LOCAL_HOSTS and name not in allowed:
        raise RequestError(
            403,
            f"host: this renderer answers to "
            f"{', '.join(dict.fromkeys(LOCAL_HOSTS + allowed))}, "
            f"not {schema.clip_text(host_header, 80)} (python -m renderer.server "
            "--allow-host NAME adds one)",
            "host",
        )


def check_origin(origin: str | None) -> None:
    """RequestError 403 unless the Origin header is absent or names this machine
    (http(s)://localhost, 127.0.0.1 or [::1], any port): a web page elsewhere must
    not make the user's browser drive the local renderer."""
    if origin is None:
        return
    try:
        u = urlsplit(origin.strip())
        scheme, host = u.scheme, u.hostname
    except ValueError:
        scheme, host = "", None
    if scheme not in ("http", "https") or host not in LOCAL_HOSTS:
        raise RequestError(
            403,
            f"origin: requests from web pages are only taken from this machine, "
            f"not {schema.clip_text(origin, 80)}",
            "origin",
        )


def check_fetch_site(site: str | None, mode: str | None, page: bool) -> None:
    """RequestError 403 for a browser's cross-site request (Sec-Fetch-Site:
    cross-site), unless it is a navigation (Sec-Fetch-Mode: navigate) to a page
    route (`page`): an image or script of another site's page must not make the
    renderer draw, and a GET carries no Origin to tell."""
    if site is None or site.strip().lower() != "cross-site":
        return
    if page and (mode or "").strip().lower() == "navigate":
        return
    raise RequestError(
        403,
        "sec-fetch-site: cross-site requests from web pages are refused (open the "
        "renderer from this machine)",
        "origin",
    )


def parse_size(query: str) -> int:
    """`?size=N` → N (default 1024); an int in [MIN_SIZE, MAX_SIZE] or a
    RequestError."""
    values = parse_qs(query, keep_blank_values=True).get("size")
    if not values:
        return DEFAULT_SIZE
    raw = values[-1].strip()
    try:
        size = schema.parse_uint(raw, "size", max_digits=9)
    except schema.NumberError as e:
        raise RequestError(400, f"{e} (an integer)", "size") from None
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise RequestError(
            400, f"size: {size} is outside {MIN_SIZE}–{MAX_SIZE}", "size"
        )
    return size


def content_length(value: str) -> int:
    """A Content-Length header → bytes, or RequestError 400 (ASCII digits only)."""
    try:
        return schema.parse_uint(
            value.strip(), "body: Content-Length", MAX_LENGTH_DIGITS
        )
    except schema.NumberError as e:
        raise RequestError(400, str(e), "body") from None


def json_depth(v: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, [] or {} is 1), counted without
    recursion; stops counting once past `limit`."""
    depth = 0
    level = [v]
    while depth <= limit:
        containers = [x for x in level if isinstance(x, (dict, list, tuple))]
        if not containers:
            break
        depth += 1
        level = [
            y for x in containers for y in (x.values() if isinstance(x, dict) else x)
        ]
    return depth


def check_depth(v: Any, field: str) -> None:
    """RequestError 400 when parsed JSON nests deeper than MAX_JSON_DEPTH."""
    if json_depth(v) > MAX_JSON_DEPTH:
        raise RequestError(
            400, f"{field}: JSON nested deeper than {MAX_JSON_DEPTH} levels", field
        )


def _reject_constant(name: str) -> Any:
    raise RequestError(400, f"body: {name} is not a finite number", "body")


def parse_json(raw: bytes | str, field: str = "body") -> Any:
    """JSON text → its value; RequestError 400 when it is not JSON, holds NaN or
    Infinity, or nests deeper than MAX_JSON_DEPTH."""
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (ValueError, RecursionError) as e:
        raise RequestError(400, f"{field}: not JSON ({e})", field) from None
    check_depth(obj, field)
    return obj


def parse_request_params(
    obj: Any, field: str = "body"
) -> tuple[dict[str, Any], list[str]]:
    """A parsed body (either spelling, nested at most MAX_JSON_DEPTH deep) →
    (complete flat params, clamped field names); RequestError 400 for params that
    cannot be meant."""
    if not isinstance(obj, dict):
        raise RequestError(
            400, f"{field}: expected a JSON object, got {schema.json_type(obj)}", field
        )
    check_depth(obj, field)
    try:
        params, clamped = schema.parse_params(obj)
    except schema.ParamError as e:
        raise RequestError(400, e.message, e.field or field) from None
    return params, list(dict.fromkeys(clamped))
