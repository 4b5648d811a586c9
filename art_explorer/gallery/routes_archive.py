"""Routes for explore's archive (output/archive/, grown by `make explore`): its map,
an elite's params, keeping an elite as a ref, and the job that grows it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from art_explorer.gallery import results
from art_explorer.gallery.context import Context, ctx
from art_explorer.gallery.errors import ApiError, Conflict, int_field, read_object
from art_explorer.gallery.jobs import Job
from art_explorer.gallery.routes_jobs import MAX_SEED
from art_explorer.gallery.routes_render import PREVIEW_MAX, check_size

MAX_LIKE = 64  # elites one "more like this" may name
router = APIRouter()


def archive_folder(c: Context) -> Path:
    """The archive `make explore` grows for this gallery's output folder."""
    return c.output / "archive"


def _open(c: Context) -> Any:
    """The archive (None when there is none yet); 409 when it cannot be read here."""
    from art_explorer.explore import archive

    folder = archive_folder(c)
    if not (folder / "archive.npz").is_file():
        return None
    try:
        return archive.Archive.open(folder)
    except archive.ArchiveError as e:
        raise Conflict(str(e)) from None


def summary(c: Context) -> dict[str, Any]:
    """Archive.summary() with each thumbnail as a /files URL; {"empty": true, …}
    with a message when explore has not grown an archive yet."""
    arch = _open(c)
    if arch is None:
        return {
            "empty": True,
            "message": "no archive yet: run an explore (here, or `make explore`)",
            "cells": [],
            "folder": str(archive_folder(c)),
        }
    out = arch.summary()
    for cell in out["cells"]:
        has = cell["thumb"] is not None
        cell["thumb"] = (
            f"/files/output/archive/thumbs/{cell['id']}.png" if has else None
        )
    return {"empty": False, **out}


def elite_params(c: Context, elite_id: int) -> dict[str, Any]:
    """The flat params of elite `elite_id`; 404 when the archive has no such elite."""
    from art_explorer.explore import solution

    arch = _open(c)
    if arch is None:
        raise ApiError(404, "no archive yet: run an explore")
    d = arch.elites()
    hit = [k for k, i in enumerate(d["elite_id"].tolist()) if i == elite_id]
    if not hit:
        raise ApiError(404, f"no elite {elite_id} in {arch.folder}")
    return solution.to_params(d["solution"][hit[0]])


def _elite_id(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ApiError(400, "an elite id is a whole number from 0 (elites.jsonl)")
    return value


@router.get("/api/archive")
async def archive_summary(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(summary, ctx(request)))


@router.get("/api/archive/elite/{elite_id}")
async def archive_elite(request: Request, elite_id: int) -> Response:
    params = await run_in_threadpool(elite_params, ctx(request), _elite_id(elite_id))
    return JSONResponse(params)


@router.get("/api/archive/elite/{elite_id}/image.png")
async def archive_elite_image(
    request: Request, elite_id: int, size: int = PREVIEW_MAX
) -> Response:
    """The elite rendered at `size` (the full-size view; thumbs/ holds the small one)."""
    c = ctx(request)
    check_size(size)
    params = await run_in_threadpool(elite_params, c, _elite_id(elite_id))
    png = await run_in_threadpool(c.client.render_png, params, size)
    return Response(
        png, media_type="image/png", headers={"Cache-Control": "max-age=60"}
    )


def keep_elite(c: Context, elite_id: int) -> dict[str, Any]:
    """The elite's params → a new result in output/ and a new refs line (as the
    editor's Save); 409 when they already are a ref."""
    params = elite_params(c, elite_id)
    line = c.store.line_of(params)
    if line is not None:
        raise Conflict(f"elite {elite_id} is already a ref: line {line}")
    png = c.client.render_png(params, PREVIEW_MAX)
    idx, line = c.store.save_params(params, png)
    results.note_source(c.output, [idx], "explore")
    return {"line": line, "file": str(c.store.path), "id": f"out:{idx}"}


@router.post("/api/archive/keep")
async def archive_keep(request: Request) -> Response:
    body = await read_object(request)
    elite = _elite_id(body.get("id"))
    return JSONResponse(await run_in_threadpool(keep_elite, ctx(request), elite))


def grow_job(c: Context, body: dict[str, Any]) -> Job:
    """{"renders", "n", "seed", "like": [elite ids]} → a job growing the archive
    (qd.grow, as `make explore`), seeded from the refs as curated now when new;
    "like" grows it from those elites only ("more like this")."""
    renders = int_field(body, "renders", 500, 1, 100_000)
    n = int_field(body, "n", 8, 0, 64)
    seed = int_field(body, "seed", int(time.time()) % 100000, 0, MAX_SEED)
    like = body.get("like") or []
    if not isinstance(like, list) or len(like) > MAX_LIKE:
        raise ApiError(400, f"like is a list of up to {MAX_LIKE} elite ids")
    like = [_elite_id(i) for i in like]
    argv = ["--renders", str(renders), "-n", str(n), "--seed", str(seed)]
    argv += ["--archive", str(archive_folder(c)), "--out", str(c.output)]
    argv += ["--refs", str(c.store.path), "--renderer-url", c.renderer_url]
    if like:
        argv += ["--like", *map(str, like)]

    def on_end(job: Job) -> None:
        if job.state == "done" and job.result is not None:
            made = [int(i.split(":")[1]) for i in job.result.get("ids", [])]
            results.note_source(c.output, made, "explore")

    job = c.jobs.start("archive", argv, on_end=on_end)
    note = f"elites {', '.join(map(str, like))}" if like else "the whole archive"
    job.log(f"the gallery grows {archive_folder(c)} from {note}")
    return job


@router.post("/api/archive/grow")
async def archive_grow(request: Request) -> Response:
    body = await read_object(request)
    job = await run_in_threadpool(grow_job, ctx(request), body)
    return JSONResponse({"job": job.id})
