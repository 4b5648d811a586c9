"""Routes for the background jobs: predict an uploaded picture, explore from the refs
or from picked pictures, follow, list and cancel them."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from art_explorer.gallery import results, uploads
from art_explorer.gallery.context import Context, ctx
from art_explorer.gallery.errors import ApiError, Conflict, int_field, read_object
from art_explorer.gallery.jobs import Job
from art_explorer.gallery.refs_store import check_id
from art_explorer.scene import schema

MAX_SEED = 2**31 - 1
router = APIRouter()


def _form_int(value: str, name: str, lo: int, hi: int) -> list[str]:
    """A form field → predict.py's flag, or nothing when blank (predict's default)."""
    if not value.strip():
        return []
    if not value.strip().isascii() or not value.strip().isdigit():
        raise ApiError(400, f"{name} must be a whole number")
    if not lo <= int(value) <= hi:
        raise ApiError(400, f"{name} must be within {lo}-{hi}")
    return [f"--{name.replace('_', '-')}", str(int(value))]


@router.get("/api/predict/defaults")
def predict_defaults(request: Request) -> dict[str, Any]:
    """The settings `make predict` runs with: what the page's form starts from."""
    defaults = ctx(request).defaults
    if defaults is None:
        raise ApiError(503, "predict's defaults are not being read")
    return defaults.get()


@router.post("/api/predict")
async def predict_upload(
    request: Request,
    file: UploadFile = File(...),  # noqa: B008 (FastAPI's idiom)
    fevals: str = Form(""),
    size: str = Form(""),
    gd_steps: str = Form(""),
    final_size: str = Form(""),
) -> Response:
    """An upload → a predict job with predict.py's defaults, except the fields the
    form sets (blank: the default)."""
    c = ctx(request)
    data = await file.read(uploads.MAX_UPLOAD_BYTES + 1)
    uploads.check_upload(data)
    flags = _form_int(fevals, "fevals", 1, 5000) + _form_int(size, "size", 32, 512)
    flags += _form_int(gd_steps, "gd_steps", 0, 5000)
    flags += _form_int(final_size, "final_size", 32, 2048)
    if c.jobs.running() is not None:  # before the upload is written
        raise Conflict("a job is already running; wait for it or cancel it")
    target = uploads.keep_upload(c.output, data, file.filename or "")
    data_dirs = [str(d) for d in (c.data, c.data / "quality") if d.is_dir()]
    argv = ["--target", str(target), *flags, "--data", *data_dirs, *c.model_flags()]

    def forget_upload(job: Job) -> None:
        if job.state != "done" or target.suffix not in uploads.KEPT_SUFFIXES:
            target.unlink(missing_ok=True)

    try:
        job = c.jobs.start("predict", argv, on_end=forget_upload)
    except Conflict:
        target.unlink(missing_ok=True)
        raise
    return JSONResponse({"job": job.id})


def explore_job(c: Context, body: dict[str, Any]) -> Job:
    """{"n", "candidates", "clip", "seed", "from": [ids]} → an explore job bred from
    the refs as curated now, or from the picked pictures ("more like this")."""
    n = int_field(body, "n", 8, 1, 64)
    cands = int_field(body, "candidates", 256, n, 4096)
    seed = int_field(body, "seed", int(time.time()) % 100000, 0, MAX_SEED)
    picked = body.get("from") or []
    if not isinstance(picked, list) or len(picked) > 256:
        raise ApiError(400, "from is a list of up to 256 IDs (out:N, ref:N, …)")
    parents = [c.store.params_of(check_id(pid)) for pid in picked]
    if c.jobs.running() is not None:
        raise Conflict("a job is already running; wait for it or cancel it")
    tmp = Path(tempfile.mkdtemp(prefix="gallery-explore-"))
    if parents:
        refs = tmp / "refs.jsonl"
        lines = [json.dumps(schema.to_prefixed(p)) for p in parents]
        refs.write_text("\n".join(lines) + "\n", encoding="utf-8")
        scored, note = tmp / "none.jsonl", f"{len(parents)} picked pictures"
    else:
        refs, scored, note = c.store.breeding_files(tmp)
    argv = ["--explore", "-n", str(n), "--candidates", str(cands), "--seed", str(seed)]
    argv += ["--refs", str(refs), "--scored-refs", str(scored), *c.model_flags()]
    if body.get("clip"):
        argv.append("--clip")

    def on_end(job: Job) -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        if job.state == "done" and job.result is not None:
            made = [int(i.split(":")[1]) for i in job.result.get("ids", [])]
            results.note_source(c.output, made, "explore")

    try:
        job = c.jobs.start("explore", argv, on_end=on_end)
    except Conflict:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    job.log(f"the gallery breeds from {note}")
    return job


@router.post("/api/explore")
async def explore(request: Request) -> Response:
    body = await read_object(request)
    job = await run_in_threadpool(explore_job, ctx(request), body)
    return JSONResponse({"job": job.id})


@router.get("/api/jobs")
def jobs_list(request: Request) -> dict[str, Any]:
    """Every job this gallery remembers, newest first: the page re-attaches to a
    running one after a reload and links the results of finished ones."""
    return {"jobs": ctx(request).jobs.listing()}


def _job(request: Request, job_id: str) -> Job:
    job = ctx(request).jobs.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "no such job")
    return job


@router.get("/api/jobs/{job_id}")
def job_status(request: Request, job_id: str, since: int = 0) -> dict[str, Any]:
    return _job(request, job_id).summary(since)


@router.post("/api/jobs/{job_id}/cancel")
def job_cancel(request: Request, job_id: str) -> dict[str, Any]:
    job = _job(request, job_id)
    ctx(request).jobs.cancel(job)
    return {"id": job.id, "state": job.state}
