"""Curate in the browser: a local web gallery for explore, references, predict and a
live param editor.

    python gallery.py                    # http://127.0.0.1:8000 (GALLERY_PORT)
    python gallery.py --port 8080 --output output --refs references/refs.jsonl

Views (web/index.html, plain HTML + JS, no build step): Explore (the results in
output/ newest first; keep one as a ref, "more like this", run explore), References
(every ref with its aesthetic score and a star rating; remove), Predict (upload an
image; the stages stream in), Editor (controls generated from the schema; the
picture re-renders as you drag) and Rounds (output/round-NNN/report.md). Predict and
explore run as jobs in their own processes, with progress, cancel and a listing
that survives a reload. The app is the package art_explorer/gallery/.

Safety: binds 127.0.0.1 only; requests must name this server as Host, and
state-changing ones from another Origin get 403; files are served only from the
output, data and references folders (no ../, no absolute paths, pictures and params
only); uploads are limited in bytes and pixels.
"""

from __future__ import annotations

import sys

from art_explorer import cli
from art_explorer.gallery.app import create_app, serve
from art_explorer.gallery.options import GalleryOptions
from art_explorer.gallery.uploads import MAX_UPLOAD_BYTES
from art_explorer.scene import rendering

__all__ = ["MAX_UPLOAD_BYTES", "GalleryOptions", "create_app", "main", "serve"]


def parse_args(argv: list[str] | None = None) -> GalleryOptions:
    return cli.parse(GalleryOptions, argv, description=__doc__)


def main(args: GalleryOptions) -> int:
    """Serve the gallery until Ctrl-C; returns the exit code."""
    try:
        with rendering.ensure_renderer(args.renderer_url) as url:
            server = serve(create_app(args, url, args.port), args.port)
            print(
                f"gallery: http://127.0.0.1:{args.port}/  (renderer {url}; Ctrl-C stops)",
                flush=True,
            )
            server.run()
    except rendering.RendererError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)
