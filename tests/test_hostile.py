"""Hostile input (issue 15's table): every case answers a 4xx, one clear line or
bounded memory, never a 500, a traceback or an orphaned process. Renderer cases run
against the real server on a free port (the `renderer_url` fixture, or one of their
own when they need its log or its process)."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
import requests
from PIL import Image

from art_explorer import config, utils
from art_explorer.scene import rendering, schema
from renderer import bound, codec

# ----------------------------------------------------------------------------------
# Helpers


def post(url: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(
        url, params={"size": 32}, data=body, headers=headers, timeout=30
    )


def raw_answer(url: str, data: bytes, hang_up: bool = False) -> bytes:
    """Send raw bytes on a fresh connection and read the whole answer. With
    hang_up=False our side stays open: the server must answer without waiting for
    the end of what we send."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=20) as s:
        with contextlib.suppress(OSError):  # it may stop reading once it refused
            s.sendall(data)
        if hang_up:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def status_and_error(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.fixture
def own_renderer(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A renderer of this test's own (1 process) whose stderr goes to a file:
    (URL, log path)."""
    port = rendering.free_port()
    log = tmp_path / "renderer.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "renderer.server",
                "--port",
                str(port),
                "--workers=1",
            ],
            cwd=utils.ROOT,
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}/api/raster"
    client = rendering.RendererClient(url=url)
    try:
        for _ in range(300):
            if client.health(timeout=0.5) is not None:
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        yield url, log
    finally:
        client.close()
        rendering.stop_renderer(proc)


# ----------------------------------------------------------------------------------
# The one strict number parser


@pytest.mark.parametrize(
    "text", ["", " 1", "+1", "-1", "1_0", "0x1f", "1e3", "²", "٣", "１", "1" * 10, 7]
)
def test_parse_uint_takes_ascii_digits_of_bounded_length_only(text: Any) -> None:
    with pytest.raises(schema.NumberError, match=r"^size: "):
        schema.parse_uint(text, "size", max_digits=9)


def test_parse_uint_reads_decimal_and_hex() -> None:
    assert schema.parse_uint("0042", "n") == 42
    assert schema.parse_uint("fF", "n", base=16) == 255
    with pytest.raises(schema.NumberError, match="5000 digits is too long"):
        schema.parse_uint("9" * 5000, "n")
    assert schema.arg_int("-3") == -3
    with pytest.raises(argparse.ArgumentTypeError):
        schema.arg_int("٣")


# ----------------------------------------------------------------------------------
# 1. chunked bodies: the size of each chunk is strict hex, the total is counted


@pytest.mark.parametrize(
    ("chunk_head", "status"),
    [
        (b"-1", 400),  # int("-1", 16) is -1: once a read-until-EOF
        (b"+10", 400),
        (b"0x10", 400),
        (b"1_0", 400),
        (b"F" * 9, 400),  # more hex digits than any body we take
        (b"1" + b"0" * 5000, 400),
        (b"100000", 413),  # 1 MiB: over the limit, refused before it is read
    ],
)
def test_chunked_bad_or_huge_chunk_size_is_refused_at_once(
    renderer_url: str, chunk_head: bytes, status: int
) -> None:
    head = (
        b"POST /api/raster?size=32 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    # a stream follows, and our side stays open: no waiting for its end
    answer = raw_answer(renderer_url, head + chunk_head + b"\r\n" + b"a" * 65536)
    code, err = status_and_error(answer)
    assert code == status and err["field"] == "body", err


def test_chunked_stream_over_the_limit_is_413(renderer_url: str) -> None:
    head = (
        b"POST /api/raster?size=32 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunks = b"400\r\n" + b"a" * 1024 + b"\r\n"  # 1 KiB chunks, 300 of them
    code, err = status_and_error(raw_answer(renderer_url, head + chunks * 300))
    assert code == 413 and err["field"] == "body"


def test_other_transfer_encodings_are_refused(renderer_url: str) -> None:
    r = post(renderer_url, b"{}", **{"Transfer-Encoding": "gzip, chunked"})
    assert r.status_code == 400 and r.json()["field"] == "body"


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 2\r\nContent-Length: 5\r\n",
        b"Content-Length: 2\r\nContent-Length: 2\r\n",
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_two_framings_of_one_body_are_refused(
    renderer_url: str, framing: bytes
) -> None:
    data = (
        b"POST /api/raster?size=32 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + framing
        + b"\r\n{}"
    )
    code, err = status_and_error(raw_answer(renderer_url, data, hang_up=True))
    assert code == 400 and err["field"] == "body"


# ----------------------------------------------------------------------------------
# 2, 3. layer keys and colours


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("Groups.g².g²-rotation", "Groups.g².g²-rotation"),
        ("Groups.g٣.g٣-rotation", "Groups.g٣.g٣-rotation"),  # Arabic-Indic 3
        ("Groups.g+1.g1-rotation", "Groups.g+1.g1-rotation"),
        ("Groups.g.g-rotation", "Groups.g.g-rotation"),
        ("Groups.g" + "9" * 5000 + ".g9-rotation", "layers"),
        ("Groups.g64.g64-rotation", "layers"),
    ],
)
def test_bad_layer_indices_answer_400_naming_the_field(
    renderer_url: str, key: str, field: str
) -> None:
    r = post(renderer_url, json.dumps({key: 0.1}).encode())
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert len(r.json()["error"]) < 300  # a 5000-digit key is not echoed whole


BAD_COLOURS = ["#1_2345", "#0x1234", "#-12345", "#+12345", "# 12345", "#١٢٣٤٥٦"]


@pytest.mark.parametrize("colour", [*BAD_COLOURS, "#12345", "#1234567", "123456"])
def test_colours_are_strict_hex_in_base_and_layers(
    renderer_url: str, colour: str
) -> None:
    r = post(renderer_url, json.dumps({"Element.color": colour}).encode())
    assert r.status_code == 400 and r.json()["field"] == "color", r.text
    body = {"Groups.g0.g0-rotation": 0.1, "Groups.g0.g0-color": colour}
    r = post(renderer_url, json.dumps(body).encode())
    assert r.status_code == 400 and r.json()["field"] == "layers[0].color", r.text


def test_good_colours_still_pass() -> None:
    assert schema.normalize_color("#abc") == "#AABBCC"
    assert schema.normalize_color(" #A0b1C2 ") == "#A0B1C2"


# ----------------------------------------------------------------------------------
# 4. Content-Length


@pytest.mark.parametrize("length", [b"\xc2\xb2", b"9" * 5000, b"+2", b"-1", b"0x2"])
def test_bad_content_length_is_400(renderer_url: str, length: bytes) -> None:
    data = (
        b"POST /api/raster?size=32 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
        + length
        + b"\r\n\r\n{}"
    )
    code, err = status_and_error(raw_answer(renderer_url, data, hang_up=True))
    assert code == 400 and err["field"] == "body", err


@pytest.mark.parametrize("size", ["٣٢", "３２", "+32", "32_0", "1" * 5000])
def test_sizes_are_ascii_digits(renderer_url: str, size: str) -> None:
    r = requests.post(renderer_url, params={"size": size}, json={}, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == "size"


# ----------------------------------------------------------------------------------
# 5. the log


def test_control_bytes_in_the_path_are_escaped_in_the_log(
    own_renderer: tuple[str, Path],
) -> None:
    url, log = own_renderer
    answer = raw_answer(
        url,
        b"GET /\x1b[31mred\x07\x1b]0;title\x07 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        True,
    )
    assert answer.startswith(b"HTTP/1.1 404")
    raw_answer(url, b"GET /x\x1b[2J HTTP/1.0\r\n\r\n", True)
    raw_answer(url, b"\x1b[2J\x07garbage\r\n\r\n", True)
    time.sleep(0.5)  # the log line is written after the answer
    text = log.read_bytes()
    assert b"\x1b" not in text and b"\x07" not in text
    assert b"\\x1b[31mred\\x07" in text  # escaped, still readable


def test_printable_escapes_only_control_characters() -> None:
    from renderer.server import printable

    assert printable("plain /api/raster → 404") == "plain /api/raster → 404"
    assert printable("a\x1bb\x07c\u2028") == "a\\x1bb\\x07c\\u2028"
    assert len(printable("x" * 10000)) < 2100


# ----------------------------------------------------------------------------------
# Origin, bind variable


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://evil.example", 403),
        ("https://localhost.evil.example", 403),
        ("null", 403),
        ("file://", 403),
        ("http://localhost:5173", 200),
        ("http://127.0.0.1", 200),
        ("http://[::1]:8080", 200),
    ],
)
def test_requests_from_web_pages_elsewhere_are_refused(
    renderer_url: str, origin: str, status: int
) -> None:
    r = post(renderer_url, b"{}", Origin=origin, **{"Content-Type": "text/plain"})
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["field"] == "origin"
    assert post(renderer_url, b"{}").status_code == 200  # no Origin: a program


def test_bind_address_is_renderer_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from renderer import server

    monkeypatch.setenv("HOST", "0.0.0.0")  # a generic variable: not ours
    monkeypatch.delenv("RENDERER_HOST", raising=False)
    assert server.parse_args([]).host == "127.0.0.1"
    monkeypatch.setenv("RENDERER_HOST", "::1")
    assert server.parse_args([]).host == "::1"
    monkeypatch.setenv("PORT", "3²")
    with pytest.raises(SystemExit) as e:
        server.parse_args([])
    assert e.value.code == 2


# ----------------------------------------------------------------------------------
# A silent renderer


def test_silent_renderer_is_reported_within_the_deadline() -> None:
    """A socket that accepts connections and never answers: the client gives up
    after its deadline (default 30 s in all), not tries × timeout."""
    assert rendering.RendererClient.deadline <= 30.0
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/raster"
        client = rendering.RendererClient(url=url, deadline=1.5, backoff=0.01)
        with pytest.raises(rendering.RendererError, match="no answer within") as e:
            client.render_png({}, 32)
        client.close()
    assert str(e.value).startswith(f"renderer at {url} did not answer after ")


# ----------------------------------------------------------------------------------
# 6, 7. predict's target picture


def bomb_png(path: Path, w: int, h: int) -> None:
    """A valid all-black 1-bit PNG of w × h written in a few KB (zlib-streamed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + (w + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    import predict
    from art_explorer.predict.target import load_target

    for side in (30000, 7000):  # past PIL's own guard; past ours only
        bomb = tmp_path / f"bomb{side}.png"
        bomb_png(bomb, side, side)
        assert bomb.stat().st_size < 200_000
        with pytest.raises(predict.UserError, match="40,000,000-pixel limit"):
            load_target(bomb)
    r = subprocess.run(
        [sys.executable, "predict.py", "--target", str(tmp_path / "bomb30000.png")],
        cwd=utils.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1, r.stderr
    assert "pixel limit" in lines[0] and "Traceback" not in r.stderr


def test_long_strip_is_letterboxed_at_the_working_size(tmp_path: Path) -> None:
    from art_explorer.predict.target import load_target

    a = np.zeros((8, 20000, 3), np.uint8)
    a[:, 9000:11000] = 255  # a white band in the middle
    Image.fromarray(a).save(tmp_path / "strip.png")
    sq = load_target(tmp_path / "strip.png", side=256)
    assert sq.size == (256, 256)  # not 20000 x 20000 (1.2 GB as RGB)
    b = np.asarray(sq).max(axis=2)
    rows = np.flatnonzero(b.max(axis=1))
    assert len(rows) and rows.min() >= 120 and rows.max() <= 136  # in the middle
    cols = np.flatnonzero(b.max(axis=0) > 200)
    assert cols.min() >= 110 and cols.max() <= 146  # the band, in the middle
    # a picture smaller than the working size keeps its own resolution
    Image.fromarray(a[:, :100]).save(tmp_path / "small.png")
    assert load_target(tmp_path / "small.png", side=256).size == (100, 100)


# ----------------------------------------------------------------------------------
# 8, 9. refs


def refs_cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    files = ["--refs", str(tmp_path / "refs.jsonl"), "--data", str(tmp_path / "d")]
    return subprocess.run(
        [sys.executable, str(utils.ROOT / "refs.py"), *files, *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("ref_id", ["9" * 5000, "q:" + "9" * 5000, "²", "٣", "+3"])
def test_refs_save_with_a_bad_id_is_one_line(tmp_path: Path, ref_id: str) -> None:
    r = refs_cli(tmp_path, "save", ref_id)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: bad ID ") and len(r.stderr) < 300


@pytest.mark.parametrize(
    "line",
    [
        '{"Groups.g².g²-rotation": 0.1}',
        '{"Groups.g' + "9" * 5000 + '.g9-rotation": 0.1}',
        '{"Scalars.repetitions": ' + "9" * 5000 + "}",
        '{"Element.color": "#+12345"}',
    ],
)
def test_refs_list_names_the_file_and_line_of_a_bad_line(
    tmp_path: Path, line: str
) -> None:
    good = json.dumps(schema.to_prefixed(schema.default_params()))
    (tmp_path / "refs.jsonl").write_text(f"{good}\n{line}\n")
    r = refs_cli(tmp_path, "list")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{tmp_path / 'refs.jsonl'} line 2: " in r.stderr
    assert len(r.stderr.splitlines()) == 1 and len(r.stderr) < 400


def test_refs_rm_line_is_ascii_digits(tmp_path: Path) -> None:
    (tmp_path / "refs.jsonl").write_text("{}\n")
    for bad in ("٣", "²", "9" * 5000):
        r = refs_cli(tmp_path, "rm", bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------------
# 10. train --resume with a broken sidecar


@pytest.fixture
def last_checkpoint(tmp_path: Path) -> tuple[Any, Any, Any]:
    """A Run whose OUT-last was written by Run.save for a tiny forward model:
    (run, net, optimizer)."""
    import torch

    from art_explorer.nets import model as M
    from art_explorer.training.args import TrainArgs
    from art_explorer.training.run import Run

    net = M.ForwardModel(config.ForwardConfig(size=32, width=4, hidden=32, layout_k=4))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    run = Run(tmp_path / "fwd", "forward", TrainArgs("forward"), True, "ncc")
    run.save(net, opt, 1, {"ncc": 0.5})
    return run, net, opt


SIDE_CARS = {
    "an array": lambda meta: [],
    "config a number": lambda meta: {**meta, "config": 5},
    "no optimizer": lambda meta: {k: v for k, v in meta.items() if k != "optimizer"},
    "optimizer a string": lambda meta: {**meta, "optimizer": "x"},
    "optimizer without groups": lambda meta: {**meta, "optimizer": {}},
    "epoch a string": lambda meta: {**meta, "epoch": "3"},
    "history an object": lambda meta: {**meta, "history": {}},
}


@pytest.mark.parametrize("case", [*SIDE_CARS, "not UTF-8", "a 5000-digit number"])
def test_resume_with_a_broken_sidecar_is_a_checkpoint_error(
    last_checkpoint: tuple[Any, Any, Any], case: str
) -> None:
    from art_explorer.nets import checkpoint_io

    run, net, opt = last_checkpoint
    side = run.last.with_suffix(".json")
    if case == "not UTF-8":
        side.write_bytes(b'{"kind": "forward\xff\xfe"}')
    elif case == "a 5000-digit number":
        side.write_text('{"epoch": ' + "9" * 5000 + "}")
    else:
        side.write_text(json.dumps(SIDE_CARS[case](json.loads(side.read_text()))))
    with pytest.raises(checkpoint_io.CheckpointError) as e:
        run.resume(net, opt, {"size": 32}, print)
    assert str(e.value).count("\n") == 0 and len(str(e.value)) < 400


def test_resume_of_a_sound_sidecar_still_works(
    last_checkpoint: tuple[Any, Any, Any],
) -> None:
    run, net, opt = last_checkpoint
    assert run.resume(net, opt, {"size": 32}, print) and run.start_epoch == 1


def test_train_cli_says_one_line_for_a_broken_sidecar(
    tmp_path: Path, renderer_url: str
) -> None:
    import generate

    data = tmp_path / "data"
    argv = ["--n", "4", "--size", "32", "--out", str(data), "--no-sheet"]
    generate.main(generate.parse_args([*argv, "--renderer-url", renderer_url]))
    out = tmp_path / "ck" / "forward"
    out.parent.mkdir()
    out.with_name("forward-last.json").write_text("[]")
    r = subprocess.run(
        [
            *(sys.executable, "train.py", "--stage", "forward", "--data", str(data)),
            *("--size", "32", "--profile", "cpu", "--out", str(out), "--resume"),
            *("--renderer-url", renderer_url, "--threads", "1"),
        ],
        cwd=utils.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    said = f"checkpoint sidecar {out.with_name('forward-last.json')} is not a JSON"
    assert r.stderr.strip().splitlines()[-1] == f"error: {said} object (it is array)"


# ----------------------------------------------------------------------------------
# 12. kill -9 of a program that started the bundled renderer


def answers(url: str) -> bool:
    try:
        requests.get(url.replace("/api/raster", "/api/health"), timeout=1)
    except requests.RequestException:
        return False
    return True


def test_bundled_renderer_stops_when_its_starter_is_killed(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    out = tmp_path / "data"
    proc = subprocess.Popen(
        [
            *(sys.executable, "generate.py", "--n", "5000", "--size", "32"),
            *("--out", str(out), "--renderer-url", url, "--no-sheet"),
        ],
        cwd=utils.ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("images/*.png")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert answers(url)  # the bundled renderer generate started
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while answers(url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not answers(url), "the renderer outlived the program that started it"


# ----------------------------------------------------------------------------------
# A bounded fuzz: bench/fuzz.py at a few hundred requests


def test_fuzz_of_the_api_gets_no_5xx_no_hang_and_bounded_memory(
    tmp_path: Path,
) -> None:
    fuzz = utils.load_bench("fuzz")
    out = tmp_path / "fuzz.md"
    argv = ["--n", "400", "--seed", "5", "--skip-worst", "--out", str(out)]
    res = fuzz.main(fuzz.parse_args(argv))
    assert res["requests"] == 400
    assert res["server_5xx"] == 0 and res["hangs"] == 0, res["by_kind"]
    assert res["healthy_after"]
    statuses = set(res["by_status"])
    assert {"200", "400", "403", "413"} <= statuses  # it reached every layer
    assert len(res["rss_after_mb"]) == len(res["rss_before_mb"])  # none died
    assert max(res["rss_after_mb"]) < 400  # MB per process: bounded
    assert "| 5xx answers (server errors) | 0 |" in out.read_text()


# ----------------------------------------------------------------------------------
# Issue 32 R4: other sites cannot drive the renderer (Host, Sec-Fetch-Site)


def _routes(url: str) -> list[tuple[str, str]]:
    """(method, URL) of every route, each one that would otherwise answer 200."""
    base = url.replace("/api/raster", "")
    c = codec.encode({"Scalars.repetitions": {"value": 10}})
    return [
        ("GET", f"{url}?params=%7B%7D&size=32"),
        ("POST", f"{url}?size=32"),
        ("GET", f"{url}?health"),
        ("GET", f"{url}?parse={c}"),
        ("GET", f"{base}/render?c={c}&size=32"),
        ("GET", f"{base}/api/health"),
        ("GET", f"{base}/api/schema"),
    ]


def test_a_host_that_is_not_this_machine_is_refused_on_every_route(
    renderer_url: str,
) -> None:
    # DNS rebinding: evil.example resolves to 127.0.0.1, its pages' requests say so
    port = urlparse(renderer_url).port
    for method, url in _routes(renderer_url):
        for host in ("evil.example:3911", f"127.0.0.1.evil.example:{port}", "x"):
            r = requests.request(method, url, data=b"{}", headers={"Host": host})
            assert r.status_code == 403, (method, url, host)
            assert r.json()["field"] == "host"
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            r = requests.request(method, url, data=b"{}", headers={"Host": host})
            assert r.status_code == 200, (method, url, host, r.text)


def test_host_names_are_read_as_a_browser_writes_them() -> None:
    from renderer.guard import host_name

    assert host_name("[::1]:3000") == host_name("::1") == "::1"
    assert host_name("LOCALHOST.:80") == "localhost"
    assert host_name("127.0.0.1.evil.example") == "127.0.0.1.evil.example"
    assert host_name("") is None and host_name("[::1") is None


def test_allow_host_adds_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENDERER_ALLOW_HOSTS", "10.0.0.7, gpu-box")
    with _own_server("--workers=1", "--allow-host", "art.lan") as (_, url):
        get = f"{url}?params=%7B%7D&size=32"
        for host in ("art.lan:3000", "10.0.0.7:3000", "gpu-box"):
            ok = requests.get(get, headers={"Host": host}, timeout=30)
            assert ok.status_code == 200, host
        assert requests.get(get, headers={"Host": "evil.lan"}).status_code == 403


@pytest.mark.parametrize(
    ("site", "mode", "status"),
    [
        ("cross-site", "no-cors", 403),  # <img src> on another site's page
        ("cross-site", "cors", 403),  # fetch() from another site's page
        ("cross-site", "navigate", 403),  # a link to the API itself
        ("same-origin", "no-cors", 200),
        ("same-site", "no-cors", 200),  # a page on this machine, another port
        ("none", "navigate", 200),  # typed into the address bar
        (None, None, 200),  # not a browser: the original's client, curl
    ],
)
def test_a_browsers_cross_site_get_is_refused(
    renderer_url: str, site: str | None, mode: str | None, status: int
) -> None:
    headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode} if site else {}
    r = requests.get(
        renderer_url, params={"params": "{}", "size": 32}, headers=headers, timeout=30
    )
    assert r.status_code == status, r.text


def test_a_link_to_the_render_page_from_elsewhere_opens(renderer_url: str) -> None:
    page = renderer_url.replace("/api/raster", "/render")
    nav = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    r = requests.get(page, params={"size": 32}, headers=nav | {"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    img = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    assert requests.get(page, params={"size": 32}, headers=img).status_code == 403


# ----------------------------------------------------------------------------------
# Issue 32 R1: deep JSON is refused before anything is drawn, on every route


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def _encoded_json_entry(key: str, text: str) -> str:
    """The original's string for one entry whose value is JSON `text` (type 3),
    written by hand: the codec's own encoder would recurse into a deep value."""
    buf = bytearray([len(key)]) + key.encode() + bytes([codec.T_JSON])
    n = len(text)
    while n >= 128:
        buf.append((n & 127) | 128)
        n >>= 7
    buf.append(n)
    buf += text.encode()
    return base64.urlsafe_b64encode(bytes(buf)).decode().rstrip("=")


@pytest.mark.parametrize("depth", [33, 350, 600])
def test_deep_json_is_refused_before_drawing(renderer_url: str, depth: int) -> None:
    base = renderer_url.replace("/api/raster", "")
    before = requests.get(f"{base}/api/health", timeout=10).json()["renders"]
    body = '{"Foo.bar": {"value": ' + _deep(depth) + "}}"
    entry = _encoded_json_entry("Foo.bar", _deep(depth))
    answers = [
        requests.post(renderer_url, params={"size": 32}, data=body, timeout=30),
        requests.get(renderer_url, params={"params": body, "size": 32}, timeout=30),
        requests.get(renderer_url, params={"parse": entry}, timeout=30),
        requests.get(f"{base}/render", params={"c": entry, "size": 32}, timeout=30),
    ]
    for r in answers:
        assert r.status_code == 400, r.text
        assert "nested deeper than 32" in r.json()["error"]
    after = requests.get(f"{base}/api/health", timeout=10).json()["renders"]
    assert after == before  # refused before drawing
    fine = '{"Foo.bar": {"value": ' + _deep(30) + "}}"
    assert post(renderer_url, fine.encode()).status_code == 200
    deeper = '{"Foo.bar": {"value": ' + _deep(5000) + "}}"  # beyond json's own limit
    assert post(renderer_url, deeper.encode()).status_code == 400


def test_json_depth_counts_without_recursion() -> None:
    from renderer.guard import json_depth

    assert json_depth(1) == 0 and json_depth([]) == 1 and json_depth({"a": [{}]}) == 3
    v: Any = []
    for _ in range(100_000):
        v = [v]
    assert json_depth(v) == 33  # stops counting past the limit


# ----------------------------------------------------------------------------------
# Issue 32 R2, R3: the work bound (bound.py) holds for the worst scenes

WORST_BARS, EVERY_EFFECT = bound.WORST_BARS, bound.EVERY_EFFECT


def test_bands_that_fill_the_picture_count_in_the_drawing_estimate() -> None:
    from renderer import scene

    params, _ = schema.parse_params(WORST_BARS)
    _, fixed, scaled = scene.plan_draws(params, 2048, scene.EXACT_MERGE_PX)
    assert fixed + scaled > scene.DRAW_BUDGET_US  # so it is drawn smaller
    assert scene.lod_size(fixed, scaled, 2048) < 2048


@pytest.mark.parametrize("size", [256, 1024, 2048, 3840, 4096])
@pytest.mark.parametrize(
    "body",
    [{}, WORST_BARS, EVERY_EFFECT, WORST_BARS | EVERY_EFFECT, {"CRT.enabled": True}],
)
def test_every_plan_is_within_the_stated_bound(size: int, body: dict) -> None:
    params, _ = schema.parse_params(body)
    plan = bound.plan_render(params, size)
    assert plan.seconds <= bound.time_bound(size)
    assert plan.megabytes <= bound.MEMORY_BOUND_MB
    assert plan.drawn <= min(size, bound.MAX_DRAW_SIZE)
    if not body and size <= 2048:
        assert plan.drawn == size  # a typical scene is drawn at the asked size


def test_the_memory_pool_makes_a_render_wait_and_forgets_a_dead_worker() -> None:
    from renderer.bound import MemoryPool

    pool = MemoryPool(512, workers=2)
    with pool.reserve(0, 300, timeout=1):
        with pytest.raises(TimeoutError), pool.reserve(1, 300, timeout=0.2):
            pass
        with pool.reserve(1, 200, timeout=0.2):
            assert pool.in_flight() == 500
    assert pool.in_flight() == 0
    with pool.reserve(0, 900, timeout=0.2):  # alone, one render always runs
        pool.forget(0)  # its worker died: what it held is free again
        assert pool.in_flight() == 0


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR."""
    assert data.startswith(b"\x89PNG")
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _peak_rss_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of process pid, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@contextlib.contextmanager
def _own_server(*flags: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A renderer of the test's own with these flags: (process, /api/raster URL)."""
    port = rendering.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "renderer.server", "--port", str(port), *flags],
        cwd=utils.ROOT,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/raster"
    client = rendering.RendererClient(url=url)
    try:
        for _ in range(300):
            if client.health(timeout=0.5) is not None:
                break
            assert proc.poll() is None
            time.sleep(0.1)
        yield proc, url
    finally:
        client.close()
        rendering.stop_renderer(proc)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_concurrent_big_renders_with_every_effect_stay_within_the_memory_bound() -> (
    None
):
    # before the bound: 1.6-1.7 GB per worker, 4 renders at once at 2048²
    body = json.dumps(EVERY_EFFECT).encode()
    with _own_server("--workers=1") as (proc, url):
        base = _peak_rss_mb(proc.pid)
        with ThreadPoolExecutor(4) as ex:
            answers = list(
                ex.map(
                    lambda _: requests.post(
                        url, params={"size": 2048}, data=body, timeout=300
                    ),
                    range(4),
                )
            )
        peak = _peak_rss_mb(proc.pid)
    for r in answers:
        assert r.status_code == 200 and png_size(r.content) == (2048, 2048)
        assert int(r.headers["X-Drawn-Size"]) < 2048
    # renders in flight (≤ SERVER_MEMORY_MB) plus the caches of the post-passes
    assert peak - base < bound.SERVER_MEMORY_MB + 200, (base, peak)
