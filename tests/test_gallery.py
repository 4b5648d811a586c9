"""gallery.py: the API on a free port (real app, real renderer) and the page itself
driven by Playwright in headless Chromium (tests/gallery_fixtures.py; the browser
tests skip without chromium). Every test works in temp folders, never references/."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from gallery_fixtures import N_REFS, N_RESULTS, ROOT, Gallery, png

import gallery
import generate
import predict
from art_explorer import atomic, utils
from art_explorer.data import refs_io
from art_explorer.explore import novelty
from art_explorer.scene import rendering, sampling, schema

pytest_plugins = ["gallery_fixtures"]  # app, gal, browser, page


# ----------------------------------------------------------------------------------
# API


def test_refuses_other_origins_and_hosts(gal: Gallery) -> None:
    before = gal.lines()
    r = requests.post(
        f"{gal.url}/api/refs",
        json={"id": "out:0"},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403 and "another site" in r.json()["error"]
    r = requests.post(
        f"{gal.url}/api/refs",
        json={"id": "out:0"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403
    r = requests.get(f"{gal.url}/api/refs", headers={"Host": "evil.example"})
    assert r.status_code == 403  # DNS rebinding: only its own name
    assert gal.lines() == before
    r = requests.post(
        f"{gal.url}/api/refs", json={"id": "out:0"}, headers={"Origin": gal.url}
    )
    assert r.status_code == 200 and len(gal.lines()) == N_REFS + 1


def raw_get(port: int, path: str) -> int:
    """GET with the path sent as it is (no client-side normalisation of ..)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


def test_serves_nothing_outside_its_folders(gal: Gallery, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(4, 4))
    (gal.output / "images" / "link.png").unlink(missing_ok=True)
    (gal.output / "images" / "link.png").symlink_to(secret)
    (gal.output / "notes.py").write_text("x = 1\n")
    assert raw_get(gal.port, "/files/output/images/000000.png") == 200
    for path in (
        "/files/output/../../../../etc/passwd",
        "/files/output/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/files/output/..%2f..%2f..%2fetc%2fpasswd",
        f"/files/output/{secret}",
        f"/files/output//{secret}",
        "/files/output/images/link.png",  # a link out of the folder
        "/files/output/notes.py",  # not a picture, params or report
        "/files/etc/passwd",
        "/thumbs/output/../../secret.png",
        "/web/../gallery.py",
        "/web/%2e%2e/gallery.py",
    ):
        assert raw_get(gal.port, path) == 404, path
    r = requests.get(
        f"{gal.url}/api/params", params={"id": str(secret.with_suffix(".json"))}
    )
    assert r.status_code == 400


def test_results_newest_first_and_paged(gal: Gallery) -> None:
    page = requests.get(f"{gal.url}/api/results", params={"limit": 2}).json()
    assert page["total"] == N_RESULTS
    assert [it["id"] for it in page["items"]] == ["out:2", "out:1"]
    rest = requests.get(f"{gal.url}/api/results", params={"offset": 2}).json()
    assert [it["id"] for it in rest["items"]] == ["out:0"]
    thumb = requests.get(gal.url + page["items"][0]["thumb"])
    assert thumb.status_code == 200 and thumb.content.startswith(b"\xff\xd8")  # JPEG


def test_refs_listing_has_scores_stars_and_weights(gal: Gallery) -> None:
    refs = refs_io.load_refs(gal.refs)
    scored = gal.refs.with_name("refs-scored.jsonl")
    line = {"params": refs[1], "score": 0.75, "scorer": "heuristic", "line": 2}
    scored.write_text(json.dumps(line) + "\n")
    try:
        key = refs_io.ref_key(refs[1])
        assert requests.put(f"{gal.url}/api/refs/{key}/stars", json={"stars": 4}).ok
        listing = requests.get(f"{gal.url}/api/refs").json()["refs"]
    finally:
        scored.unlink()
    assert [r["line"] for r in listing] == list(range(1, N_REFS + 1))
    second = listing[1]
    assert (second["score"], second["scorer"]) == (0.75, "heuristic")
    assert (second["stars"], second["weight"]) == (4, 2.0)
    assert listing[0]["score"] is None and listing[0]["weight"] == 1.0
    r = requests.put(f"{gal.url}/api/refs/{key}/stars", json={"stars": 6})
    assert r.status_code == 400


