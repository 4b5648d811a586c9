"""Routes for the page itself and the files it shows: /, /files, /thumbs, rounds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from art_explorer import utils
from art_explorer.gallery import files
from art_explorer.gallery.context import ctx
from art_explorer.gallery.errors import err

WEB = utils.ROOT / "web"
router = APIRouter()


@router.get("/")
def index() -> FileResponse:
    return FileResponse(WEB / "index.html")


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


@router.get("/files/{root}/{rel:path}")
def serve_file(request: Request, root: str, rel: str) -> Response:
    path = files.safe_file(ctx(request).roots, root, rel)
    if path is None:
        return err(404, "no such file")
    return FileResponse(path, media_type=files.SERVED_SUFFIXES[path.suffix.lower()])


@router.get("/thumbs/{root}/{rel:path}")
async def thumb(request: Request, root: str, rel: str) -> Response:
    c = ctx(request)
    path = files.safe_file(c.roots, root, rel)
    if path is None or path.suffix.lower() not in (".png", ".jpg"):
        return err(404, "no such picture")
    jpeg = await run_in_threadpool(c.thumbs.get, path)
    return Response(
        jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=60"}
    )


@router.get("/api/rounds")
def rounds(request: Request) -> dict[str, Any]:
    return {"rounds": files.round_reports(ctx(request).output)}
