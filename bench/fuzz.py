"""Fuzz: thousands of generated hostile requests against the real renderer.

    python bench/fuzz.py               # 3000 requests
    python bench/fuzz.py --quick       # 300 requests (CI size; also a test)
    python bench/fuzz.py --n 10000 --seed 3

Starts the bundled renderer on a free port and sends, over raw sockets, requests
generated from schema.SCHEMA: bodies in either spelling whose values are wrong types,
edge numbers, unicode (other scripts' digits, superscripts, lone surrogates,
bidi marks), long strings, deep nesting, odd layer keys and colours; sizes; and
malformed requests: request lines, paths with control bytes, Content-Length and
Transfer-Encoding values, chunk sizes, truncated and streamed bodies, Origin
headers, oversized headers; deep JSON on every route, a browser's cross-site GETs,
Host headers. Counts the answers by status. Then the worst scenes (bound.py's work bound): each
alone at 1024²-4096², timed by the server's CPU time, and 4 big renders at once,
with the server's peak RSS. The bar: no 5xx, no hang (no answer within --timeout
s), the server answering /api/health at the end, its memory (RSS of the server and
its workers, from /proc) bounded, every worst scene within its bound. Prints a
table and writes bench/results/fuzz.md.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import random
import socket
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import cli
from art_explorer.scene import rendering, sampling, schema
from renderer import bound

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_REFUSALS = ("501", "505")
KINDS = {"body": 50, "length": 10, "chunked": 10, "origin": 8, "line": 8}  # weights
KINDS |= {"headers": 8, "stream": 6, "deep": 6, "driveby": 5, "host": 5}


@dataclass
class Args:
    """Options of bench/fuzz.py."""

    quick: bool = False
    """CI size: 300 requests"""
    n: int | None = None
    """requests (None: 3000; --quick: 300)"""
    seed: int = 0
    """random seed"""
    clients: int = 4
    """concurrent connections"""
    timeout: float = 30.0
    """seconds without a complete answer that count as a hang"""
    skip_worst: bool = False
    """skip the worst scenes (2048²-4096², one at a time and 4 at once)"""
    out: str = "bench/results/fuzz.md"
    """markdown results"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


# ----------------------------------------------------------------------------------
# Values and requests


def weird_values(rng: random.Random) -> Any:
    """One hostile JSON value."""
    pool: list[Any] = [
        None, True, False, 0, -0.0, 1, -1, 0.5, 1e308, -1e308, 5e-324, 2**63,
        -(2**63), 10**400, "", " ", "1", "٣", "²", "１２", "1_0", "0x1f", "#+12345",
        "# 12345", "#١٢٣٤٥٦", "#0x1234", "#GGG", "#abc", "#AABBCC", "\u202e#abc",
        "\ud800", "é" * 3, "x" * 10_000, [], [1, 2], [[[]]], {}, {"x": 1, "y": "2"},
        {"value": 3}, {"value": 3, "disabled": True}, {"value": {"value": []}},
        "spiral", "SPIRAL", "golden-angle", "bayer", 8, 3.0, "\x00", "\x1b[2J",
    ]  # fmt: skip
    return rng.choice(pool)


