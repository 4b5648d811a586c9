"""The gallery shows explore's archive (issue 31 item 4): /api/archive (empty, then a
tiny archive grown by qd.grow), an elite's params, picture and thumbnail, keep → a
ref, the grow job (as `make explore`), and the map in headless Chromium: cells
coloured by score, a thumbnail on hover, a click opens the elite."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from gallery_fixtures import Gallery, chromium

from art_explorer.data import refs_io
from art_explorer.explore import qd
from art_explorer.scene import schema

SHOT = os.environ.get("ARCHIVE_SHOT")  # a path: save the map's screenshot there


@pytest.fixture(scope="module")
def gal(
    tmp_path_factory: pytest.TempPathFactory, renderer_url: str
) -> Iterator[Gallery]:
    g = Gallery(tmp_path_factory.mktemp("gallery-archive"), renderer_url)
    try:
        yield g
    finally:
        g.stop()


def grow(gal: Gallery, renders: int) -> dict[str, Any]:
    """Grow the gallery's archive as `make explore` does, with a few renders."""
    args = qd.GrowArgs(
        renders=renders,
        archive=str(gal.output / "archive"),
        out=str(gal.output / "explore-out"),
        n=0,
        size=64,
        batch=4,
        scorer="heuristic",
        refs=str(gal.refs),
        renderer_url=gal.renderer_url,
    )
    return qd.grow(args, log=lambda _: None)


def key(params: dict[str, Any]) -> str:
    """Params in either spelling → their canonical JSON."""
    return schema.canonical_json(schema.parse_params(params)[0])


def elites(gal: Gallery) -> dict[int, dict[str, Any]]:
    path = gal.output / "archive" / "elites.jsonl"
    return {e["id"]: e for e in map(json.loads, path.read_text().splitlines())}


def test_no_archive_yet_is_a_clear_answer(gal: Gallery) -> None:
    r = requests.get(f"{gal.url}/api/archive")
    assert r.status_code == 200
    assert r.json()["empty"] is True and "no archive yet" in r.json()["message"]
    r = requests.get(f"{gal.url}/api/archive/elite/0")
    assert r.status_code == 404 and "no archive" in r.json()["error"]


def test_the_archive_its_elites_thumbnails_and_keep(gal: Gallery) -> None:
    grow(gal, 40)
    a = requests.get(f"{gal.url}/api/archive").json()
    assert a["empty"] is False and a["cells_filled"] == len(a["cells"]) > 0
    assert [len(c["cell"]) for c in a["cells"]] == [len(a["axes"])] * len(a["cells"])
    scores = [c["score"] for c in a["cells"]]
    assert scores == sorted(scores, reverse=True)  # best first
    on_disk = elites(gal)
    for c in a["cells"]:
        assert c["id"] in on_disk
        thumb = requests.get(f"{gal.url}{c['thumb']}")
        assert thumb.status_code == 200 and thumb.content[:8] == b"\x89PNG\r\n\x1a\n"
    best = a["cells"][0]["id"]
    params = requests.get(f"{gal.url}/api/archive/elite/{best}").json()
    assert schema.canonical_json(params) == key(on_disk[best]["params"])
    img = requests.get(f"{gal.url}/api/archive/elite/{best}/image.png?size=64")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    for bad, status in (("999999", 404), ("-1", 400), ("x", 422)):
        r = requests.get(f"{gal.url}/api/archive/elite/{bad}")
        assert r.status_code == status, r.text
        assert isinstance(r.json().get("error"), str)

    before = gal.lines()
    # an elite that is not a ref yet (the refs seeded the archive: some are)
    refs = {schema.canonical_json(p) for p in refs_io.load_refs(gal.refs)}
    fresh = [c["id"] for c in a["cells"] if key(on_disk[c["id"]]["params"]) not in refs]
    assert fresh, "the archive grew no elite beyond the refs"
    r = requests.post(f"{gal.url}/api/archive/keep", json={"id": fresh[0]})
    assert r.status_code == 200, r.text
    assert len(gal.lines()) == len(before) + 1 and r.json()["id"].startswith("out:")
    again = requests.post(f"{gal.url}/api/archive/keep", json={"id": fresh[0]})
    assert again.status_code == 409 and "already a ref" in again.json()["error"]
    gal.reset()
    r = requests.post(f"{gal.url}/api/archive/keep", json={"id": "1"})
    assert r.status_code == 400 and "elite id" in r.json()["error"]


