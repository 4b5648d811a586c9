"""The gallery's API against hostile and odd requests (issue 32 G2-G6) and its jobs
(issue 34: progress, cancel, a listing that survives a reload, predict's defaults,
breeding from the refs as curated now, no files left behind). A real app on a free
port over temp folders (test_gallery's Gallery), a real renderer."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
from gallery_fixtures import N_REFS, ROOT, Gallery, png, wait_for_no_workers

import predict
from art_explorer.data import refs_io
from art_explorer.gallery.worker import worker_pids
from art_explorer.scene import rendering

DEEP = b"[" * 5000 + b"]" * 5000


pytest_plugins = ["gallery_fixtures"]  # app, gal


def is_json_4xx(r: requests.Response) -> bool:
    return 400 <= r.status_code < 500 and isinstance(r.json().get("error"), str)


def follow(url: str, job: str, until: Any, timeout: float = 120.0) -> dict:
    """Poll the job until `until(state, lines)` holds; returns the last state."""
    lines: list[str] = []
    since, state = 0, {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = requests.get(f"{url}/api/jobs/{job}", params={"since": since}).json()
        lines += [e["line"] for e in state["events"]]
        state["lines"] = lines
        since = state["next"]
        if until(state, lines):
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job} never got there: {lines[-5:]}")


# ----------------------------------------------------------------------------------
# G2: one JSON error shape, 4xx, for bad bodies and IDs


def test_bad_bodies_get_a_json_4xx(gal: Gallery) -> None:
    key = refs_io.ref_key(refs_io.load_refs(gal.refs)[0])
    routes = [
        ("POST", "/api/refs"),
        ("PUT", f"/api/refs/{key}/stars"),
        ("POST", "/api/explore"),
        ("POST", "/api/convert"),
        ("POST", "/api/render"),
    ]
    for method, path in routes:
        for body in (b"", b"not json", b"{", DEEP, b"\xff\xfe"):
            r = requests.request(
                method,
                gal.url + path,
                data=body,
                headers={"Content-Type": "application/json"},
            )
            assert is_json_4xx(r), (method, path, body[:10], r.status_code, r.text)
    assert gal.lines() == gal.seed_lines


def test_bad_explore_settings_and_ids_get_a_json_4xx(gal: Gallery) -> None:
    for body in (
        b'{"n": Infinity}',
        b'{"seed": Infinity}',
        b'{"n": NaN}',
        b'{"n": 1e400}',
        b'{"n": "8"}',
        b'{"n": true}',
        b'{"from": 5}',
        b'{"from": ["ref:\xc2\xb2"]}',
        b'{"from": ["../../etc/passwd"]}',
        b'{"from": [{"id": 1}]}',
    ):
        r = requests.post(
            f"{gal.url}/api/explore",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert is_json_4xx(r), (body, r.status_code, r.text)
    for bad in ("ref:²", "out:²", "²", "ref:", "ref:-1", "x" * 5000):
        r = requests.get(f"{gal.url}/api/params", params={"id": bad})
        assert is_json_4xx(r), (bad, r.status_code, r.text)
    assert requests.get(f"{gal.url}/api/params", params={"id": "ref:1"}).ok
    assert not worker_pids()  # nothing refused started a job


# ----------------------------------------------------------------------------------
# G3: sizes checked where they enter


def test_sizes_the_renderer_refuses_are_refused_by_the_gallery(gal: Gallery) -> None:
    p = refs_io.load_refs(gal.refs)[0]
    for size in (16, 20, 31, 513, -1):
        r = requests.post(f"{gal.url}/api/render", params={"size": size}, json=p)
        assert r.status_code == 400 and "size" in r.json()["error"], (size, r.text)
        r = requests.get(f"{gal.url}/api/refs/1/thumb.png", params={"size": size})
        assert r.status_code == 400 and "size" in r.json()["error"], (size, r.text)
    r = requests.post(f"{gal.url}/api/render", params={"size": 32}, json=p)
    assert r.ok and r.content.startswith(b"\x89PNG")


# ----------------------------------------------------------------------------------
# G4, G5: thumbnails


def test_thumbnails_of_two_folders_are_not_shared(gal: Gallery) -> None:
    from PIL import Image

    mine = gal.output / "images" / "000007.png"
    theirs = gal.root / "data" / "images" / "000007.png"
    theirs.parent.mkdir(parents=True, exist_ok=True)
    mine.write_bytes(png(64, 64, (255, 0, 0)))
    theirs.write_bytes(png(64, 64, (0, 0, 255)))
    try:
        colours = []
        for url in (
            "/thumbs/output/images/000007.png",
            "/thumbs/data/images/000007.png",
        ):
            r = requests.get(gal.url + url)
            assert r.status_code == 200, r.text
            with Image.open(io.BytesIO(r.content)) as im:
                colours.append(im.convert("RGB").getpixel((10, 10)))
        red, blue = colours
        assert red[0] > 200 and red[2] < 50, red
        assert blue[2] > 200 and blue[0] < 50, blue
    finally:
        mine.unlink()


def test_a_truncated_picture_gets_a_clean_refusal(gal: Gallery) -> None:
    broken = gal.output / "images" / "000005.png"
    whole = png(300, 300, (10, 200, 30))
    broken.write_bytes(whole[: len(whole) // 2])
    try:
        r = requests.get(f"{gal.url}/thumbs/output/images/000005.png")
        assert is_json_4xx(r), (r.status_code, r.text)
        assert "cannot be read" in r.json()["error"]
        assert requests.get(f"{gal.url}/api/results").ok  # the grid still lists
    finally:
        broken.unlink()


# ----------------------------------------------------------------------------------
# G6: a job does not block the server


def test_the_first_predict_does_not_block_the_gallery(
    tmp_path: Path, renderer_url: str
) -> None:
    """A fresh gallery process (nothing imported yet): while the first predict
    searches (in its own process), the other requests are answered."""
    port = rendering.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RENDERER_URL": renderer_url}
    proc = subprocess.Popen(
        [
            *(sys.executable, "gallery.py", "--port", str(port)),
            *("--output", str(tmp_path), "--refs", str(tmp_path / "r.jsonl")),
            *("--data", str(tmp_path / "d")),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                requests.get(url + "/api/results", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        r = requests.post(
            url + "/api/predict",
            files={"file": ("t.png", png(64, 64, (200, 50, 50)))},
            data={"fevals": "2000", "gd_steps": "0"},
            timeout=60,
        )
        assert r.ok, r.text
        job = r.json()["job"]
        # once predict is searching, the rest of the page is answered beside it
        follow(url, job, lambda s, lines: any("search:" in x for x in lines))
        for _ in range(5):
            assert requests.get(url + "/api/results", timeout=30).ok
        assert requests.get(f"{url}/api/jobs/{job}").json()["state"] == "running"
        requests.post(f"{url}/api/jobs/{job}/cancel")
    finally:
        proc.terminate()
        proc.wait(10)
    wait_for_no_workers()


# ----------------------------------------------------------------------------------
# Jobs: predict's defaults, progress, cancel, the listing


def test_predict_runs_with_make_predicts_defaults_and_cancels(gal: Gallery) -> None:
    make = predict.parse_args(["--target", "x.png"])
    defaults = requests.get(f"{gal.url}/api/predict/defaults", timeout=150).json()
    assert (defaults["fevals"], defaults["size"]) == (make.fevals, make.size)
    assert defaults["gd_steps"] == make.gd_steps
    assert defaults["final_size"] == make.final_size
    r = requests.post(
        f"{gal.url}/api/predict", files={"file": ("t.png", png(64, 64, (0, 90, 200)))}
    )
    assert r.ok, r.text
    job = r.json()["job"]
    state = follow(gal.url, job, lambda s, lines: any("search:" in x for x in lines))
    search = next(x for x in state["lines"] if x.startswith("search:"))
    assert f"{make.fevals} renders at {make.size}²" in search  # as make predict
    prog = state["progress"]
    assert prog["stage"] and 0 <= prog["fraction"] < 1
    assert prog["eta_s"] is None or prog["eta_s"] > 0
    listed = requests.get(f"{gal.url}/api/jobs").json()["jobs"]
    assert listed[0]["id"] == job and listed[0]["state"] == "running"
    assert worker_pids()
    r = requests.post(f"{gal.url}/api/jobs/{job}/cancel")
    assert r.ok and r.json()["state"] == "cancelled"
    wait_for_no_workers()  # the job's processes are ended (bench/gallery.py: how fast)
    state = requests.get(f"{gal.url}/api/jobs/{job}").json()
    assert state["state"] == "cancelled" and state["progress"]["fraction"] == 1.0
    for _ in range(40):  # the job's end removes a cancelled job's upload
        if not list(gal.output.glob("uploads/*.png")):
            break
        time.sleep(0.05)
    assert not list(gal.output.glob("uploads/*.png"))


def test_a_refused_upload_leaves_no_file(gal: Gallery) -> None:
    job = requests.post(
        f"{gal.url}/api/explore", json={"n": 64, "candidates": 4096, "seed": 3}
    ).json()["job"]
    before = set(gal.output.glob("uploads/*"))
    r = requests.post(f"{gal.url}/api/predict", files={"file": ("t.png", png(64, 64))})
    assert r.status_code == 409 and "already running" in r.json()["error"]
    assert set(gal.output.glob("uploads/*")) == before
    r = requests.post(f"{gal.url}/api/explore", json={"n": 1, "candidates": 2})
    assert r.status_code == 409
    requests.post(f"{gal.url}/api/jobs/{job}/cancel")
    wait_for_no_workers()


def test_saving_an_unchanged_ref_writes_nothing(gal: Gallery) -> None:
    images = sorted(gal.output.glob("images/*.png"))
    first = refs_io.load_refs(gal.refs)[0]
    for _ in range(3):
        r = requests.post(f"{gal.url}/api/refs", json={"params": first})
        assert r.status_code == 409 and "already a ref: line 1" in r.json()["error"]
    assert sorted(gal.output.glob("images/*.png")) == images
    assert gal.lines() == gal.seed_lines


def test_explore_from_the_refs_breeds_from_the_refs_as_curated_now(
    gal: Gallery,
) -> None:
    """refs-scored.jsonl from before a remove: the removed ref must not breed."""
    refs = refs_io.load_refs(gal.refs)
    scored = gal.refs.with_name("refs-scored.jsonl")
    scored.write_text(
        "".join(
            json.dumps({"params": p, "score": 0.5 + i / 10}) + "\n"
            for i, p in enumerate(refs)
        )
    )
    gal.refs.write_text("\n".join(gal.seed_lines[1:]) + "\n")  # line 1 removed
    try:
        job = requests.post(
            f"{gal.url}/api/explore", json={"n": 1, "candidates": 2, "seed": 5}
        ).json()["job"]
        state = follow(gal.url, job, lambda s, _: s["state"] != "running", timeout=180)
    finally:
        scored.unlink()
    assert state["state"] == "done", state["error"]
    assert any(x.startswith(f"refs: {N_REFS - 1} from") for x in state["lines"])
    listed = requests.get(f"{gal.url}/api/jobs").json()["jobs"][0]
    assert listed["id"] == job and listed["result"]["ids"] == state["result"]["ids"]
    for i in state["result"]["ids"]:
        n = int(i.split(":")[1])
        (gal.output / "images" / f"{n:06d}.png").unlink()
        (gal.output / "params" / f"{n:06d}.json").unlink()


def test_breeding_scores_only_when_every_current_ref_has_one(tmp_path: Path) -> None:
    from art_explorer.gallery.refs_store import RefsStore

    lines = (ROOT / "references" / "refs.jsonl").read_text().splitlines()[:3]
    refs = tmp_path / "refs.jsonl"
    refs.write_text("\n".join(lines) + "\n")
    scored = tmp_path / "scored.jsonl"
    store = RefsStore(refs, scored, tmp_path, tmp_path)
    params = refs_io.load_refs(refs)
    scored.write_text(json.dumps({"params": params[0], "score": 1.0}) + "\n")
    r, s, note = store.breeding_files(tmp_path)
    assert r == refs and not s.exists() and "2 of 3 unscored" in note
    scored.write_text(
        "".join(
            json.dumps({"params": p, "score": 0.1 * i}) + "\n"
            for i, p in enumerate(params)
        )
    )
    r, s, note = store.breeding_files(tmp_path)
    assert [x for x, _ in refs_io.load_scored_refs(s)] == params
    assert "by score" in note


def test_a_stopping_gallery_ends_its_job(gal: Gallery, renderer_url: str) -> None:
    import gallery

    port = rendering.free_port()
    server = gallery.serve(gallery.create_app(gal.args, renderer_url, port), port)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.05)
    body = {"n": 64, "candidates": 4096, "seed": 2}
    r = requests.post(f"http://127.0.0.1:{port}/api/explore", json=body)
    assert r.ok and worker_pids()
    server.should_exit = True
    t.join(10)
    wait_for_no_workers()


def test_restore_puts_a_ref_back_once(gal: Gallery) -> None:
    second = refs_io.load_refs(gal.refs)[1]
    r = requests.post(f"{gal.url}/api/refs/restore", json={"params": second, "line": 2})
    assert r.status_code == 409  # still a ref: not added twice
    key = refs_io.ref_key(second)
    assert requests.delete(f"{gal.url}/api/refs/2", params={"key": key}).ok
    for bad in ({"params": second}, {"params": second, "line": 0}, {"line": 2}):
        r = requests.post(f"{gal.url}/api/refs/restore", json=bad)
        assert is_json_4xx(r), (bad, r.text)
    r = requests.post(f"{gal.url}/api/refs/restore", json={"params": second, "line": 2})
    assert r.ok and r.json()["line"] == 2
    assert refs_io.load_refs(gal.refs)[1] == second and len(gal.lines()) == N_REFS
