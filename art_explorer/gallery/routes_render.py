"""Routes for the editor: the schema, params of any picture, spelling conversion,
renders of params and of refs, and the renderer's status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from art_explorer.data import refs_io
from art_explorer.gallery.context import ctx
from art_explorer.gallery.errors import ApiError, read_json
from art_explorer.gallery.thumbs import THUMB
from art_explorer.scene import schema

MIN_RENDER = 32  # smallest picture the renderer draws (renderer/server.py MIN_SIZE)
PREVIEW_MAX = 512  # largest editor/thumbnail render the gallery asks for, px
router = APIRouter()


def check_size(size: int) -> int:
    """A render size the renderer will draw; ApiError 400 otherwise."""
    if not MIN_RENDER <= size <= PREVIEW_MAX:
        raise ApiError(400, f"size must be within {MIN_RENDER}-{PREVIEW_MAX}")
    return size


def checked_params(body: Any) -> dict[str, Any]:
    """Params in either spelling → complete flat params; ApiError 400 otherwise."""
    try:
        return schema.validate_params(body)
    except schema.ParamError as e:
        raise ApiError(400, e.message) from None
    except (ValueError, TypeError, RecursionError) as e:
        raise ApiError(400, f"not params: {e}"[:200]) from None


@router.get("/api/schema")
def get_schema() -> dict[str, Any]:
    return schema.schema_json()


@router.get("/api/status")
def status(request: Request) -> dict[str, Any]:
    c = ctx(request)
    return {
        "renderer": c.renderer_url,
        "renderer_ok": c.client.health(timeout=1.0) is not None,
        "refs": str(c.store.path),
        "output": str(c.output),
    }


@router.get("/api/params")
def params_of(request: Request, id: str) -> Response:
    """ref:N (refs line), out:N, q:N, N (data sample) → flat params."""
    return JSONResponse(ctx(request).store.params_of(id))


@router.post("/api/convert")
async def convert(request: Request) -> Response:
    """Any spelling → {"flat": ..., "prefixed": ...}."""
    flat = checked_params(await read_json(request))
    return JSONResponse({"flat": flat, "prefixed": schema.to_prefixed(flat)})


@router.post("/api/render")
async def render(request: Request, size: int = 256) -> Response:
    """Params (either spelling) → PNG from the renderer, size MIN_RENDER-PREVIEW_MAX."""
    check_size(size)
    params = checked_params(await read_json(request))
    png = await run_in_threadpool(ctx(request).client.render_png, params, size)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/api/refs/{line}/thumb.png")
def ref_thumb(
    request: Request, line: int, key: str = "", size: int = THUMB
) -> Response:
    c = ctx(request)
    check_size(size)
    p = c.store.numbered().get(line)
    if p is None or (key and refs_io.ref_key(p) != key):
        raise ApiError(404, "no such ref")
    png = c.client.render_png(p, size)
    return Response(
        png, media_type="image/png", headers={"Cache-Control": "max-age=3600"}
    )
