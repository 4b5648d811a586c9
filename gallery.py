"""Curate in the browser: a local web gallery for explore, references, predict and a
live param editor.

    python gallery.py                    # http://127.0.0.1:8000 (GALLERY_PORT)
    python gallery.py --port 8080 --output output --refs references/refs.jsonl

Views (web/index.html, plain HTML + JS, no build step): Explore (the results in
output/ newest first; keep one as a ref, "more like this", run explore), References
(every ref with its aesthetic score and a star rating; remove), Predict (upload an
image; the stages stream in), Editor (controls generated from the schema; the
picture re-renders at 256² as you drag) and Rounds (output/round-NNN/report.md).

The work is done by the project's own code: refs.py saves and removes refs (atomic
writes, under a lock so two tabs are safe), predict.run_inverse / run_explore run
as background jobs whose log lines the page polls, schema.schema_json drives the
editor, the renderer draws the previews. Star ratings go to references/ratings.json
(refs_io.load_ratings), which breeding reads as the refs' weights.

Safety: binds 127.0.0.1 only; requests must name this server as Host, and
state-changing ones from another Origin get 403; files are served only from the
output, data and references folders (no ../, no absolute paths, pictures and params
only); uploads are limited in bytes and pixels.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

import refs as refs_cli
from art_explorer import atomic, utils
from art_explorer.data import dataset, refs_io
from art_explorer.scene import rendering, schema

WEB = utils.ROOT / "web"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # an upload larger than this is refused (413)
MAX_UPLOAD_PIXELS = 40_000_000  # width × height above this is refused (413)
PREVIEW_MAX = 512  # largest editor/thumbnail render the gallery asks for, px
THUMB = 192  # thumbnail side of the grids, px
PAGE_MAX = 500  # most results one /api/results page returns
ROUND_RE = re.compile(r"^round-\d{3,}$")
SERVED_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".json": "application/json",
}
SERVED_SUFFIXES |= {".md": "text/markdown; charset=utf-8"}
STAGE_RE = re.compile(
    r"^\s+(\S+)\s+loss ([\d.]+|inf)\s+renders\s+(\d+)\s+([\d.]+) s$"
)  # search.invert's stage lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = ap.add_argument_group("server")
    s.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GALLERY_PORT") or 8000),
        help="port on 127.0.0.1 (default $GALLERY_PORT, else 8000)",
    )
    s.add_argument(
        "--renderer-url",
        default=None,
        help="POST /api/raster URL (default $RENDERER_URL, else localhost:3000; the "
        "bundled renderer starts when nothing answers there)",
    )
    f = ap.add_argument_group("folders")
    f.add_argument(
        "--refs",
        default="references/refs.jsonl",
        help="the refs file (references/refs.jsonl)",
    )
    f.add_argument(
        "--scored-refs",
        default="references/refs-scored.jsonl",
        help="aesthetic scores shown with the refs (references/refs-scored.jsonl)",
    )
    f.add_argument(
        "--output", default="output", help="predict/explore results (output)"
    )
    f.add_argument(
        "--data", default="data", help="training data, for data:N / q:N (data)"
    )
    m = ap.add_argument_group("predict and explore jobs")
    m.add_argument(
        "--forward", default=None, help="forward checkpoint (checkpoints/forward)"
    )
    m.add_argument(
        "--inverse", default=None, help="inverse checkpoint (checkpoints/inverse)"
    )
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------------
# Refs: every edit under one lock (threads of this server, and other processes via
# flock on a lock file), through refs.py's atomic writes.


class RefsStore:
    """The refs file, its ratings sidecar and the scored refs, for the gallery."""

    def __init__(self, refs: Path, scored: Path) -> None:
        self.path, self.scored = refs, scored
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the refs lock: this process's threads and any other gallery."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with self._lock, open(lock_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def listing(self) -> list[dict[str, Any]]:
        """Every ref: line, key, params, describe, stars, score, scorer."""
        numbered = refs_io.load_refs_numbered(self.path)
        ratings = refs_io.load_ratings(self.path)
        scores = self._scores()
        out = []
        for n, p in numbered:
            key = refs_io.ref_key(p)
            score, scorer = scores.get(key, (None, None))
            out.append(
                {
                    "line": n,
                    "key": key,
                    "params": p,
                    "describe": schema.describe(p),
                    "stars": ratings.get(key),
                    "weight": refs_io.rating_weight(ratings.get(key)),
                    "score": score,
                    "scorer": scorer,
                }
            )
        return out

    def _scores(self) -> dict[str, tuple[float, str]]:
        """ref_key → (score, scorer) from refs-scored.jsonl (empty when unreadable)."""
        out: dict[str, tuple[float, str]] = {}
        try:
            lines = self.scored.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return out
        for line in lines:
            try:
                obj = json.loads(line)
                key = refs_io.ref_key(obj["params"])
                out[key] = (float(obj["score"]), str(obj.get("scorer", "")))
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def save(self, source: Path) -> int:
        """Append the params at `source` (refs.py save); returns the line number."""
        with self.locked():
            return refs_cli.cmd_save(self.path, source)

    def remove(self, line: int, key: str) -> None:
        """Remove line `line` if it still holds the ref `key` (another tab may have
        moved it): refs.py rm, atomic."""
        with self.locked():
            here = dict(refs_io.load_refs_numbered(self.path)).get(line)
            if here is None or refs_io.ref_key(here) != key:
                raise Conflict(
                    f"line {line} of {self.path} is no longer that ref (changed in "
                    "another tab?); the list has been reloaded"
                )
            refs_cli.cmd_rm(self.path, line)

    def rate(self, key: str, stars: int) -> None:
        """Set (1-5) or clear (0) the stars of ref `key`; ratings of refs that are
        gone are dropped on the way."""
        with self.locked():
            keys = {refs_io.ref_key(p) for p in refs_io.load_refs(self.path)}
            if key not in keys:
                raise Conflict("no such ref (removed in another tab?)")
            ratings = {
                k: v for k, v in refs_io.load_ratings(self.path).items() if k in keys
            }
            if stars:
                ratings[key] = stars
            else:
                ratings.pop(key, None)
            atomic.write_json(
                refs_io.ratings_path(self.path), {"version": 1, "ratings": ratings}
            )


class Conflict(Exception):
    """The request no longer matches the files (409)."""


# ----------------------------------------------------------------------------------
# Jobs: predict and explore in a background thread, one at a time; the page polls
# GET /api/jobs/ID?since=N for the new events.


@dataclass
class Job:
    id: str
    kind: str
    events: list[dict[str, Any]] = field(default_factory=list)
    state: str = "running"  # running | done | error
    result: dict[str, Any] | None = None
    error: str = ""
    started: float = field(default_factory=time.time)

    def log(self, line: str) -> None:
        """predict's log: each line an event; search.invert's stage lines parsed."""
        ev: dict[str, Any] = {"t": round(time.time() - self.started, 2), "line": line}
        m = STAGE_RE.match(line)
        if m:
            ev["stage"] = {
                "name": m.group(1),
                "loss": float(m.group(2)),
                "renders": int(m.group(3)),
                "seconds": float(m.group(4)),
            }
        self.events.append(ev)


class Jobs:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, work: Callable[[Job], dict[str, Any]]) -> Job:
        with self._lock:
            if any(j.state == "running" for j in self.jobs.values()):
                raise Conflict("a job is already running; wait for it to finish")
            job = Job(uuid.uuid4().hex[:12], kind)
            self.jobs[job.id] = job

        def run() -> None:
            try:
                job.result = work(job)
                job.state = "done"
            except Exception as e:  # the page shows it; the server carries on
                job.error = f"{type(e).__name__}: {e}" if not str(e) else str(e)
                job.state = "error"

        threading.Thread(target=run, name=f"job-{job.id}", daemon=True).start()
        return job


# ----------------------------------------------------------------------------------
# Files: only from the named folders, only pictures, params and reports.


def safe_file(roots: dict[str, Path], root: str, rel: str) -> Path | None:
    """roots[root] / rel when that is a served kind of file inside the folder after
    resolving links and '..'; None otherwise (the caller answers 404)."""
    base = roots.get(root)
    if base is None or not rel or rel.startswith(("/", "\\")) or "\x00" in rel:
        return None
    try:
        base = base.resolve()
        path = (base / rel).resolve()
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or path.suffix.lower() not in SERVED_SUFFIXES:
        return None
    return path if path.is_file() else None


def list_results(output: Path) -> list[int]:
    """Indices of output/images/NNNNNN.png, newest (highest) first."""
    return sorted(dataset.Layout(output).indices("png"), reverse=True)


class Thumbnails:
    """side² JPEG thumbnails of result pictures: in memory (the newest few thousand),
    on disk under `cache` (output/.thumbs) across restarts; remade when the picture
    is newer. `warm` makes the newest ones ahead of the first page load."""

    def __init__(self, cache: Path, side: int = THUMB, keep: int = 4000) -> None:
        self.cache, self.side, self.keep = cache, side, keep
        self._mem: dict[Path, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, src: Path) -> bytes:
        mtime = src.stat().st_mtime
        hit = self._mem.get(src)
        if hit is not None and hit[0] >= mtime:
            return hit[1]
        dst = self.cache / f"{src.parent.name}-{src.stem}-{self.side}.jpg"
        try:
            data = dst.read_bytes() if dst.stat().st_mtime >= mtime else b""
        except OSError:
            data = b""
        if not data:
            data = self._make(src)
            atomic.atomic_write_bytes(dst, data)
        with self._lock:
            if len(self._mem) >= self.keep:
                self._mem.pop(next(iter(self._mem)))  # the oldest entry
            self._mem[src] = (mtime, data)
        return data

    def _make(self, src: Path) -> bytes:
        from PIL import Image

        with Image.open(src) as im:
            im = im.convert("RGB")
            factor = max(1, min(im.size) // (2 * self.side))
            if factor > 1:
                im = im.reduce(factor)  # box-average down to ≥ 2× the side, fast
            im.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=88)
        return buf.getvalue()

    def warm(self, pictures: list[Path]) -> None:
        """Make these thumbnails now (in a background thread), skipping failures."""
        for src in pictures:
            with contextlib.suppress(OSError, ValueError):
                self.get(src)


def check_upload(data: bytes) -> None:
    """Refuse what is not a picture, or is too large in bytes or pixels (UploadError
    with the message the page shows)."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(
            413,
            f"the file is {len(data) / 2**20:.1f} MB; the limit is "
            f"{MAX_UPLOAD_BYTES // 2**20} MB",
        )
    if not data:
        raise UploadError(400, "the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UploadError(
            400, "not a picture: PNG, JPEG, WebP, GIF or BMP expected"
        ) from None
    except Image.DecompressionBombError:
        raise UploadError(413, "the picture has far too many pixels") from None
    if w * h > MAX_UPLOAD_PIXELS:
        raise UploadError(
            413,
            f"the picture is {w}×{h} = {w * h / 1e6:.0f} MP; the limit is "
            f"{MAX_UPLOAD_PIXELS / 1e6:.0f} MP",
        )