def wait_job(gal: Gallery, job: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = requests.get(f"{gal.url}/api/jobs/{job}").json()
        if s["state"] != "running":
            return s
        time.sleep(0.5)
    raise AssertionError(f"job {job} still running after {timeout} s")


def test_the_gallery_grows_the_same_archive_and_more_like_this(gal: Gallery) -> None:
    if not (gal.output / "archive" / "archive.npz").exists():
        grow(gal, 40)
    before = requests.get(f"{gal.url}/api/archive").json()
    best = before["cells"][0]["id"]
    bad = requests.post(f"{gal.url}/api/archive/grow", json={"like": ["a"]})
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str)
    body = {"renders": 100, "n": 1, "seed": 3, "like": [best]}  # 3 emitters × 32
    job = requests.post(f"{gal.url}/api/archive/grow", json=body).json()["job"]
    s = wait_job(gal, job)
    assert s["state"] == "done", s["error"]
    assert s["kind"] == "archive"
    lines = [e["line"] for e in s["events"]]
    assert any(x.startswith("renders ") for x in lines), lines  # progress
    after = requests.get(f"{gal.url}/api/archive").json()
    assert after["renders"] > before["renders"]  # the same archive grew
    assert after["growth"][: len(before["growth"])] == before["growth"]
    for out_id in s["result"]["ids"]:
        n = int(out_id.split(":")[1])
        assert (gal.output / "images" / f"{n:06d}.png").is_file()


def test_the_map_shows_cells_hover_and_a_click_opens_the_elite(
    gal: Gallery, tmp_path: Path
) -> None:
    exe = chromium()
    if exe is None:
        pytest.skip("no chromium found (apt-get install chromium)")
    if not (gal.output / "archive" / "archive.npz").exists():
        grow(gal, 40)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True)
        try:
            pg = b.new_page(viewport={"width": 1280, "height": 1000})
            pg.set_default_timeout(30_000)
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(f"{gal.url}/#explore")
            pg.wait_for_selector("#archive-map .cell[data-id]")
            a = requests.get(f"{gal.url}/api/archive").json()
            best = a["cells"][0]
            # the best elite's slice is on screen once its tab is picked
            pg.click(f"#archive-tabs button >> nth={best['cell'][2]}")
            cell = pg.locator(f"#archive-map .cell[data-id='{best['id']}']")
            colour = cell.evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour.startswith("rgb(") and colour != "rgb(26, 26, 26)"
            cell.click()
            pg.wait_for_selector("#archive-elite:not([hidden])")
            assert f"elite {best['id']}" in pg.inner_text("#archive-elite-cap")
            pg.wait_for_function(
                "document.querySelector('#archive-elite-img').naturalWidth > 0"
            )
            cell.scroll_into_view_if_needed()
            cell.hover()
            pg.wait_for_selector("#archive-hover:not([hidden])")
            src = pg.get_attribute("#archive-hover img", "src") or ""
            assert src.endswith(f"/archive/thumbs/{best['id']}.png")
            pg.wait_for_function(
                "document.querySelector('#archive-hover img').naturalWidth > 0"
            )
            if SHOT:
                pg.screenshot(path=SHOT)
            pg.click("#archive-full")
            pg.wait_for_selector("#viewer:not([hidden]) img")
            pg.keyboard.press("Escape")
            pg.click("#archive-edit")
            pg.wait_for_function("location.hash.startsWith('#editor')")
            pg.wait_for_function(
                f"document.querySelector('#editor-id').value === 'elite:{best['id']}'"
            )
            assert not errors, errors
        finally:
            b.close()
