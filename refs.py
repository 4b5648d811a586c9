"""Manage the curated references (references/refs.jsonl) from the command line.

    python refs.py list            # one numbered line per ref (numbers = file lines)
    python refs.py save 328        # data/params/000328.json → a new last line
    python refs.py save q:12       # data/quality/params/000012.json
    python refs.py save out:0      # output/params/000000.json
    python refs.py rm 3            # remove line 3 (as numbered by `list`)
    python refs.py sheet           # render every ref → references/refs.png
    python refs.py canonicalize    # rewrite every line in the canonical spelling

Refs are stored one Leva-prefixed JSON object a line (schema.to_prefixed): the
original pipeline's spelling, complete, with plain values. Every edit goes through
art_explorer.refs.store (one lock shared with the gallery, an atomic replace), so a
save here and one in the gallery at the same moment both land.
Exit codes: 0 ok, 1 error (a message says what), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from art_explorer import atomic, cli, utils
from art_explorer.data import dataset, refs_io
from art_explorer.progress import progress
from art_explorer.refs import store
from art_explorer.scene import rendering, schema

Command = Literal["list", "save", "rm", "sheet", "canonicalize"]

# Kept for the gallery and older callers: a sample that cannot be read or named.
RefCommandError = dataset.SampleError


@dataclass
class Args:
    """Manage the curated references (references/refs.jsonl)."""

    command: Command = field(metadata={"positional": True})
    """list | save ID | rm LINE | sheet | canonicalize"""
    target: str | None = field(default=None, metadata={"positional": True})
    """save: 328 (data/), q:12 (data/quality/), out:0 (output/) or a .json path;
    rm: the line number, 1-based, as `list` shows"""
    refs: str = "references/refs.jsonl"
    """the refs file"""
    data: str = "data"
    """data folder: ID 328 → DATA/params/000328.json, q:12 → DATA/quality/params/…"""
    output: str = "output"
    """predict/explore output: out:0 → OUTPUT/params/000000.json"""
    out: str = "references/refs.png"
    """sheet: where the contact sheet goes"""
    size: int = 192
    """sheet: tile size in px"""
    cols: int = 8
    """sheet: tiles per row"""
    renderer_url: str | None = None
    """sheet: POST /api/raster URL (None: $RENDERER_URL, else localhost:3000; the
    bundled renderer starts when nothing answers locally)"""


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line → Args; a missing ID or a LINE that is not a number is a
    usage error (exit 2)."""
    ap = cli.parser(Args, (__doc__ or "").split("\n\n")[0])
    args = Args(**vars(ap.parse_args(argv)))
    if args.command in ("save", "rm") and args.target is None:
        ap.error(
            f"{args.command} needs {'an ID' if args.command == 'save' else 'a LINE'}"
        )
    if args.command == "rm":
        try:
            schema.arg_int(args.target or "")
        except argparse.ArgumentTypeError as e:
            ap.error(f"rm LINE: {e}")
    return args


def resolve_id(ref_id: str, data: Path, output: Path) -> Path:
    """A sample ID → its params file (dataset.sample_path)."""
    return dataset.sample_path(ref_id, data, output)


def read_params(path: Path) -> dict[str, Any]:
    """A params .json (any spelling) → complete flat params (dataset.load_params)."""
    return dataset.load_params(path)


def cmd_list(refs: Path) -> None:
    numbered = refs_io.load_refs_numbered(refs)
    if not numbered:
        print(f"no refs in {refs}")
        return
    width = len(str(numbered[-1][0]))
    for n, params in numbered:
        print(f"  {n:>{width}}. {schema.describe(params)}")
    print(f"{len(numbered)} refs in {refs}")


def cmd_save(refs: Path, source: Path) -> int:
    """Append the params at `source` to `refs`; returns the new ref's line number."""
    params = dataset.load_params(source)
    n = store.RefsStore(refs).save(params, source=str(source))
    print(f"saved {source} as {refs} line {n}: {schema.describe(params)}")
    return n


def cmd_rm(refs: Path, line_no: int) -> None:
    """Remove line `line_no` (1-based); a broken line can be removed too."""
    what = store.RefsStore(refs).remove(line_no)
    print(f"removed {refs} line {line_no}: {what} (later lines move up by one)")


def cmd_canonicalize(refs: Path) -> int:
    """Rewrite every ref line in the canonical spelling (line numbers kept); returns
    the number of lines that changed."""
    changed, total = store.RefsStore(refs).canonicalize()
    if not total:
        print(f"no refs in {refs}")
        return 0
    print(f"{refs}: {changed} of {total} refs rewritten in the canonical spelling")
    return changed


def cmd_sheet(refs: Path, out: Path, size: int, cols: int, url: str | None) -> None:
    """Render every ref at size² through the renderer; tiles labelled like `list`."""
    numbered = refs_io.load_refs_numbered(refs)
    if not numbered:
        raise store.RefEditError(f"no refs in {refs}: nothing to draw")
    images = []
    with rendering.ensure_renderer(url) as live_url:
        client = rendering.RendererClient(url=live_url)
        try:
            for _, params in progress(numbered, "rendering refs", unit="ref"):
                images.append(client.render(params, size))
        finally:
            client.close()
    labels = [f"{n}. {schema.describe(p)}" for n, p in numbered]
    atomic.write_png(out, utils.contact_sheet(images, labels, cols=cols), optimize=True)
    print(f"wrote {out}: {len(images)} refs at {size}x{size} px")


def main(args: Args) -> int:
    """Run one refs command; returns the exit code (0 ok, 1 error, message on
    stderr)."""
    refs = Path(args.refs)
    try:
        if args.command == "list":
            cmd_list(refs)
        elif args.command == "save":
            cmd_save(
                refs, resolve_id(args.target or "", Path(args.data), Path(args.output))
            )
        elif args.command == "rm":
            cmd_rm(refs, schema.arg_int(args.target or ""))
        elif args.command == "canonicalize":
            cmd_canonicalize(refs)
        elif args.command == "sheet":
            cmd_sheet(refs, Path(args.out), args.size, args.cols, args.renderer_url)
    except (
        dataset.SampleError,
        store.RefEditError,
        refs_io.RefsError,
        rendering.RendererError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, a read-only folder: the refs are as they were
        print(f"error: {utils.os_error_line(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)  # every write is atomic: the refs file is as it was
