"""What every route of one gallery app shares: its folders, the refs store, the jobs,
the renderer client, the thumbnails and predict's defaults (app.state.ctx)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from art_explorer.gallery.errors import ApiError
from art_explorer.gallery.jobs import Jobs, worker_env
from art_explorer.gallery.options import GalleryOptions
from art_explorer.gallery.refs_store import RefsStore
from art_explorer.gallery.thumbs import Thumbnails
from art_explorer.scene import rendering

DEFAULTS_TIMEOUT_S = 120.0  # reading predict's defaults in a worker process


class PredictDefaults:
    """The settings `make predict` runs with, read once by a worker process (so the
    gallery never imports predict), when first asked for: not at start, where the
    import would slow the first screen."""

    def __init__(self, extra: list[str]) -> None:
        self._extra = extra
        self._done = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._error = ""

    def start(self) -> None:
        """Begin reading them in a background thread (once)."""
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            r = subprocess.run(
                [sys.executable, "-m", "art_explorer.gallery.worker", "defaults"],
                input=json.dumps({"argv": self._extra}),
                capture_output=True,
                text=True,
                env=worker_env(),
                timeout=DEFAULTS_TIMEOUT_S,
                check=False,
            )
            for line in r.stdout.splitlines():
                msg = json.loads(line)
                self._value = msg.get("result", self._value)
                self._error = msg.get("error", self._error)
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            self._error = str(e)
        finally:
            self._done.set()

    def get(self, wait_s: float = DEFAULTS_TIMEOUT_S) -> dict[str, Any]:
        """predict's defaults; ApiError 503 when they could not be read."""
        self.start()
        self._done.wait(wait_s)
        if self._value is None:
            raise ApiError(503, f"predict's defaults are unknown: {self._error}")
        return self._value


@dataclass
class Context:
    options: GalleryOptions
    renderer_url: str
    output: Path
    data: Path
    store: RefsStore
    client: rendering.RendererClient
    thumbs: Thumbnails
    jobs: Jobs = field(default_factory=Jobs)
    defaults: PredictDefaults | None = None

    @property
    def roots(self) -> dict[str, Path]:
        """The folders /files and /thumbs serve from, by name."""
        return {
            "output": self.output,
            "data": self.data,
            "references": self.store.path.parent,
        }

    def model_flags(self) -> list[str]:
        """predict.py flags every job shares: output, renderer, checkpoints."""
        flags = ["--out", str(self.output), "--renderer-url", self.renderer_url]
        if self.options.forward:
            flags += ["--forward", self.options.forward]
        if self.options.inverse:
            flags += ["--inverse", self.options.inverse]
        return flags


def ctx(request: Request) -> Context:
    """The Context of the app serving `request`."""
    return request.app.state.ctx