def test_uploads_limited_with_a_clear_message(gal: Gallery) -> None:
    def upload(data: bytes, name: str = "x.png") -> requests.Response:
        return requests.post(
            f"{gal.url}/api/predict", files={"file": (name, data)}, data={"fevals": "5"}
        )

    r = upload(b"hello, not a picture", "x.txt")
    assert r.status_code == 400 and "not a picture" in r.json()["error"]
    r = upload(b"")
    assert r.status_code == 400 and "empty" in r.json()["error"]
    r = upload(png(8000, 6000, mode="L"))  # 48 MP, a few hundred kB
    assert r.status_code == 413 and "48 MP" in r.json()["error"]
    r = upload(b"\0" * (gallery.MAX_UPLOAD_BYTES + 10))
    assert r.status_code == 413 and "MB" in r.json()["error"]
    r = upload(b"\0" * (gallery.MAX_UPLOAD_BYTES + 2**17))  # refused before parsing
    assert r.status_code == 413 and "the limit is 20 MB" in r.json()["error"]
    assert not list(gal.output.glob("uploads/*"))  # nothing refused was kept


def test_two_tabs_at_once_lose_nothing(gal: Gallery) -> None:
    """Saves, ratings and a remove racing each other: every line that was there and
    every new one is there, the file parses, ratings are kept."""
    refs = refs_io.load_refs_numbered(gal.refs)
    keys = [refs_io.ref_key(p) for _, p in refs]
    calls = [("POST", "/api/refs", {"id": f"out:{i}"}) for i in range(N_RESULTS)]
    calls += [
        ("PUT", f"/api/refs/{k}/stars", {"stars": 1 + i % 5})
        for i, k in enumerate(keys)
    ]
    calls *= 2  # the same again from a second "tab": the saves become duplicates
    codes: list[int] = []

    def call(c: tuple[str, str, dict[str, Any]]) -> None:
        codes.append(requests.request(c[0], gal.url + c[1], json=c[2]).status_code)

    threads = [threading.Thread(target=call, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes).count(200) == len(calls) - N_RESULTS  # duplicates refused
    lines = gal.lines()
    assert lines[:N_REFS] == gal.seed_lines
    kept = [schema.validate_params(json.loads(x)) for x in lines[N_REFS:]]
    assert sorted(map(schema.canonical_json, kept)) == sorted(
        map(schema.canonical_json, gal.results)
    )
    ratings = refs_io.load_ratings(gal.refs)
    assert {k: ratings[k] for k in keys} == {k: 1 + i % 5 for i, k in enumerate(keys)}
    # a remove from a tab whose numbering is stale is refused, not done to another ref
    r = requests.delete(f"{gal.url}/api/refs/1", params={"key": keys[1]})
    assert r.status_code == 409 and gal.lines() == lines


def test_more_like_this_explores_from_the_picked_pictures(gal: Gallery) -> None:
    body = {"n": 2, "candidates": 8, "seed": 1, "from": ["out:0", "ref:2"]}
    job = requests.post(f"{gal.url}/api/explore", json=body).json()["job"]
    lines: list[str] = []
    since, state = 0, {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = requests.get(
            f"{gal.url}/api/jobs/{job}", params={"since": since}
        ).json()
        lines += [e["line"] for e in state["events"]]
        since = state["next"]
        if state["state"] != "running":
            break
        time.sleep(0.2)
    assert state["state"] == "done", state.get("error")
    assert any("refs: 2 from" in x for x in lines)  # bred from the two picks only
    ids = state["result"]["ids"]
    assert len(ids) == 2
    for i in ids:
        n = int(i.split(":")[1])
        assert (gal.output / "images" / f"{n:06d}.png").is_file()
        (gal.output / "images" / f"{n:06d}.png").unlink()  # leave out/ as it was
        (gal.output / "params" / f"{n:06d}.json").unlink()
    assert gal.lines() == gal.seed_lines


@pytest.fixture
def dead(gal: Gallery) -> Iterator[int]:
    """The port of a second app over the same folders whose renderer is gone."""
    port = rendering.free_port()
    app = gallery.create_app(
        gal.args, f"http://127.0.0.1:{rendering.free_port()}/api/raster", port
    )
    server = gallery.serve(app, port)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        t.join(10)


def test_dead_renderer_is_a_message(gal: Gallery, dead: int) -> None:
    port = dead
    r = requests.post(f"http://127.0.0.1:{port}/api/render", json=gal.results[0])
    assert r.status_code == 502 and "did not answer" in r.json()["error"]
    assert (
        requests.get(f"http://127.0.0.1:{port}/api/status").json()["renderer_ok"]
        is False
    )
    assert requests.get(f"http://127.0.0.1:{port}/api/refs").status_code == 200


def test_dead_renderer_page_says_so_and_stays_usable(page: Any, dead: int) -> None:
    page.goto(f"http://127.0.0.1:{dead}/#editor?id=ref:1")
    page.wait_for_selector("#editor-msg:has-text('did not answer')")
    assert "not answering" in page.inner_text("#renderer-status")
    page.click("nav a[data-view=explore]")  # the rest of the page still works
    page.wait_for_selector('.tile[data-id="out:0"]')


def test_ratings_scale_breeding_weights(tmp_path: Path) -> None:
    refs_path = tmp_path / "refs.jsonl"
    parents = [sampling.sample_params(random.Random(i)) for i in range(3)]
    refs_path.write_text(
        "".join(json.dumps(schema.to_prefixed(p)) + "\n" for p in parents)
    )
    assert refs_io.rated_weights(parents, refs_path) is None  # unrated: uniform
    assert refs_io.rated_weights(parents, refs_path, [0.5, 1.0, 2.0]) == [0.5, 1.0, 2.0]
    atomic.write_json(
        refs_io.ratings_path(refs_path),
        {"ratings": {refs_io.ref_key(parents[0]): 5, refs_io.ref_key(parents[2]): 1}},
    )
    assert refs_io.rated_weights(parents, refs_path) == [4.0, 1.0, 0.25]
    assert refs_io.rated_weights(parents, refs_path, [0.5, 1.0, 2.0]) == [2.0, 1.0, 0.5]
    args = generate.parse_args(["--refs", str(refs_path), "--out", str(tmp_path / "d")])
    assert generate.make_sampler(args, log=lambda _: None).weights == [4.0, 1.0, 0.25]
    pargs = predict.parse_args(
        ["--explore", "--refs", str(refs_path), "--scored-refs", str(tmp_path / "no")]
    )
    assert novelty.load_parents(pargs)[1] == [4.0, 1.0, 0.25]  # explore breeds so too
    refs_io.ratings_path(refs_path).write_text("{not json")
    with pytest.raises(refs_io.RefsError, match=r"ratings\.json"):
        refs_io.rated_weights(parents, refs_path)


def test_main_prints_its_url_and_serves(tmp_path: Path, renderer_url: str) -> None:
    port = rendering.free_port()
    env = {**os.environ, "GALLERY_PORT": str(port), "RENDERER_URL": renderer_url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "gallery.py",
            "--output",
            str(tmp_path),
            "--refs",
            str(tmp_path / "r.jsonl"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        for _ in range(100):
            try:
                r = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert r.status_code == 200 and "art-explorer" in r.text
    finally:
        proc.terminate()
        proc.wait(10)


# ----------------------------------------------------------------------------------
# The page in headless Chromium


def test_keep_a_result_and_see_it_in_refs(page: Any, gal: Gallery) -> None:
    page.goto(f"{gal.url}/#explore")
    page.locator('.tile[data-id="out:1"] button.keep').click()
    page.wait_for_selector("#toast:has-text('kept out:1')")
    lines = gal.lines()
    assert len(lines) == N_REFS + 1 and lines[:N_REFS] == gal.seed_lines
    assert schema.canonical_json(json.loads(lines[-1])) == schema.canonical_json(
        gal.results[1]
    )


def test_remove_a_ref(page: Any, gal: Gallery) -> None:
    page.goto(f"{gal.url}/#refs")
    page.locator('.tile[data-line="2"] button.remove').click()
    page.wait_for_selector("#toast:has-text('removed line 2')")
    assert gal.lines() == [gal.seed_lines[0], *gal.seed_lines[2:]]
    page.wait_for_function(
        f"document.querySelectorAll('#refs .tile').length === {N_REFS - 1}"
    )


def test_rate_a_ref_and_breeding_weights_change(page: Any, gal: Gallery) -> None:
    args = generate.parse_args(["--refs", str(gal.refs), "--out", str(gal.root / "d")])
    assert generate.make_sampler(args, log=lambda _: None).weights is None
    page.goto(f"{gal.url}/#refs")
    page.locator('.tile[data-line="3"] .stars button[data-star="5"]').click()
    page.wait_for_selector('.tile[data-line="3"] .stars[data-stars="5"]')
    page.locator('.tile[data-line="1"] .stars button[data-star="1"]').click()
    page.wait_for_selector('.tile[data-line="1"] .stars[data-stars="1"]')
    weights = generate.make_sampler(args, log=lambda _: None).weights
    assert weights == [0.25, 1.0, 4.0, 1.0]
    assert gal.lines() == gal.seed_lines  # the refs file is untouched


def test_upload_a_picture_and_get_a_result(
    page: Any, gal: Gallery, renderer_url: str
) -> None:
    target = rendering.RendererClient(url=renderer_url).render_png(gal.results[0], 96)
    page.goto(f"{gal.url}/#predict")
    for name, value in (
        ("fevals", "12"),
        ("size", "32"),
        ("gd_steps", "0"),
        ("final_size", "64"),
    ):
        page.fill(f'#predict-form input[name="{name}"]', value)
    page.set_input_files(
        "#predict-file",
        files=[{"name": "t.png", "mimeType": "image/png", "buffer": target}],
    )
    page.click("#predict-run")
    page.wait_for_selector("#predict-result:not([hidden])", timeout=90_000)
    assert page.locator("#stages tbody tr").count() >= 2  # stages streamed in
    assert "NCC" in page.inner_text("#predict-scores")
    m = re.match(r"out:(\d+):", page.inner_text("#predict-scores"))
    assert m is not None
    n = int(m.group(1))
    assert (gal.output / "params" / f"{n:06d}.json").is_file()
    page.click("#predict-keep")
    page.wait_for_selector(f"#toast:has-text('kept out:{n}')")
    assert len(gal.lines()) == N_REFS + 1


def test_drag_a_slider_and_the_picture_changes(page: Any, gal: Gallery) -> None:
    page.goto(f"{gal.url}/#editor?id=ref:1")
    idle = "window.editorIdle() && +document.querySelector('#editor-image').dataset.renders"
    page.wait_for_function(f"{idle} >= 1")
    n0 = int(page.get_attribute("#editor-image", "data-renders") or 0)
    before = page.locator("#editor-image").screenshot()
    slider = page.locator('#controls input[name="scale"]')
    box = slider.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    for f in (0.4, 0.5, 0.6, 0.7, 0.8):
        page.mouse.move(box["x"] + box["width"] * f, y)
    page.mouse.up()
    page.wait_for_function(f"{idle} > {n0}")  # the last (latest-wins) render is in
    after = page.locator("#editor-image").screenshot()
    a = np.asarray(utils.png_to_array(before))
    b = np.asarray(utils.png_to_array(after))
    assert np.abs(a - b).mean() > 0.005, "the picture did not change"
    # the edited params: copied in the prefixed spelling, saved as a new ref
    page.click("#editor-copy-prefixed")
    page.wait_for_selector("#editor-json:not([hidden])")
    copied = json.loads(page.input_value("#editor-json"))
    assert "Scalars.repetitions" in copied
    edited = schema.validate_params(copied)
    assert edited["scale"] != refs_io.load_refs(gal.refs)[0]["scale"]
    page.click("#editor-save")
    page.wait_for_selector("#toast:has-text('saved as')")
    lines = gal.lines()
    assert lines[:N_REFS] == gal.seed_lines and len(lines) == N_REFS + 1
    assert schema.canonical_json(json.loads(lines[-1])) == schema.canonical_json(edited)


def test_bad_upload_gets_a_message(page: Any, gal: Gallery) -> None:
    page.goto(f"{gal.url}/#predict")
    page.set_input_files(
        "#predict-file",
        files=[
            {"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture"}
        ],
    )
    page.click("#predict-run")
    page.wait_for_selector("#predict-error:not([hidden])")
    assert "not a picture" in page.inner_text("#predict-error")
