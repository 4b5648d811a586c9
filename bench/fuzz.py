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
headers, oversized headers. Counts the answers by status. The bar: no 5xx, no hang
(no answer within --timeout s), the server answering /api/health at the end, and
its memory (RSS of the server and its workers, from /proc) bounded. Prints a table
and writes bench/results/fuzz.md.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer.scene import rendering, sampling, schema

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_REFUSALS = ("501", "505")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = ap.add_argument_group("run")
    g.add_argument("--quick", action="store_true", help="CI size: 300 requests")
    g.add_argument("--n", type=int, default=None, help="requests (3000; --quick 300)")
    g.add_argument("--seed", type=int, default=0, help="random seed (0)")
    g.add_argument("--clients", type=int, default=4, help="concurrent connections (4)")
    g.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds without a complete answer that count as a hang (30)",
    )
    g.add_argument(
        "--out",
        default="bench/results/fuzz.md",
        help="markdown results (bench/results/fuzz.md)",
    )
    return ap.parse_args(argv)


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


def request(rng: random.Random) -> tuple[str, bytes, bool]:
    """(kind, raw bytes, hang up after sending?)."""
    path = "/api/raster" + size_query(rng)
    kind = rng.choices(
        ["body", "length", "chunked", "origin", "line", "headers", "stream"],
        weights=[50, 10, 10, 8, 8, 8, 6],
    )[0]
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


def rss_mb(pid: int) -> list[float]:
    """RSS in MB of pid and each of its descendants."""
    out = []
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]) / 1024)
    return out


# ----------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> dict[str, Any]:
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
    }
    report(args, summary)
    return summary


def report(args: argparse.Namespace, s: dict[str, Any]) -> None:
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
        "keeps sending without hanging up. 'closed' = the server hung up without an "
        "answer (a request too broken to answer, or a reset while the client was "
        "still sending a refused stream).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    res = main(parse_args())
    sys.exit(0 if res["server_5xx"] == 0 and res["hangs"] == 0 else 1)
