"""The /render page: the picture of an encoded params string (the original's
`/render?c=` link) as a person opening the link in a browser sees it.

The original's generate writes such a link per sample and its capture step
screenshots the page; here a browser (Accept: text/html) gets a small page with the
picture and its params, any other client the PNG itself.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlencode

# The page loads nothing but its own picture; inline style only.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; "
    "style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def wants_page(accept: str | None, query: dict[str, list[str]]) -> bool:
    """Whether to answer with the HTML page: the client prefers text/html (a
    browser's navigation) and did not ask for `format=png`."""
    if query.get("format", [""])[-1].lower() == "png":
        return False
    return "text/html" in (accept or "").lower()


def render_page(encoded: str, size: int, entries: dict[str, Any]) -> bytes:
    """UTF-8 HTML: the picture (`/render?c=…&format=png`, drawn at `size`) and the
    decoded Leva entries it was drawn from."""
    src = "/render?" + urlencode({"c": encoded, "size": size, "format": "png"})
    shown = min(size, 1024)
    params = json.dumps(
        {k: e.get("value") for k, e in entries.items()}, indent=1, ensure_ascii=False
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>art-explorer render</title>
<style>
body {{ background: #000; color: #ccc; font: 13px monospace; margin: 16px; }}
img {{ display: block; max-width: 100%; height: auto; }}
pre {{ white-space: pre-wrap; word-break: break-all; }}
</style></head>
<body>
<img src="{html.escape(src)}" width="{shown}" height="{shown}" alt="the picture">
<p>{len(entries)} params, drawn at {size}×{size} px by the bundled renderer
(<a href="{html.escape(src)}">PNG</a>)</p>
<pre>{html.escape(params)}</pre>
</body></html>
""".encode()
