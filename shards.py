"""Convert between the folder layout and tar shards.

python shards.py pack data data-shards          # folder layout → shards
python shards.py unpack data-shards data-copy   # shards → folder layout
python shards.py info data-shards               # samples, shards, index range
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from art_explorer.data.shards import PER_SHARD, pack, read_index, unpack


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="folder layout → shards")
    p.add_argument("src", help="folder with images/ and params/")
    p.add_argument("dst", help="shard folder (created; appended to)")
    p.add_argument(
        "--per-shard",
        type=int,
        default=PER_SHARD,
        help=f"samples per shard ({PER_SHARD})",
    )
    u = sub.add_parser("unpack", help="shards → folder layout")
    u.add_argument("src", help="shard folder")
    u.add_argument("dst", help="folder to write images/ and params/ into")
    i = sub.add_parser("info", help="what a shard folder holds")
    i.add_argument("src", help="shard folder")
    args = ap.parse_args(argv)
    if getattr(args, "per_shard", 1) < 1:
        ap.error("--per-shard must be >= 1")
    return args


def main(args: argparse.Namespace) -> int:
    """Run one subcommand; returns the samples it packed, unpacked or found."""
    src = Path(args.src)
    if args.command == "pack":
        return pack(src, Path(args.dst), args.per_shard)
    if args.command == "unpack":
        return unpack(src, Path(args.dst))
    index = read_index(src)
    shards = index["shards"]
    span = f", {shards[0]['first']:06d}-{shards[-1]['last']:06d}" if shards else ""
    size = sum((src / s["name"]).stat().st_size for s in shards)
    print(
        f"{src}: {index['samples']} samples in {len(shards)} shards{span}, "
        f"{size / 1e6:.1f} MB"
    )
    return int(index["samples"])


if __name__ == "__main__":
    sys.exit(0 if main(parse_args()) >= 0 else 1)