class UploadError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# ----------------------------------------------------------------------------------
# The app


def create_app(args: argparse.Namespace, renderer_url: str, port: int) -> FastAPI:
    """The FastAPI app for these folders, this renderer and this port (the port is
    what Host and Origin must name)."""
    output, data = Path(args.output), Path(args.data)
    store = RefsStore(Path(args.refs), Path(args.scored_refs))
    jobs = Jobs()
    roots = {"output": output, "data": data, "references": Path(args.refs).parent}
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    origins = {f"http://{h}" for h in hosts}
    client = rendering.RendererClient(url=renderer_url, timeout=10.0, retries=0)
    app = FastAPI(title="art-explorer gallery", docs_url=None, redoc_url=None)

    def err(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    class Guard:
        """DNS rebinding: only this server's own name as Host; CSRF: state-changing
        requests only from its own pages (plain ASGI: no per-request overhead)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                hdr = {
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in scope["headers"]
                }
                refusal = ""
                if hdr.get("host", "") not in hosts:
                    refusal = "unknown Host: open the gallery at 127.0.0.1"
                elif scope["method"] not in ("GET", "HEAD", "OPTIONS") and (
                    hdr.get("origin", next(iter(origins))) not in origins
                    or hdr.get("sec-fetch-site") == "cross-site"
                ):
                    refusal = "refused: this request comes from another site"
                if refusal:
                    await err(403, refusal)(scope, receive, send)
                    return
                length = hdr.get("content-length", "0")
                if length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 2**16:
                    # refused before the multipart parser spools it to disk
                    msg = (
                        f"the upload is {int(length) / 2**20:.1f} MB; the limit is "
                        f"{MAX_UPLOAD_BYTES // 2**20} MB"
                    )
                    await err(413, msg)(scope, receive, send)
                    return
            await self.inner(scope, receive, send)

    app.add_middleware(Guard)
    thumbs_cache = Thumbnails(output / ".thumbs")
    newest = [dataset.Layout(output).image_path(i) for i in list_results(output)[:240]]
    threading.Thread(target=thumbs_cache.warm, args=(newest,), daemon=True).start()

    @app.exception_handler(refs_io.RefsError)
    async def refs_error(_: Request, e: refs_io.RefsError) -> JSONResponse:
        return err(500, str(e))

    @app.exception_handler(refs_cli.RefCommandError)
    async def ref_command_error(_: Request, e: Exception) -> JSONResponse:
        return err(400, str(e))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, e: Conflict) -> JSONResponse:
        return err(409, str(e))

    @app.exception_handler(rendering.RendererError)
    async def renderer_error(_: Request, e: rendering.RendererError) -> JSONResponse:
        return err(502, str(e))

    # -- pages and files

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/web", StaticFiles(directory=WEB), name="web")

    @app.get("/files/{root}/{rel:path}")
    def files(root: str, rel: str) -> Response:
        path = safe_file(roots, root, rel)
        if path is None:
            return err(404, "no such file")
        return FileResponse(path, media_type=SERVED_SUFFIXES[path.suffix.lower()])

    @app.get("/thumbs/{root}/{rel:path}")
    def thumbs(root: str, rel: str) -> Response:
        path = safe_file(roots, root, rel)
        if path is None or path.suffix.lower() not in (".png", ".jpg"):
            return err(404, "no such picture")
        return Response(
            thumbs_cache.get(path),
            media_type="image/jpeg",
            headers={"Cache-Control": "max-age=60"},
        )

    # -- schema, params, renders

    @app.get("/api/schema")
    def get_schema() -> dict[str, Any]:
        return schema.schema_json()

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        return {
            "renderer": renderer_url,
            "renderer_ok": client.health(timeout=1.0) is not None,
            "refs": str(store.path),
            "output": str(output),
        }

    def sample_path(sample_id: str) -> Path:
        """out:N, q:N or N → its params file; never a path the page names."""
        if sample_id.strip().endswith(".json") or "/" in sample_id or "\\" in sample_id:
            raise refs_cli.RefCommandError(f"bad ID {sample_id!r}: out:N, q:N or N")
        return refs_cli.resolve_id(sample_id, data, output)

    @app.get("/api/params")
    def params_of(id: str) -> Response:
        """ref:N (refs line), out:N, q:N, N (data sample) → flat params."""
        if id.startswith("ref:") and id[4:].isdigit():
            p = dict(refs_io.load_refs_numbered(store.path)).get(int(id[4:]))
            if p is None:
                return err(404, f"{store.path} has no ref on line {id[4:]}")
            return JSONResponse(p)
        return JSONResponse(refs_cli.read_params(sample_path(id)))

    @app.post("/api/convert")
    async def convert(request: Request) -> Response:
        """Any spelling → {"flat": ..., "prefixed": ...}."""
        try:
            flat = schema.validate_params(await request.json())
        except schema.ParamError as e:
            return err(400, e.message)
        except ValueError:
            return err(400, "the body is not JSON")
        return JSONResponse({"flat": flat, "prefixed": schema.to_prefixed(flat)})

    @app.post("/api/render")
    async def render(request: Request, size: int = 256) -> Response:
        """Params (either spelling) → PNG from the renderer, size ≤ PREVIEW_MAX."""
        if not 16 <= size <= PREVIEW_MAX:
            return err(400, f"size must be within 16-{PREVIEW_MAX}")
        try:
            params = schema.validate_params(await request.json())
        except schema.ParamError as e:
            return err(400, e.message)
        except ValueError:
            return err(400, "the body is not JSON")
        from starlette.concurrency import run_in_threadpool

        png = await run_in_threadpool(client.render_png, params, size)
        return Response(
            png, media_type="image/png", headers={"Cache-Control": "no-store"}
        )

    @app.get("/api/refs/{line}/thumb.png")
    def ref_thumb(line: int, key: str = "", size: int = THUMB) -> Response:
        p = dict(refs_io.load_refs_numbered(store.path)).get(line)
        if p is None or (key and refs_io.ref_key(p) != key):
            return err(404, "no such ref")
        png = client.render_png(p, max(16, min(size, PREVIEW_MAX)))
        return Response(
            png, media_type="image/png", headers={"Cache-Control": "max-age=3600"}
        )

    # -- results and refs

    @app.get("/api/results")
    def results(offset: int = 0, limit: int = 120) -> dict[str, Any]:
        ids = list_results(output)
        page = ids[max(0, offset) : max(0, offset) + max(1, min(limit, PAGE_MAX))]
        return {
            "total": len(ids),
            "offset": offset,
            "items": [
                {
                    "id": f"out:{i}",
                    "n": i,
                    "image": f"/files/output/images/{i:06d}.png",
                    "thumb": f"/thumbs/output/images/{i:06d}.png",
                    "params": f"/files/output/params/{i:06d}.json",
                }
                for i in page
            ],
        }

    @app.get("/api/refs")
    def refs_list() -> dict[str, Any]:
        return {"refs": store.listing(), "file": str(store.path)}

    @app.post("/api/refs")
    async def refs_save(request: Request) -> Response:
        """{"id": "out:3" | "q:12" | "328"} or {"params": {...}} (from the editor:
        written to output/ as a new result first, then kept) → a new refs line."""
        body = await request.json()
        if isinstance(body, dict) and isinstance(body.get("params"), dict):
            try:
                params = schema.validate_params(body["params"])
            except schema.ParamError as e:
                return err(400, e.message)
            from art_explorer.predict.output import write_result

            png = client.render_png(params, PREVIEW_MAX)
            with store.locked():  # two saves must not take the same index
                idx = dataset.Layout(output).next_index()
                write_result(output, idx, params, png)
            source = dataset.Layout(output).params_path(idx)
        elif isinstance(body, dict) and isinstance(body.get("id"), str):
            source = sample_path(body["id"])
        else:
            return err(400, 'send {"id": "out:N"} or {"params": {...}}')
        line = store.save(source)
        return JSONResponse({"line": line, "file": str(store.path)})

    @app.delete("/api/refs/{line}")
    def refs_remove(line: int, key: str) -> dict[str, Any]:
        store.remove(line, key)
        return {"removed": line}

    @app.put("/api/refs/{key}/stars")
    async def refs_rate(key: str, request: Request) -> Response:
        body = await request.json()
        stars = body.get("stars") if isinstance(body, dict) else None
        if type(stars) is not int or not 0 <= stars <= 5:
            return err(400, "stars must be 0 (none) to 5")
        store.rate(key, stars)
        return JSONResponse({"key": key, "stars": stars})

    # -- jobs

    def predict_args(extra: list[str]) -> Any:
        import predict

        models = []
        if args.forward:
            models += ["--forward", args.forward]
        if args.inverse:
            models += ["--inverse", args.inverse]
        return predict.parse_args(
            [*extra, "--out", str(output), "--renderer-url", renderer_url, *models]
        )

    @app.post("/api/predict")
    async def predict_upload(
        file: UploadFile = File(...),  # noqa: B008 (FastAPI's idiom)
        fevals: int = Form(200),
        size: int = Form(96),
        gd_steps: int = Form(300),
        final_size: int = Form(1024),
    ) -> Response:
        data_bytes = await file.read(MAX_UPLOAD_BYTES + 1)
        try:
            check_upload(data_bytes)
        except UploadError as e:
            return err(e.status, e.message)
        if not (1 <= fevals <= 5000 and 32 <= size <= 512 and 32 <= final_size <= 2048):
            return err(400, "fevals 1-5000, size 32-512, final size 32-2048")
        uploads = output / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        suffix = Path(file.filename or "").suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".img"
        fd, target = tempfile.mkstemp(dir=uploads, prefix="upload-", suffix=suffix)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data_bytes)
        data_dirs = [str(d) for d in (data, data / "quality") if d.is_dir()]
        a = predict_args(
            [
                *("--target", target, "--fevals", str(fevals), "--size", str(size)),
                *("--gd-steps", str(gd_steps), "--final-size", str(final_size)),
                *("--data", *data_dirs),
            ]
        )

        def work(job: Job) -> dict[str, Any]:
            import predict

            res = predict.run_inverse(a, log=job.log)
            n = res["id"]
            return {
                "id": f"out:{n}",
                "ncc": res["ncc"],
                "line_f1": res["line_f1"],
                "renders": res["renders"],
                "target": f"/files/output/uploads/{Path(target).name}"
                if suffix in (".png", ".jpg")
                else None,
                "image": f"/files/output/images/{n:06d}.png",
                "sheet": f"/files/output/predict-{n:06d}.png",
                "params": f"/files/output/params/{n:06d}.json",
            }

        job = jobs.start("predict", work)
        return JSONResponse({"job": job.id})

    @app.post("/api/explore")
    async def explore(request: Request) -> Response:
        """{"n", "candidates", "clip", "seed", "from": ["out:3", "ref:2", ...]}:
        explore bred from the refs, or from the given pictures ("more like this")."""
        body = await request.json()
        if not isinstance(body, dict):
            return err(400, "send a JSON object")
        try:
            n, cands = int(body.get("n", 8)), int(body.get("candidates", 256))
            seed = int(body.get("seed", int(time.time()) % 100000))
        except (TypeError, ValueError):
            return err(400, "n, candidates and seed are numbers")
        if not (1 <= n <= 64 and n <= cands <= 4096):
            return err(400, "n 1-64, candidates n-4096")
        extra = ["--explore", "-n", str(n), "--candidates", str(cands)]
        extra += ["--seed", str(seed)]
        if body.get("clip"):
            extra.append("--clip")
        picked = body.get("from") or []
        tmp: Path | None = None
        if picked:
            numbered = dict(refs_io.load_refs_numbered(store.path))
            parents = []
            for pid in picked:
                pid = str(pid)
                if (
                    pid.startswith("ref:")
                    and pid[4:].isdigit()
                    and int(pid[4:]) in numbered
                ):
                    parents.append(numbered[int(pid[4:])])
                else:
                    parents.append(refs_cli.read_params(sample_path(pid)))
            tmp = Path(tempfile.mkdtemp(prefix="gallery-explore-"))
            lines = [json.dumps(schema.to_prefixed(p)) for p in parents]
            (tmp / "refs.jsonl").write_text("\n".join(lines) + "\n")
            extra += ["--refs", str(tmp / "refs.jsonl")]
            extra += ["--scored-refs", str(tmp / "none.jsonl")]
        else:
            extra += ["--refs", str(store.path), "--scored-refs", str(store.scored)]
        a = predict_args(extra)

        def work(job: Job) -> dict[str, Any]:
            from art_explorer.explore import novelty

            try:
                res = novelty.run_explore(a, log=job.log)
            finally:
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
            return {"ids": [f"out:{i}" for i in res["ids"]], "novelty": res["novelty"]}

        job = jobs.start("explore", work)
        return JSONResponse({"job": job.id})

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str, since: int = 0) -> Response:
        job = jobs.jobs.get(job_id)
        if job is None:
            return err(404, "no such job")
        return JSONResponse(
            {
                "id": job.id,
                "kind": job.kind,
                "state": job.state,
                "events": job.events[max(0, since) :],
                "next": len(job.events),
                "result": job.result,
                "error": job.error,
            }
        )

    # -- rounds

    @app.get("/api/rounds")
    def rounds() -> dict[str, Any]:
        out = []
        if output.is_dir():
            for d in sorted(output.iterdir(), reverse=True):
                if ROUND_RE.match(d.name) and (d / "report.md").is_file():
                    out.append(
                        {
                            "name": d.name,
                            "report": f"/files/output/{d.name}/report.md",
                            "base": f"/files/output/{d.name}/",
                        }
                    )
        return {"rounds": out}

    return app


def serve(app: Any, port: int) -> Any:
    """A uvicorn server for `app` on 127.0.0.1:port (not started)."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )


def main(args: argparse.Namespace) -> int:
    """Serve the gallery until Ctrl-C; returns the exit code."""
    try:
        with rendering.ensure_renderer(args.renderer_url) as url:
            app = create_app(args, url, args.port)
            server = serve(app, args.port)
            print(
                f"gallery: http://127.0.0.1:{args.port}/  (renderer {url}; Ctrl-C stops)"
            )
            server.run()
    except rendering.RendererError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)