def schema_body(rng: random.Random) -> bytes:
    """A JSON body: some schema keys (either spelling) with good or hostile values,
    odd layer keys, now and then a shape that is not an object at all."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(
            [b"[]", b"null", b'"x"', b"1", b"[" * 50_000, b"{" * 20, b"\xff\xfe{}"]
        )
    prefixed = rng.random() < 0.5
    body: dict[str, Any] = {}
    if rng.random() < 0.7:
        good = sampling.sample_params(rng)
        body = schema.to_prefixed(good) if prefixed else schema.to_scene_params(good)
    keys = [p.prefixed if prefixed else p.key for p in schema.SCHEMA]
    numeric = [p for p in schema.SCHEMA if p.kind in ("int", "float")]
    if rng.random() < 0.3:  # only edge numbers: clamped, then rendered
        for p in rng.sample(numeric, 4):
            lo, hi = float(p.lo), float(p.hi)
            v = rng.choice([lo, hi, lo - 1e6, hi + 1e6, -0.0, hi * 10, 1e300])
            body[p.prefixed if prefixed else p.key] = v
        return json.dumps(body).encode()
    for _ in range(rng.randint(1, 6)):
        body[rng.choice(keys)] = weird_values(rng)
    if rng.random() < 0.4:
        i = rng.choice(["0", "4", "5", "63", "64", "²", "٣", "+1", "", "9" * 500])
        name = rng.choice([*schema.LAYER_PARAM, "nope"])
        body[f"Groups.g{i}.g{i}-{name}"] = weird_values(rng)
    if rng.random() < 0.2 and not prefixed:
        body["layers"] = [
            {k: weird_values(rng) for k in rng.sample(list(schema.LAYER_PARAM), 3)}
            for _ in range(rng.randint(0, 7))
        ]
    text = json.dumps(body, ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.1:
        text = text.replace("3", "NaN", 1)
    return text.encode("utf-8", "surrogatepass")


def size_query(rng: random.Random) -> str:
    sizes = [
        "32", "33", "64", "96", "31", "2049", "0", "-1", "+64", "٣٢", "64.0",
        "1e2", "", "9" * 5000, "64&size=48", "%00", "%F0%9F%98%80", "0064",
    ]  # fmt: skip
    return "" if rng.random() < 0.05 else "?size=" + rng.choice(sizes)


def deep_json(rng: random.Random) -> str:
    """A params body with an unknown key whose value nests deep (33 to 5000)."""
    n = rng.choice([33, 64, 350, 600, 990, 5000])
    inner = rng.choice(["[", '{"a":'])
    close = "]" if inner == "[" else "}"
    return (
        '{"Foo.bar": {"value": ' + inner * n + "1" * (inner != "[") + close * n + "}}"
    )


def deep_entry(rng: random.Random) -> str:
    """The original's encoded string of one entry holding deep JSON (type 3)."""
    n = rng.choice([33, 350, 600, 990])
    text = "[" * n + "]" * n
    buf = bytearray([7]) + b"Foo.bar" + bytes([3])
    length = len(text)
    while length >= 128:
        buf.append((length & 127) | 128)
        length >>= 7
    buf.append(length)
    return base64.urlsafe_b64encode(bytes(buf) + text.encode()).decode().rstrip("=")


def new_group(kind: str, rng: random.Random, path: str) -> bytes:
    """Issue 32's groups: deep JSON on every route, a browser's cross-site GET (an
    `<img>` or fetch on another site's page), Host headers (DNS rebinding)."""
    host = b"Host: 127.0.0.1\r\n"
    if kind == "deep":
        route = rng.choice(["post", "params", "parse", "render"])
        if route == "post":
            body = deep_json(rng).encode()
            head = f"POST {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
            return head.encode() + host + b"\r\n" + body
        if route == "params":
            target = "/api/raster?" + urlencode({"params": deep_json(rng), "size": 32})
        elif route == "parse":
            target = "/api/raster?" + urlencode({"parse": deep_entry(rng)})
        else:
            target = "/render?" + urlencode({"c": deep_entry(rng), "size": 32})
        return f"GET {target} HTTP/1.1\r\n".encode() + host + b"\r\n"
    if kind == "driveby":
        target = rng.choice(
            ["/api/raster?params=%7B%7D&size=32", "/render?size=32", "/api/health"]
        )
        site = rng.choice(["cross-site", "cross-site", "same-site", "CROSS-SITE"])
        mode = rng.choice(["no-cors", "cors", "navigate"])
        extra = f"Sec-Fetch-Site: {site}\r\nSec-Fetch-Mode: {mode}\r\n"
        if rng.random() < 0.3:
            extra += "Sec-Fetch-Dest: image\r\nReferer: http://evil.example/\r\n"
        return f"GET {target} HTTP/1.1\r\n{extra}".encode() + host + b"\r\n"
    # host
    name = rng.choice(
        [b"evil.example:3911", b"127.0.0.1.evil.example", b"localhost.evil", b"",
         b"[::1", b"x" * 5000, b"\xc3\xa9vil", b"127.0.0.2", b"0.0.0.0:3000",
         b"localhost:1", b"[::1]:80", b"LOCALHOST."]
    )  # fmt: skip
    target = rng.choice(
        [b"/api/raster?params=%7B%7D&size=32", b"/api/health", b"/api/schema",
         b"/render?size=32", b"/api/raster?health", b"/nope"]
    )  # fmt: skip
    return b"GET " + target + b" HTTP/1.1\r\nHost: " + name + b"\r\n\r\n"


