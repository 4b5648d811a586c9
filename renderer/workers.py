"""The renderer service's processes and log: pre-forked workers on one listening
socket (respawned when they die), stopping with the process that started the
server, and one escaped line per event on stderr."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def log(msg: str) -> None:
    """One line on stderr; control characters (a request path may carry ESC or BEL,
    terminal escapes) are written as \\xNN, and a very long line is cut."""
    print(f"renderer[{os.getpid()}]: {printable(msg)}", file=sys.stderr, flush=True)


def printable(text: str, limit: int = 2000) -> str:
    """`text` with every non-printable character escaped (\\x1b, \\u2028), cut to
    `limit` characters."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} chars)"
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _watch_parent(parent: int) -> None:
    """In a worker: exit when the parent process is gone (no orphans)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def tune_malloc(arenas: int = 2, mmap_threshold: int = 16 << 20) -> None:
    """Cap glibc's malloc arenas at `arenas` and fix its mmap threshold at
    `mmap_threshold` bytes. glibc gives threads arenas of their own (up to 8 per
    core), and with a thread per connection the freed memory stays spread over
    them: under bench/fuzz.py a worker's RSS crept from 50 to 260 MB in 30000
    requests, and stays near 120 MB with 2 arenas. And it raises the threshold to
    the size of each big array freed (up to 32 MB), so a 2048² render's arrays
    come from the heap and stay there: two threads drawing CRT scenes at 1345²
    peaked at 751 MB and kept 475 MB, with the threshold fixed 548 MB and 130 MB
    (for ~5% more CPU). No-op where there is no glibc."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
        libc.mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD


def exit_with_parent(parent: int, poll: float = 0.5) -> None:
    """Stop this server (SIGTERM to itself: the workers stop too) as soon as the
    process `parent` that started it is gone, however it ended (kill -9 included):
    its children are then re-parented, so getppid() changes. Runs in a daemon
    thread."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        log(f"parent process {parent} is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _spawn(serve: Callable[[int], None], worker: int) -> int:
    """Fork a worker process that runs serve(worker) until killed; its pid."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
        serve(worker)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def run_prefork(
    sock: socket.socket,
    workers: int,
    serve: Callable[[int], None],
    forget: Callable[[int], None],
) -> None:
    """Fork `workers` processes, each running serve(slot) on the shared socket;
    respawn one that dies in its slot, after forget(slot) (what it held in shared
    state); stop them all on SIGTERM/SIGINT."""
    sock.setblocking(False)  # workers race for accept(); the losers just poll again
    pids = {_spawn(serve, i): i for i in range(workers)}
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while pids:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        worker = pids.pop(pid, None)
        if worker is None:
            continue
        forget(worker)
        if not stopping:
            log(f"worker {pid} exited (status {status}); starting another")
            pids[_spawn(serve, worker)] = worker
