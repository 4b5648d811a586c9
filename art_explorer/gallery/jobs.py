"""Background jobs (predict, explore): each in its own process (worker.py), one at a
time, with progress (stage, fraction, ETA) the page polls, a cancel that ends the
process group within a second or two, and a listing that outlives a page reload."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from art_explorer import utils
from art_explorer.gallery.errors import Conflict

STAGE_RE = re.compile(
    r"^\s+(\S+)\s+loss ([\d.]+|inf)\s+renders\s+(\d+)\s+([\d.]+) s$"
)  # search.invert's stage lines
STEP_RE = re.compile(r"^([a-z][a-z\-]+(?: [a-z\-]+)?):")  # "search: …" → a stage
KILL_AFTER_S = 1.0  # a cancelled job's process group gets SIGKILL after this
KEEP_FINISHED = 20  # finished jobs the listing remembers


@dataclass
class Job:
    """One predict or explore run and everything the page needs to follow it."""

    id: str
    kind: str
    events: list[dict[str, Any]] = field(default_factory=list)
    state: str = "running"  # running | done | error | cancelled
    result: dict[str, Any] | None = None
    error: str = ""
    stage: str = "starting"
    expect_s: float = 0.0  # the worker's estimate of the whole run, s (0: unknown)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    proc: subprocess.Popen[str] | None = field(default=None, repr=False)

    def log(self, line: str) -> None:
        """A log line: an event; predict's stage lines parsed; the stage updated."""
        ev: dict[str, Any] = {"t": round(time.time() - self.started, 2), "line": line}
        m = STAGE_RE.match(line)
        if m:
            ev["stage"] = {
                "name": m.group(1),
                "loss": float(m.group(2)),
                "renders": int(m.group(3)),
                "seconds": float(m.group(4)),
            }
            self.stage = m.group(1)
        elif (s := STEP_RE.match(line)) is not None:
            self.stage = s.group(1)
        self.events.append(ev)

    def progress(self) -> dict[str, Any]:
        """{"stage", "fraction" in [0, 1], "eta_s" (None: unknown or overrunning),
        "elapsed_s"}: time against the worker's estimate, 1 when finished."""
        end = self.finished or time.time()
        elapsed = end - self.started
        if self.state != "running":
            return {"stage": self.state, "fraction": 1.0, "eta_s": 0.0,
                    "elapsed_s": round(elapsed, 1)}  # fmt: skip
        fraction, eta = 0.0, None
        if self.expect_s > 0:
            fraction = min(0.97, elapsed / self.expect_s)
            eta = round(self.expect_s - elapsed, 1) if elapsed < self.expect_s else None
        return {
            "stage": self.stage,
            "fraction": round(fraction, 3),
            "eta_s": eta,
            "elapsed_s": round(elapsed, 1),
        }

    def summary(self, since: int = 0) -> dict[str, Any]:
        """The job as the page reads it; events from index `since` on."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress(),
            "events": self.events[max(0, since) :],
            "next": len(self.events),
            "result": self.result,
            "error": self.error,
            "started": self.started,
        }


class Jobs:
    """The gallery's jobs; `start` refuses a second while one runs (Conflict)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(
        self,
        kind: str,
        argv: list[str],
        on_end: Callable[[Job], None] | None = None,
    ) -> Job:
        """Run worker.py for `kind` with predict.py's flags `argv`; `on_end` runs
        once the job has ended, however it ended."""
        with self._lock:
            if self.running() is not None:
                raise Conflict("a job is already running; wait for it or cancel it")
            job = Job(uuid.uuid4().hex[:12], kind)
            self.jobs[job.id] = job
            self._forget_old()
            job.proc = subprocess.Popen(
                [sys.executable, "-m", "art_explorer.gallery.worker", kind],
                env=worker_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                start_new_session=True,  # its own process group: cancel ends all
            )
        assert job.proc.stdin is not None
        job.proc.stdin.write(json.dumps({"argv": argv}))
        job.proc.stdin.close()
        threading.Thread(
            target=self._follow, args=(job, on_end), name=f"job-{job.id}", daemon=True
        ).start()
        return job

    def running(self) -> Job | None:
        return next((j for j in self.jobs.values() if j.state == "running"), None)

    def listing(self) -> list[dict[str, Any]]:
        """Every remembered job, newest first, without its events."""
        jobs = sorted(self.jobs.values(), key=lambda j: j.started, reverse=True)
        return [{k: v for k, v in j.summary().items() if k != "events"} for j in jobs]

    def cancel(self, job: Job) -> None:
        """Stop the job: SIGTERM to its process group, SIGKILL KILL_AFTER_S later."""
        if job.state != "running" or job.proc is None:
            return
        job.state, job.finished = "cancelled", time.time()
        job.log("cancelled")
        _signal_group(job.proc, signal.SIGTERM)
        timer = threading.Timer(
            KILL_AFTER_S, _signal_group, args=(job.proc, signal.SIGKILL)
        )
        timer.daemon = True
        timer.start()

    def cancel_all(self) -> None:
        """Cancel every running job (the gallery is stopping)."""
        for job in list(self.jobs.values()):
            self.cancel(job)

    def _follow(self, job: Job, on_end: Callable[[Job], None] | None) -> None:
        """Read the worker's lines into the job until it ends."""
        assert job.proc is not None and job.proc.stdout is not None
        try:
            for raw in job.proc.stdout:
                self._take(job, raw)
            code = job.proc.wait()
            if job.state == "running":
                job.error = f"the job's process ended without a result (exit {code})"
                job.state = "error"
        finally:
            job.finished = job.finished or time.time()
            if on_end is not None:
                on_end(job)

    @staticmethod
    def _take(job: Job, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        if not isinstance(msg, dict) or job.state != "running":
            return
        if "line" in msg:
            job.log(str(msg["line"]))
        elif "expect" in msg:
            job.expect_s = float(msg["expect"])
        elif "result" in msg:
            job.result, job.state = msg["result"], "done"
        elif "error" in msg:
            job.error, job.state = str(msg["error"]), "error"

    def _forget_old(self) -> None:
        ended = [j for j in self.jobs.values() if j.state != "running"]
        for j in sorted(ended, key=lambda j: j.started)[:-KEEP_FINISHED]:
            del self.jobs[j.id]


def worker_env() -> dict[str, str]:
    """The worker's environment: the server's, with the project importable, so it
    runs in the server's folder and reads the same relative paths."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(utils.ROOT), path) if p),
    }


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
