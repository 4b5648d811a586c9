"""Explore: grow the archive of distinct, striking pictures (quality-diversity).

    python explore.py                     # 500 more renders into output/archive/
    python explore.py --renders 2000 -n 16
    python explore.py --archive /tmp/a --renders 200 -n 0

Every call grows the same archive (output/archive/: elites.jsonl, archive.npz,
archive.json, thumbs/, map.png) and renders its best new elites into output/ with a
contact sheet, so `make save-ref ID=out:N` keeps one. The method: docs/explore.md.
"""

from __future__ import annotations

import sys

from art_explorer import cli
from art_explorer.explore import qd
from art_explorer.scene import rendering


def main(args: qd.GrowArgs) -> dict[str, object]:
    out = qd.grow(args)
    if out["sheet"]:
        print(f"contact sheet: {out['sheet']}")
    for i in out["results"]:
        print(f"  make save-ref ID=out:{i}")
    return out


if __name__ == "__main__":
    try:
        main(cli.parse(qd.GrowArgs))
    except (qd.ExploreError, rendering.RendererError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