def request(rng: random.Random) -> tuple[str, bytes, bool]:
    """(kind, raw bytes, hang up after sending?)."""
    path = "/api/raster" + size_query(rng)
    kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    if kind in ("deep", "driveby", "host"):
        return kind, new_group(kind, rng, path), True
    host = b"Host: 127.0.0.1\r\n"
    if kind == "body":
        body = schema_body(rng)
        head = f"POST {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
        return kind, head.encode() + host + b"Connection: close\r\n\r\n" + body, True
    if kind == "length":
        body = schema_body(rng)
        length = rng.choice(
            [b"\xc2\xb2", b"9" * 5000, b"-1", b"+2", b"0x10", b" ", b"1 2", b"1e3",
             str(len(body) + 50).encode(), str(len(body) - 1).encode(), b"4000000"]
        )  # fmt: skip
        data = b"POST " + path.encode() + b" HTTP/1.1\r\nContent-Length: " + length
        return kind, data + b"\r\n" + host + b"\r\n" + body, True
    if kind == "chunked":
        body = schema_body(rng)
        size = rng.choice(
            [b"-1", b"+5", b"0x5", b"1_0", b"F" * 9, b"1" + b"0" * 5000, b"100000",
             b"\xd9\xa3", b"", b"zz", f"{len(body):x}".encode()]
        )  # fmt: skip
        te = rng.choice([b"chunked", b"Chunked", b"gzip", b"chunked, gzip"])
        data = b"POST " + path.encode() + b" HTTP/1.1\r\nTransfer-Encoding: " + te
        return kind, data + b"\r\n" + host + b"\r\n" + size + b"\r\n" + body, True
    if kind == "origin":
        origin = rng.choice(
            ["http://evil.example", "null", "http://localhost:8080", "file://",
             "http://127.0.0.1.evil.example", "http://[::1]", "x" * 9000, "http://é"]
        )  # fmt: skip
        body = b"{}"
        head = f"POST {path} HTTP/1.1\r\nContent-Length: 2\r\nOrigin: "
        return (
            kind,
            head.encode() + origin.encode() + b"\r\n" + host + b"\r\n" + body,
            True,
        )
    if kind == "line":
        line = rng.choice(
            [b"GET /\x1b[31m\x07 HTTP/1.1", b"BREW /api/raster HTTP/1.1",
             b"GET /api/health HTTP/9.9", b"GET " + b"/a" * 40_000 + b" HTTP/1.1",
             b"\x00\x01\x02", b"GET /api/health extra HTTP/1.1", b"GET",
             b"POST /api/raster?size=\xd9\xa3 HTTP/1.1", b"GET /api/schema HTTP/1.0",
             b"DELETE /api/raster HTTP/1.1", b"GET /api/health\xff HTTP/1.1"]
        )  # fmt: skip
        return kind, line + b"\r\n" + host + b"\r\n", True
    if kind == "headers":
        extra = rng.choice(
            [b"X: " + b"a" * 70_000 + b"\r\n", b"".join(b"X%d: y\r\n" % i for i in range(200)),
             b"Content-Length: 2\r\nContent-Length: 5\r\n", b"\xff\xfe: \x80\r\n",
             b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"NoColon\r\n"]
        )  # fmt: skip
        data = b"POST " + path.encode() + b" HTTP/1.1\r\n" + host + extra + b"\r\n{}"
        return kind, data, True
    # stream: a body the client keeps sending (up to 8 MB) without hanging up
    head = rng.choice(
        [b"Transfer-Encoding: chunked\r\n\r\n-1\r\n",
         b"Transfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"a" * 1024 + b"\r\n",
         b"Content-Length: 9999999999\r\n\r\n", b"Content-Length: 300000\r\n\r\n"]
    )  # fmt: skip
    data = b"POST " + path.encode() + b" HTTP/1.1\r\n" + host + head
    return kind, data + b"a" * 8_000_000, False


# ----------------------------------------------------------------------------------
# Sending


def send(port: int, data: bytes, hang_up: bool, timeout: float) -> str:
    """Send one request; the answer's status ('400', ...), 'closed' (the server
    hung up without answering), or 'hang' (no complete answer within timeout s)."""
    end = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        sender = threading.Thread(target=_send_all, args=(s, data, hang_up))
        sender.start()
        got = b""
        try:
            while time.monotonic() < end:
                s.settimeout(max(0.01, end - time.monotonic()))
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                if _complete(got):
                    break
            else:
                return "hang"
        except TimeoutError:
            return "hang"
        except OSError:
            pass  # a reset after the answer, or instead of one
        finally:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            sender.join()
    if not got.startswith(b"HTTP/"):
        return "closed"
    return got.split(b" ", 2)[1].decode("ascii", "replace")


def _send_all(s: socket.socket, data: bytes, hang_up: bool) -> None:
    with contextlib.suppress(OSError):
        s.sendall(data)
        if hang_up:
            s.shutdown(socket.SHUT_WR)


