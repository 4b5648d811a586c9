"""One JSON error shape for every refusal ({"error": message}) and the request-body
reader that turns bad JSON into a 400 instead of a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

MAX_BODY_DEPTH = 64  # deepest JSON nesting a request body may have (params need 4)
MAX_JSON_BODY = 4 * 2**20  # largest JSON body, bytes

log = logging.getLogger("gallery")


class ApiError(Exception):
    """A refusal with its HTTP status and the message the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Conflict(ApiError):
    """The request no longer matches the files (409)."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


def int_field(body: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    """body[name] as an int within lo-hi (JSON numbers only); ApiError 400 else."""
    v = body.get(name, default)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if type(v) is not int or not lo <= v <= hi:
        raise ApiError(400, f"{name} must be a whole number within {lo}-{hi}")
    return v


def err(status: int, message: str) -> JSONResponse:
    """The one error shape: {"error": message} with `status`."""
    return JSONResponse({"error": message}, status_code=status)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def parse_json(raw: bytes) -> Any:
    """A request body → parsed JSON, or ApiError 400 naming what is wrong: empty, not
    UTF-8 JSON, NaN/Infinity, or nested deeper than MAX_BODY_DEPTH."""
    if not raw.strip():
        raise ApiError(400, "the body is empty: send JSON")
    if len(raw) > MAX_JSON_BODY:
        raise ApiError(413, f"the body is over {MAX_JSON_BODY // 2**20} MB")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, "the JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not JSON ({e})"[:200]) from None
    if depth(value) > MAX_BODY_DEPTH:
        raise ApiError(400, f"the JSON is nested deeper than {MAX_BODY_DEPTH}")
    return value


async def read_json(request: Request) -> Any:
    """The request's body as checked JSON (parse_json)."""
    return parse_json(await request.body())


async def read_object(request: Request) -> dict[str, Any]:
    """The request's body as a checked JSON object."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "send a JSON object")
    return body


def install(app: FastAPI) -> None:
    """Every exception a route can raise → the one JSON shape (never a traceback)."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return err(e.status, e.message)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        return err(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return err(422, f"{where}: {first.get('msg', 'bad request')}")

    @app.exception_handler(Exception)
    async def internal(_: Request, e: Exception) -> JSONResponse:
        log.exception("gallery: internal error")
        return err(500, f"internal error: {type(e).__name__}")
