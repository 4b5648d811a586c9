"""Image → params (inverse) and novel outputs from the references (explore).

    python predict.py --target picture.png            # → output/, prints save-ref
    python predict.py --target picture.jpg --fevals 200 --size 96
    python predict.py --explore -n 8                  # novel children of the refs
    python predict.py --explore --clip                # novelty by CLIP embeddings

Inverse: art_explorer/predict (the stages in pipeline.py, docs/pipeline.md); works
without either model (says so). Explore: art_explorer/explore/novelty.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from art_explorer import cli
from art_explorer.explore import novelty
from art_explorer.predict.errors import UserError
from art_explorer.predict.run import PredictArgs, run_inverse
from art_explorer.scene import rendering


@dataclass
class Args(novelty.ExploreOptions, PredictArgs):
    """predict.py's options: the search's knobs, predict's run, explore's."""

    explore: bool = False
    """explore (novel children of the refs) instead of invert"""


def _bare_ray(argv: list[str]) -> list[str]:
    """`--ray` without an address means a local Ray (as generate.py --ray)."""
    out: list[str] = []
    for i, a in enumerate(argv):
        out.append(a)
        if a == "--ray" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("local")
    return out


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line (None: the process's) → Args; exits with a usage line on
    bad values."""
    ap = cli.parser(Args, (__doc__ or "").split("\n\n")[0])
    ns = ap.parse_args(_bare_ray(list(sys.argv[1:] if argv is None else argv)))
    args = Args(**vars(ns))
    if not args.explore and not args.target:
        ap.error("give --target IMAGE (or --explore)")
    for name in ("fevals", "size", "n", "candidates", "final_size", "ray_workers"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 32 <= args.size <= 2048 or not 32 <= args.final_size <= 2048:
        ap.error("--size and --final-size must be within 32-2048")
    return args


def main(args: Args) -> dict[str, Any]:
    """Run inverse or explore; returns what was written (ids, metrics, paths).
    Raises UserError for what the user can fix (the command line prints it)."""
    if args.explore:
        return novelty.run_explore(args)
    return run_inverse(args)


if __name__ == "__main__":
    try:
        main(parse_args())
    except (UserError, rendering.RendererError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
