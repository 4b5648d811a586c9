"""The thumbnail cache: side² JPEGs of result pictures, in memory (the newest few
thousand) and on disk (output/.thumbs) across restarts, keyed by the picture's whole
path and remade when the picture is newer."""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from pathlib import Path

from art_explorer import atomic
from art_explorer.gallery.errors import ApiError

THUMB = 192  # thumbnail side of the grids, px


class Thumbnails:
    """get(path) → JPEG bytes; `warm` makes the newest ones ahead of the first page."""

    def __init__(self, cache: Path, side: int = THUMB, keep: int = 4000) -> None:
        self.cache, self.side, self.keep = cache, side, keep
        self._mem: dict[Path, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def disk_path(self, src: Path) -> Path:
        """The cached file of `src`: named by a hash of its resolved path, so two
        folders' 000007.png never share one."""
        digest = hashlib.sha256(str(src.resolve()).encode("utf-8", "surrogateescape"))
        return self.cache / f"{src.stem}-{digest.hexdigest()[:16]}-{self.side}.jpg"

    def get(self, src: Path) -> bytes:
        """The thumbnail of the picture at `src`; ApiError 422 when it cannot be
        read (truncated, not a picture)."""
        mtime = src.stat().st_mtime
        hit = self._mem.get(src)
        if hit is not None and hit[0] >= mtime:
            return hit[1]
        dst = self.disk_path(src)
        try:
            data = dst.read_bytes() if dst.stat().st_mtime >= mtime else b""
        except OSError:
            data = b""
        if not data:
            data = self._make(src)
            atomic.atomic_write_bytes(dst, data)
        with self._lock:
            if len(self._mem) >= self.keep:
                self._mem.pop(next(iter(self._mem)))  # the oldest entry
            self._mem[src] = (mtime, data)
        return data

    def _make(self, src: Path) -> bytes:
        from PIL import Image

        try:
            with Image.open(src) as im:
                im = im.convert("RGB")
                factor = max(1, min(im.size) // (2 * self.side))
                if factor > 1:
                    im = im.reduce(factor)  # box-average down to ≥ 2× the side, fast
                im.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=88)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise ApiError(
                422, f"{src.name} cannot be read as a picture (truncated?)"
            ) from None
        return buf.getvalue()

    def warm(self, pictures: list[Path]) -> None:
        """Make these thumbnails now (in a background thread), skipping failures."""
        for src in pictures:
            with contextlib.suppress(OSError, ValueError, ApiError):
                self.get(src)