def _complete(got: bytes) -> bool:
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v.strip())
    return False


# ----------------------------------------------------------------------------------
# Memory


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isascii() and d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def rss_mb(pid: int, field: str = "VmRSS") -> list[float]:
    """RSS in MB of pid and each of its descendants (field "VmHWM": their peak RSS
    over their lives so far)."""
    out = []
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    out.append(int(line.split()[1]) / 1024)
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of pid and its live descendants, s."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# ----------------------------------------------------------------------------------
# The worst scenes (issue 32 R2, R3): one at a time for time, four at once for memory

WORST_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("bars", bound.WORST_BARS, 1024),
    ("bars", bound.WORST_BARS, 2048),
    ("bars, infinity 1.05", bound.WORST_BARS | {"Element.geometry": "infinity",
                                          "Scalars.scaleFactor": 1.05}, 2048),
    ("CRT + dither + noise", bound.DEFAULT_EFFECTS, 1024),
    ("CRT + dither + noise", bound.DEFAULT_EFFECTS, 2048),
    ("every effect", bound.EVERY_EFFECT, 2048),
    ("bars + every effect", bound.WORST_BARS | bound.EVERY_EFFECT, 2048),
    ("every effect", bound.EVERY_EFFECT, 3840),
    ("every effect", bound.EVERY_EFFECT, 4096),
]  # fmt: skip
CONCURRENT = 4  # big renders at once: 2048², every effect


def worst_scenes(url: str, pid: int) -> dict[str, Any]:
    """Each worst case alone (status, drawn size, wall s, the server's CPU s against
    bound.time_bound), then CONCURRENT every-effect renders at 2048² at once; peak
    RSS of every server process after."""
    import requests

    rows = []
    for name, body, size in WORST_CASES:
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        r = requests.post(url, params={"size": size}, json=body, timeout=300)
        wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - c0
        rows.append(
            {
                "scene": name,
                "size": size,
                "status": r.status_code,
                "drawn": int(r.headers.get("X-Drawn-Size", size)),
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "bound_s": bound.time_bound(size),
            }
        )
    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENT) as ex:
        statuses = list(
            ex.map(
                lambda _: (
                    requests.post(
                        url, params={"size": 2048}, json=bound.EVERY_EFFECT, timeout=300
                    ).status_code
                ),
                range(CONCURRENT),
            )
        )
    return {
        "rows": rows,
        "concurrent_statuses": statuses,
        "concurrent_s": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": [round(x, 1) for x in rss_mb(pid, "VmHWM")],
        "memory_bound_mb": bound.MEMORY_BOUND_MB,
        "server_memory_mb": bound.SERVER_MEMORY_MB,
    }


# ----------------------------------------------------------------------------------


