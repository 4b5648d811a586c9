"""The gallery's test bench, shared by tests/test_gallery*.py (`pytest_plugins`): the
real app on a free port over temp folders with a real renderer (`Gallery`), headless
Chromium (Debian's `chromium`; the browser tests skip without it), and the job
workers seen from /proc. Every test works in temp folders, never references/."""

from __future__ import annotations

import io
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import gallery
from art_explorer.data import refs_io
from art_explorer.gallery.worker import worker_pids
from art_explorer.predict.output import write_result
from art_explorer.scene import rendering, sampling, schema

ROOT = Path(__file__).resolve().parent.parent
N_REFS = 4
N_RESULTS = 3
# a job's processes are gone within this after a cancel: a guard against a hang,
# not a timing claim (bench/gallery.py measures how long a cancel takes)
HANG_S = 30.0


def chromium() -> str | None:
    """Debian's chromium (or $CHROMIUM); None when there is none."""
    for c in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


class Gallery:
    """The app on a free port over temp folders; reset() restores the files."""

    def __init__(self, root: Path, renderer_url: str) -> None:
        self.root, self.renderer_url = root, renderer_url
        self.refs = root / "references" / "refs.jsonl"
        self.output = root / "output"
        self.seed_lines = (ROOT / "references" / "refs.jsonl").read_text().splitlines()
        self.seed_lines = self.seed_lines[:N_REFS]
        self.port = rendering.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = gallery.parse_args(
            [
                *("--refs", str(self.refs), "--output", str(self.output)),
                *("--scored-refs", str(root / "references" / "refs-scored.jsonl")),
                *("--data", str(root / "data"), "--port", str(self.port)),
                *("--forward", str(root / "none"), "--inverse", str(root / "none")),
            ]
        )
        client = rendering.RendererClient(url=renderer_url)
        self.results = []
        for i in range(N_RESULTS):
            p = sampling.sample_params(random.Random(100 + i))
            write_result(self.output, i, p, client.render_png(p, 64))
            self.results.append(schema.validate_params(p))
        client.close()
        self.reset()
        self.server = gallery.serve(
            gallery.create_app(self.args, renderer_url, self.port), self.port
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the gallery did not start"
            time.sleep(0.05)

    def reset(self) -> None:
        self.refs.parent.mkdir(parents=True, exist_ok=True)
        self.refs.write_text("\n".join(self.seed_lines) + "\n")
        refs_io.ratings_path(self.refs).unlink(missing_ok=True)

    def lines(self) -> list[str]:
        return self.refs.read_text().splitlines()

    def cancel_jobs(self) -> None:
        """Cancel what still runs and wait until its processes are gone."""
        for j in requests.get(f"{self.url}/api/jobs").json().get("jobs", []):
            if j["state"] == "running":
                requests.post(f"{self.url}/api/jobs/{j['id']}/cancel")
        wait_for_no_workers()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def png(w: int, h: int, colour: Any = 0, mode: str = "RGB") -> bytes:
    """A plain w × h PNG of one colour."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


def wait_for_no_workers(timeout: float = HANG_S) -> None:
    """Until no gallery job worker is left on this machine (asserts within
    `timeout`, a hang guard)."""
    t0 = time.monotonic()
    while worker_pids():
        assert time.monotonic() - t0 < timeout, f"workers left: {worker_pids()}"
        time.sleep(0.05)


def new_page(browser: Any, width: int = 1280, height: int = 900) -> Any:
    """A page in its own context; JavaScript errors collect in `page.errors`."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    return pg


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, renderer_url: str
) -> Iterator[Gallery]:
    g = Gallery(tmp_path_factory.mktemp("gallery"), renderer_url)
    try:
        yield g
    finally:
        g.stop()


@pytest.fixture
def gal(app: Gallery) -> Iterator[Gallery]:
    """The module's gallery with its refs as they started; no job left running."""
    app.reset()
    yield app
    app.cancel_jobs()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = chromium()
    if exe is None:
        pytest.skip("no chromium found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, gal: Gallery) -> Iterator[Any]:
    pg = new_page(browser)
    try:
        yield pg
    finally:
        pg.context.close()
    assert not pg.errors, f"JavaScript errors on the page: {pg.errors}"
