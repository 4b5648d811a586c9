"""Routes for curation: the results grid, the refs (keep, remove, stars) and saving
the editor's params as a new ref."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from art_explorer.gallery import results
from art_explorer.gallery.context import Context, ctx
from art_explorer.gallery.errors import ApiError, Conflict, read_object
from art_explorer.gallery.routes_render import PREVIEW_MAX, checked_params
from art_explorer.scene import schema

PAGE_MAX = 500  # most results one /api/results page returns
router = APIRouter()


@router.get("/api/results")
def results_page(request: Request, offset: int = 0, limit: int = 120) -> dict[str, Any]:
    """A page of output/'s results, newest first, each with its source."""
    limit = max(1, min(limit, PAGE_MAX))
    return results.page(ctx(request).output, max(0, offset), limit)


@router.get("/api/results/refs")
def results_refs(request: Request, offset: int = 0, limit: int = 120) -> dict[str, Any]:
    """Which results of that page are refs already (asked after the first paint)."""
    c = ctx(request)
    refs = {schema.canonical_json(p) for p in c.store.numbered().values()}
    limit = max(1, min(limit, PAGE_MAX))
    return {"refs": results.ref_flags(c.output, max(0, offset), limit, refs)}


@router.get("/api/refs")
def refs_list(request: Request) -> dict[str, Any]:
    c = ctx(request)
    return {"refs": c.store.listing(), "file": str(c.store.path)}


def save_ref(c: Context, body: dict[str, Any]) -> dict[str, Any]:
    """{"id": ...} keeps that picture's params; {"params": ...} (the editor) writes
    them as a new result first, unless they already are a ref (409, nothing written)."""
    if isinstance(body.get("params"), dict):
        params = checked_params(body["params"])
        line = c.store.line_of(params)
        if line is not None:
            raise Conflict(f"these params are already a ref: line {line}")
        png = c.client.render_png(params, PREVIEW_MAX)
        idx, line = c.store.save_params(params, png)
        results.note_source(c.output, [idx], "editor")
        return {"line": line, "file": str(c.store.path), "id": f"out:{idx}"}
    if "id" in body:
        line = c.store.save(c.store.sample_path(body["id"]))
        return {"line": line, "file": str(c.store.path)}
    raise ApiError(400, 'send {"id": "out:N"} or {"params": {...}}')


@router.post("/api/refs")
async def refs_save(request: Request) -> Response:
    body = await read_object(request)
    return JSONResponse(await run_in_threadpool(save_ref, ctx(request), body))


@router.delete("/api/refs/{line}")
def refs_remove(request: Request, line: int, key: str) -> dict[str, Any]:
    ctx(request).store.remove(line, key)
    return {"removed": line}


@router.post("/api/refs/restore")
async def refs_restore(request: Request) -> Response:
    """{"params": ..., "line": N}: undo a remove, putting the ref back at line N."""
    body = await read_object(request)
    params = checked_params(body.get("params"))
    line = body.get("line")
    if type(line) is not int or line < 1:
        raise ApiError(400, "line must be a whole number from 1")
    at = await run_in_threadpool(ctx(request).store.restore, params, line)
    return JSONResponse({"line": at, "file": str(ctx(request).store.path)})


@router.put("/api/refs/{key}/stars")
async def refs_rate(key: str, request: Request) -> Response:
    stars = (await read_object(request)).get("stars")
    if type(stars) is not int or not 0 <= stars <= 5:
        raise ApiError(400, "stars must be 0 (none) to 5")
    await run_in_threadpool(ctx(request).store.rate, key, stars)
    return JSONResponse({"key": key, "stars": stars})