def main(args: Args) -> dict[str, Any]:
    n = args.n or (300 if args.quick else 3000)
    rng = random.Random(args.seed)
    jobs = [request(rng) for _ in range(n)]
    port = rendering.free_port()
    proc = rendering.start_renderer(port)
    url = f"http://127.0.0.1:{port}/api/raster"
    client = rendering.RendererClient(url=url)
    try:
        for _ in range(8):  # warm every worker: skia and its buffers are loaded
            client.render_png(sampling.sample_params(rng), 256)
        before = rss_mb(proc.pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(
                pool.map(lambda j: (j[0], send(port, j[1], j[2], args.timeout)), jobs)
            )
        seconds = time.perf_counter() - t0
        after = rss_mb(proc.pid)
        worst = None if args.skip_worst else worst_scenes(url, proc.pid)
        healthy = client.health(timeout=10) is not None
        still_renders = client.render_png(schema.default_params(), 64).startswith(
            rendering.PNG_SIGNATURE
        )
    finally:
        client.close()
        rendering.stop_renderer(proc)
    by_status = Counter(status for _, status in results)
    by_kind: dict[str, Counter[str]] = {}
    for kind, status in results:
        by_kind.setdefault(kind, Counter())[status] += 1
    summary = {
        "requests": n,
        "seconds": round(seconds, 1),
        "by_status": dict(sorted(by_status.items())),
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
        # 501 (a method it does not know: BREW) and 505 (HTTP/9.9) are HTTP's own
        # refusals, not failures: counted apart
        "server_5xx": sum(
            v
            for k, v in by_status.items()
            if k.startswith("5") and k not in PROTOCOL_REFUSALS
        ),
        "protocol_refusals": sum(by_status.get(k, 0) for k in PROTOCOL_REFUSALS),
        "hangs": by_status.get("hang", 0),
        "closed_without_answer": by_status.get("closed", 0),
        "rss_before_mb": [round(x, 1) for x in before],
        "rss_after_mb": [round(x, 1) for x in after],
        "healthy_after": healthy and still_renders,
        "worst": worst,
    }
    report(args, summary)
    return summary


def report(args: Args, s: dict[str, Any]) -> None:
    cmd = "python bench/fuzz.py" + (" --quick" if args.quick else "")
    if args.n:
        cmd += f" --n {args.n}"
    if args.seed:
        cmd += f" --seed {args.seed}"
    lines = [
        "# Fuzz: hostile requests against the bundled renderer",
        "",
        f"`{cmd}` on {datetime.date.today()} ({os.cpu_count()} CPUs, "
        f"{args.clients} concurrent connections, a hang = no answer in "
        f"{args.timeout:g} s).",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| requests | {s['requests']} in {s['seconds']} s |",
        f"| 5xx answers (server errors) | {s['server_5xx']} |",
        f"| 501 / 505 (HTTP's answers to an unknown method, HTTP/9.9) | "
        f"{s['protocol_refusals']} |",
        f"| hangs | {s['hangs']} |",
        f"| closed without an answer | {s['closed_without_answer']} |",
        f"| server RSS before (MB, master + workers) | "
        f"{' + '.join(map(str, s['rss_before_mb']))} |",
        f"| server RSS after (MB) | {' + '.join(map(str, s['rss_after_mb']))} |",
        f"| answers /api/health and renders after | {s['healthy_after']} |",
        "",
        "Answers by kind of request (status: count):",
        "",
        "| kind | answers |",
        "|---|---|",
    ]
    for kind, c in s["by_kind"].items():
        lines.append(f"| {kind} | {', '.join(f'{k}: {v}' for k, v in c.items())} |")
    lines += [
        "",
        "Kinds: body = JSON from the schema with hostile values (wrong types, edge "
        "numbers, unicode, odd layer keys and colours); length = odd Content-Length; "
        "chunked = odd chunk sizes and Transfer-Encodings; origin = Origin headers; "
        "line = malformed request lines and paths with control bytes; headers = "
        "oversized, duplicate or binary headers; stream = an 8 MB body the client "
        "keeps sending without hanging up; deep = JSON nested 33-5000 deep on every "
        "route (POST, ?params=, ?parse=, /render?c=); driveby = a browser's "
        "cross-site GET (Sec-Fetch-Site/Mode, as an `<img>` or fetch on another "
        "site's page sends it); host = Host headers that are not this machine (DNS "
        "rebinding) or not a host. 'closed' = the server hung up without an "
        "answer (a request too broken to answer, or a reset while the client was "
        "still sending a refused stream).",
        "",
    ]
    if s["worst"]:
        lines += worst_lines(s["worst"])
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


def worst_lines(w: dict[str, Any]) -> list[str]:
    """The worst-scenes section of the report."""
    lines = [
        "## The worst scenes (the work bound, renderer/bound.py)",
        "",
        "One at a time; CPU = user + system time of the server's processes during "
        "the request (drawing, post-passes, PNG, HTTP); drawn = the size drawn "
        "before scaling up.",
        "",
        "| scene | size | status | drawn | wall s | CPU s | bound s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in w["rows"]:
        lines.append(
            f"| {r['scene']} | {r['size']}² | {r['status']} | {r['drawn']} | "
            f"{r['wall_s']} | {r['cpu_s']} | {r['bound_s']:g} |"
        )
    lines += [
        "",
        f"{CONCURRENT} renders at once at 2048², every effect: statuses "
        f"{w['concurrent_statuses']} in {w['concurrent_s']} s. Peak RSS (VmHWM) over "
        f"the whole run, MB (master + workers): "
        f"{' + '.join(map(str, w['peak_rss_mb']))}; the bound: "
        f"{w['memory_bound_mb']} MB of working memory a render, "
        f"{w['server_memory_mb']} MB in flight over the server.",
        "",
    ]
    return lines


def passed(res: dict[str, Any]) -> bool:
    """The bar: no 5xx, no hang, and every worst scene 200 within its bound."""
    worst = res["worst"] or {"rows": [], "concurrent_statuses": []}
    return (
        res["server_5xx"] == 0
        and res["hangs"] == 0
        and all(
            r["status"] == 200 and r["cpu_s"] <= r["bound_s"] for r in worst["rows"]
        )
        and all(st == 200 for st in worst["concurrent_statuses"])
    )


if __name__ == "__main__":
    res = main(parse_args())
    sys.exit(0 if passed(res) else 1)
