"""Small tools for this installation.

    python utils.py doctor         # which backend each part uses, the renderer, data
    python utils.py schema-hash    # the parameter schema's version and hash

`doctor` says, one line each, whether the renderer answers, which checkpoints
predict would load, which perceptual distance and aesthetic scorer "auto" picks here
(weights present or the weight-free default), the parameter schema, and what the
data folders and references hold. Exit code 1 when a line says FAIL.
The library is art_explorer (art_explorer.doctor; art_explorer/utils.py holds the
package's shared helpers).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from art_explorer import cli, doctor
from art_explorer.scene import schema


@dataclass
class Args:
    """Small tools for this installation."""

    command: Literal["doctor", "schema-hash"] = field(metadata={"positional": True})
    """doctor | schema-hash"""
    renderer_url: str | None = None
    """POST /api/raster URL to probe (None: $RENDERER_URL, else localhost:3000)"""
    checkpoints: str = "checkpoints"
    """checkpoint folder"""
    data: str = "data"
    """coverage data folder (quality data: DATA/quality)"""
    refs: str = "references/refs.jsonl"
    """the refs file"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, (__doc__ or "").split("\n\n")[0])


def main(args: Args) -> int:
    """Run one tool; returns the exit code."""
    if args.command == "schema-hash":
        print(f"v{schema.SCHEMA_VERSION} {schema.schema_hash()}")
        return 0
    checks = doctor.doctor(
        args.renderer_url, Path(args.checkpoints), Path(args.data), Path(args.refs)
    )
    return 1 if any(c.status == "problem" for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
