"""Convert between the folder layout and tar shards.

python shards.py pack data data-shards          # folder layout → shards
python shards.py unpack data-shards data-copy   # shards → folder layout
python shards.py info data-shards               # samples, shards, index range

A damaged (truncated) shard is named on stderr and its good samples are kept; `info`
reads every shard's headers, so it counts what the shards really hold.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from art_explorer import cli, utils
from art_explorer.data.shards import PER_SHARD, pack, unpack, verify


@dataclass
class Args:
    """Convert between the folder layout and tar shards."""

    command: Literal["pack", "unpack", "info"] = field(metadata={"positional": True})
    """pack SRC DST | unpack SRC DST | info SRC"""
    src: str = field(metadata={"positional": True})
    """pack: a folder with images/ and params/; unpack, info: a shard folder"""
    dst: str | None = field(default=None, metadata={"positional": True})
    """pack: the shard folder (created; appended to); unpack: the folder to write
    images/ and params/ into"""
    per_shard: int = PER_SHARD
    """pack: samples per shard"""


def parse_args(argv: list[str] | None = None) -> Args:
    ap = cli.parser(Args, (__doc__ or "").split("\n\n")[0])
    args = Args(**vars(ap.parse_args(argv)))
    if args.per_shard < 1:
        ap.error("--per-shard must be >= 1")
    if args.command != "info" and args.dst is None:
        ap.error(f"{args.command} needs SRC and DST")
    return args


def info(src: Path) -> int:
    """Print what a shard folder holds (damaged shards named); returns the samples."""
    index, damaged = verify(src)
    for line in damaged:
        print(f"warning: {line}", file=sys.stderr)
    shards = index["shards"]
    span = f", {shards[0]['first']:06d}-{shards[-1]['last']:06d}" if shards else ""
    size = sum((src / s["name"]).stat().st_size for s in shards)
    broken = f" ({len(damaged)} damaged)" if damaged else ""
    print(
        f"{src}: {index['samples']} samples in {len(shards)} shards{broken}{span}, "
        f"{size / 1e6:.1f} MB"
    )
    return int(index["samples"])


def main(args: Args) -> int:
    """Run one subcommand; returns the samples it packed, unpacked or found."""
    src = Path(args.src)
    if args.command == "pack":
        return pack(src, Path(args.dst or ""), args.per_shard)
    if args.command == "unpack":
        return unpack(src, Path(args.dst or ""))
    return info(src)


if __name__ == "__main__":
    try:
        sys.exit(0 if main(parse_args()) >= 0 else 1)
    except OSError as e:
        sys.exit(f"error: {utils.os_error_line(e)}")
