"""The gallery's options: one dataclass, parsed by art_explorer.cli in gallery.py."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _default_port() -> int:
    return int(os.environ.get("GALLERY_PORT") or 8000)


@dataclass
class GalleryOptions:
    """Curate in the browser: a local web gallery for explore, references, predict
    and a live param editor."""

    port: int = field(default_factory=_default_port)
    """port on 127.0.0.1 ($GALLERY_PORT, else 8000)"""
    renderer_url: str | None = None
    """POST /api/raster URL ($RENDERER_URL, else localhost:3000; the bundled renderer
    starts when nothing answers there)"""
    refs: str = "references/refs.jsonl"
    """the refs file"""
    scored_refs: str = "references/refs-scored.jsonl"
    """aesthetic scores shown with the refs (used for breeding only where they match
    the current refs)"""
    output: str = "output"
    """predict/explore results"""
    data: str = "data"
    """training data, for data:N / q:N"""
    forward: str | None = None
    """forward checkpoint for predict and explore jobs (predict's default when None)"""
    inverse: str | None = None
    """inverse checkpoint for predict jobs (predict's default when None)"""
