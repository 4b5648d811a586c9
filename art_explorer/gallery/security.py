"""Who may talk to the gallery: its own name as Host (no DNS rebinding), its own pages
as Origin for anything that changes state (no CSRF), bodies within the upload limit."""

from __future__ import annotations

from typing import Any

from art_explorer.gallery.errors import err
from art_explorer.gallery.uploads import MAX_UPLOAD_BYTES


class Guard:
    """Plain ASGI middleware (no per-request overhead beyond reading the headers)."""

    def __init__(self, inner: Any, port: int) -> None:
        self.inner = inner
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.origins = {f"http://{h}" for h in self.hosts}

    def refusal(self, method: str, hdr: dict[str, str]) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        if hdr.get("host", "") not in self.hosts:
            return 403, "unknown Host: open the gallery at 127.0.0.1"
        if method not in ("GET", "HEAD", "OPTIONS") and (
            hdr.get("origin", next(iter(self.origins))) not in self.origins
            or hdr.get("sec-fetch-site") == "cross-site"
        ):
            return 403, "refused: this request comes from another site"
        length = hdr.get("content-length", "0")
        if length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 2**16:
            # refused before the multipart parser spools it to disk
            return 413, (
                f"the upload is {int(length) / 2**20:.1f} MB; the limit is "
                f"{MAX_UPLOAD_BYTES // 2**20} MB"
            )
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hdr = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
            }
            refused = self.refusal(scope["method"], hdr)
            if refused is not None:
                await err(*refused)(scope, receive, send)
                return
        await self.inner(scope, receive, send)
