"""Whether a renderer service draws the bundled scene (then the twin's gradients
are its pictures' gradients)."""

from __future__ import annotations

from art_explorer.scene import schema


def speaks_bundled_schema(url: str, timeout: float = 5.0) -> bool:
    """Whether the renderer at `url` (its /api/raster) draws the bundled scene: its
    GET /api/schema hashes to schema.schema_hash(). Then the twin's gradients are
    its pictures' gradients; otherwise predict descends through the forward model."""
    import hashlib
    import json
    from urllib.parse import urlparse

    import requests

    try:
        r = requests.get(
            urlparse(url)._replace(path="/api/schema", query="").geturl(),
            timeout=timeout,
        )
        served = r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return False
    if not isinstance(served, dict):
        return False
    h = hashlib.sha256(json.dumps(served, sort_keys=True).encode()).hexdigest()[:16]
    return h == schema.schema_hash()
