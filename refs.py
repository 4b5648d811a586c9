"""Manage the curated references (references/refs.jsonl) from the command line.

    python refs.py list            # one numbered line per ref (numbers = file lines)
    python refs.py save 328        # data/params/000328.json → a new last line
    python refs.py save q:12       # data/quality/params/000012.json
    python refs.py save out:0      # output/params/000000.json
    python refs.py rm 3            # remove line 3 (as numbered by `list`)
    python refs.py sheet           # render every ref → references/refs.png
    python refs.py canonicalize    # rewrite every line in the canonical spelling

Refs are stored one Leva-prefixed JSON object a line (schema.to_prefixed): the
original pipeline's spelling, complete, with plain values (no Leva {value, disabled}
wrappers; a disabled override is left out), which its code reads. Lines written by
hand may use either spelling and wrappers; `canonicalize` rewrites them (the same
params, so the same pictures; line numbers kept). `save` refuses a ref that is
already there (same canonical params); every write goes to a temp file that is then
renamed over the old one, so the file is never half written.
Exit codes: 0 ok, 1 error (a message says what), 2 usage.
"""

from __future__ import annotations

import argparse
import codecs
import json
import re
import sys
from pathlib import Path
from typing import Any

from art_explorer import atomic, utils
from art_explorer.data import dataset, refs_io
from art_explorer.scene import rendering, schema

ID_RE = re.compile(r"^(?:(q|out):)?(.+)$")
MAX_ID_DIGITS = 9


