"""Which files the gallery serves: only from the named folders (output, data,
references), only pictures, params and reports, never through '..' or a link out."""

from __future__ import annotations

import re
from pathlib import Path

SERVED_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
}
ROUND_RE = re.compile(r"^round-\d{3,}$")


def safe_file(roots: dict[str, Path], root: str, rel: str) -> Path | None:
    """roots[root] / rel when that is a served kind of file inside the folder after
    resolving links and '..'; None otherwise (the caller answers 404)."""
    base = roots.get(root)
    if base is None or not rel or rel.startswith(("/", "\\")) or "\x00" in rel:
        return None
    try:
        base = base.resolve()
        path = (base / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(base) or path.suffix.lower() not in SERVED_SUFFIXES:
        return None
    return path if path.is_file() else None


def round_reports(output: Path) -> list[dict[str, str]]:
    """output/round-NNN/report.md, newest first, as the page links them."""
    out = []
    if output.is_dir():
        for d in sorted(output.iterdir(), reverse=True):
            if ROUND_RE.match(d.name) and (d / "report.md").is_file():
                out.append(
                    {
                        "name": d.name,
                        "report": f"/files/output/{d.name}/report.md",
                        "base": f"/files/output/{d.name}/",
                    }
                )
    return out
