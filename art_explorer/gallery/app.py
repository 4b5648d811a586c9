"""The gallery app: wires the options, the refs store, the jobs, the thumbnails and
the routes of each area into one FastAPI app, and serves it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from art_explorer.data import dataset, refs_io
from art_explorer.gallery import (
    errors,
    results,
    routes_archive,
    routes_files,
    routes_jobs,
    routes_refs,
    routes_render,
)
from art_explorer.gallery.context import Context, PredictDefaults
from art_explorer.gallery.options import GalleryOptions
from art_explorer.gallery.refs_store import RefsStore
from art_explorer.gallery.security import Guard
from art_explorer.gallery.thumbs import Thumbnails
from art_explorer.scene import rendering

WARM_THUMBS = 240  # thumbnails made at start, newest first (the first screens)


def _install_domain_errors(app: FastAPI) -> None:
    """The pipeline's own exceptions → the one JSON error shape."""

    @app.exception_handler(refs_io.RefsError)
    async def refs_error(_: Request, e: refs_io.RefsError) -> JSONResponse:
        return errors.err(500, str(e))

    @app.exception_handler(dataset.SampleError)
    async def ref_command_error(_: Request, e: Exception) -> JSONResponse:
        return errors.err(400, str(e))

    @app.exception_handler(rendering.RendererError)
    async def renderer_error(_: Request, e: rendering.RendererError) -> JSONResponse:
        return errors.err(502, str(e))


def create_app(options: GalleryOptions, renderer_url: str, port: int) -> FastAPI:
    """The FastAPI app for these folders, this renderer and this port (the port is
    what Host and Origin must name)."""
    output, data = Path(options.output), Path(options.data)
    c = Context(
        options=options,
        renderer_url=renderer_url,
        output=output,
        data=data,
        store=RefsStore(Path(options.refs), Path(options.scored_refs), data, output),
        client=rendering.RendererClient(url=renderer_url, timeout=10.0, retries=0),
        thumbs=Thumbnails(output / ".thumbs"),
    )
    c.defaults = PredictDefaults(c.model_flags())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        c.jobs.cancel_all()  # a job's process does not outlive its gallery

    app = FastAPI(
        title="art-explorer gallery", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.ctx = c
    app.add_middleware(Guard, port=port)
    errors.install(app)
    _install_domain_errors(app)
    areas = (routes_files, routes_render, routes_refs, routes_jobs, routes_archive)
    for area in areas:
        app.include_router(area.router)
    app.mount("/web", StaticFiles(directory=routes_files.WEB), name="web")
    layout = dataset.Layout(output)
    newest = [layout.image_path(i) for i in results.list_results(output)[:WARM_THUMBS]]
    threading.Thread(target=c.thumbs.warm, args=(newest,), daemon=True).start()
    return app


def serve(app: Any, port: int) -> Any:
    """A uvicorn server for `app` on 127.0.0.1:port (not started)."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