class RefCommandError(Exception):
    """A refs command that cannot be done (bad ID, missing sample, no such line)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = ap.add_argument_group("files")
    g.add_argument(
        "--refs",
        default="references/refs.jsonl",
        help="the refs file (references/refs.jsonl)",
    )
    g.add_argument(
        "--data",
        default="data",
        help="data folder: ID 328 → DATA/params/000328.json, q:12 → "
        "DATA/quality/params/000012.json (data)",
    )
    g.add_argument(
        "--output",
        default="output",
        help="predict/explore output: out:0 → OUTPUT/params/000000.json (output)",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="print one numbered line per ref")
    save = sub.add_parser("save", help="append a sample's params as a new ref")
    save.add_argument(
        "id",
        metavar="ID",
        help="328 (data/), q:12 (data/quality/), out:0 (output/), or a .json path",
    )
    rm = sub.add_parser("rm", help="remove the LINE-th line (1-based, as `list` shows)")
    rm.add_argument(
        "line", metavar="LINE", type=schema.arg_int, help="line number, 1-based"
    )
    sheet = sub.add_parser(
        "sheet", help="render every ref into a numbered contact sheet"
    )
    sheet.add_argument(
        "--out", default="references/refs.png", help="where (references/refs.png)"
    )
    sheet.add_argument("--size", type=int, default=192, help="tile size in px (192)")
    sheet.add_argument("--cols", type=int, default=8, help="tiles per row (8)")
    sheet.add_argument(
        "--renderer-url",
        default=None,
        help="POST /api/raster URL (default: $RENDERER_URL, else localhost:3000; "
        "the bundled renderer starts when nothing answers locally)",
    )
    sub.add_parser(
        "canonicalize",
        help="rewrite every ref line in the canonical prefixed spelling (no Leva "
        "wrappers), keeping line numbers",
    )
    return ap.parse_args(argv)


def resolve_id(ref_id: str, data: Path, output: Path) -> Path:
    """'328' → DATA/params/000328.json, 'q:12' → DATA/quality/params/000012.json,
    'out:0' → OUTPUT/params/000000.json; a path ending in .json is taken as it is."""
    s = ref_id.strip()
    if s.endswith(".json"):
        return Path(s)
    m = ID_RE.match(s)
    if not m:
        raise RefCommandError(
            f"bad ID {schema.clip_text(ref_id)}: expected a sample number (328), "
            "q:N (quality data), out:N (output/) or a path to a params .json"
        )
    kind = m.group(1)
    try:
        n = schema.parse_uint(m.group(2), "number", MAX_ID_DIGITS)
    except schema.NumberError as e:
        raise RefCommandError(
            f"bad ID {schema.clip_text(ref_id)}: {e} (a sample number like 328, "
            "q:N or out:N)"
        ) from None
    folder = {None: data, "q": data / "quality", "out": output}[kind]
    return dataset.Layout(folder).params_path(n)


def read_params(path: Path) -> dict[str, Any]:
    """A params .json (any spelling) → complete flat params, or RefCommandError."""
    if not path.exists():
        raise RefCommandError(f"no such sample: {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RefCommandError(f"{path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError:
        raise RefCommandError(f"{path}: not UTF-8 text") from None
    try:
        return schema.validate_params(json.loads(text))
    except json.JSONDecodeError as e:
        raise RefCommandError(
            f"{path}: not JSON ({e.msg} at line {e.lineno})"
        ) from None
    except schema.ParamError as e:
        raise RefCommandError(f"{path}: {e.message}") from None
    except (ValueError, RecursionError) as e:  # a 4300+ digit integer, deep nesting
        raise RefCommandError(f"{path}: not readable JSON ({e})") from None


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
    params = read_params(source)
    key = schema.canonical_json(params)
    numbered = refs_io.load_refs_numbered(refs)  # RefsError on a broken line
    for n, existing in numbered:
        if schema.canonical_json(existing) == key:
            raise RefCommandError(f"{source} is already a ref: {refs} line {n}")
    text = refs.read_text(encoding="utf-8") if refs.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    text += ref_line(params) + "\n"
    atomic.atomic_write_text(refs, text)
    n = text.count("\n")
    print(f"saved {source} as {refs} line {n}: {schema.describe(params)}")
    return n


def ref_line(params: dict[str, Any]) -> str:
    """Params (any spelling) → one refs.jsonl line in the canonical spelling: what
    `save` writes and `canonicalize` rewrites to."""
    return json.dumps(schema.to_prefixed(params), separators=(", ", ": "))


def cmd_canonicalize(refs: Path) -> int:
    """Rewrite every ref line with `ref_line` (blank lines kept, so the line numbers
    stay); a broken line stops it before anything is written. Returns the number of
    lines that changed."""
    numbered = dict(refs_io.load_refs_numbered(refs))  # RefsError on a broken line
    if not numbered:
        print(f"no refs in {refs}")
        return 0
    # split as refs_io.load_refs_numbered numbers the lines
    lines = refs.read_bytes().removeprefix(codecs.BOM_UTF8).splitlines()
    out = [
        ref_line(numbered[n]) if n in numbered else "" for n in range(1, len(lines) + 1)
    ]
    changed = sum(new.encode() != old for new, old in zip(out, lines, strict=True))
    if changed:
        atomic.atomic_write_text(refs, "".join(x + "\n" for x in out))
    print(
        f"{refs}: {changed} of {len(numbered)} refs rewritten in the canonical spelling"
    )
    return changed


def cmd_rm(refs: Path, line_no: int) -> None:
    """Remove line `line_no` (1-based). A broken line can be removed too (that is
    how one fixes it); a blank or missing line is refused."""
    # bytes, split as refs_io.load_refs_numbered numbers them; a line need not decode
    try:
        lines = refs.read_bytes().splitlines() if refs.exists() else []
    except OSError as e:
        raise RefCommandError(f"{refs}: cannot read it ({e.strerror})") from None
    if not 1 <= line_no <= len(lines):
        raise RefCommandError(
            f"{refs} has no line {line_no} (it has {len(lines)} lines; "
            "`python refs.py list` numbers them)"
        )
    removed = lines[line_no - 1]
    if not removed.strip():
        raise RefCommandError(f"{refs} line {line_no} is blank: nothing to remove")
    try:
        what = schema.describe(schema.validate_params(json.loads(removed)))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, not params
        what = f"unreadable line {removed[:60].decode('utf-8', 'replace')!r}"
    rest = lines[: line_no - 1] + lines[line_no:]
    atomic.atomic_write_bytes(refs, b"".join(x + b"\n" for x in rest))
    print(f"removed {refs} line {line_no}: {what} (later lines move up by one)")


def cmd_sheet(refs: Path, out: Path, size: int, cols: int, url: str | None) -> None:
    """Render every ref at size² through the renderer; tiles labelled like `list`."""
    from tqdm import tqdm

    numbered = refs_io.load_refs_numbered(refs)
    if not numbered:
        raise RefCommandError(f"no refs in {refs}: nothing to draw")
    images = []
    with rendering.ensure_renderer(url) as live_url:
        client = rendering.RendererClient(url=live_url)
        try:
            for _, params in tqdm(numbered, unit="ref", desc="rendering refs"):
                images.append(client.render(params, size))
        finally:
            client.close()
    labels = [f"{n}. {schema.describe(p)}" for n, p in numbered]
    atomic.write_png(out, utils.contact_sheet(images, labels, cols=cols), optimize=True)
    print(f"wrote {out}: {len(images)} refs at {size}x{size} px")


def main(args: argparse.Namespace) -> int:
    """Run one refs command; returns the exit code (0 ok, 1 error, message on
    stderr)."""
    refs = Path(args.refs)
    try:
        if args.command == "list":
            cmd_list(refs)
        elif args.command == "save":
            cmd_save(refs, resolve_id(args.id, Path(args.data), Path(args.output)))
        elif args.command == "rm":
            cmd_rm(refs, args.line)
        elif args.command == "canonicalize":
            cmd_canonicalize(refs)
        elif args.command == "sheet":
            cmd_sheet(refs, Path(args.out), args.size, args.cols, args.renderer_url)
    except (RefCommandError, refs_io.RefsError, rendering.RendererError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)  # every write is atomic: the refs file is as it was
