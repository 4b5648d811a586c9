"""Shared fixtures: the real bundled renderer on a free port; a full disk."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer.scene import rendering

ROOT = Path(__file__).resolve().parent.parent
# the fixture modules test files import (and load with pytest_plugins): their
# asserts report as a test's do
pytest.register_assert_rewrite("gallery_fixtures", "predict_fixtures")


@pytest.fixture(scope="session")
def renderer_url() -> Iterator[str]:
    """The /api/raster URL of the bundled renderer, started once per test session on
    a free port (`python -m renderer.server`) and stopped at the end."""
    port = rendering.free_port()
    proc = rendering.start_renderer(port)
    try:
        yield f"http://127.0.0.1:{port}/api/raster"
    finally:
        rendering.stop_renderer(proc)


# A full disk (issue 32 C4): os.fsync fails with ENOSPC after WRITES good writes (every
# atomic write fsyncs), as a small tmpfs does when it fills; then SCRIPT runs as
# `python SCRIPT ARGS`.
FULL_DISK = """
import errno, os, runpy, sys
budget = [int(sys.argv[1])]
real = os.fsync
def fsync(fd):
    budget[0] -= 1
    if budget[0] < 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real(fd)
os.fsync = fsync
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture
def full_disk() -> Callable[..., subprocess.CompletedProcess[str]]:
    """full_disk(writes, "refs.py", *argv): run a script whose disk fills after
    `writes` atomic writes; the finished process (stdout, stderr, returncode)."""

    def run(writes: int, script: str, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", FULL_DISK, str(writes), str(ROOT / script)]
        return subprocess.run(
            [*cmd, *argv], capture_output=True, text=True, timeout=180, cwd=ROOT
        )

    return run
