"""Shared fixtures: the real bundled renderer on a free port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer.scene import rendering


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
