"""Aesthetic scoring of the references → references/refs-scored.jsonl (pipeline step 3).

    python score_refs.py                      # auto scorer, cached
    python score_refs.py --fresh              # ignore the cache
    python score_refs.py --scorer heuristic   # the weight-free scorer

Each ref is rendered through the renderer's HTTP API (the bundled renderer is started
when nothing answers on this machine), scored in [0, 1] (higher = more striking), and
the refs are written to references/refs-scored.jsonl sorted by score, highest first,
with a contact sheet in score order (references/refs-scored.png). Scores are cached
(references/.score-cache.json) by scorer, render size and params; `--fresh` ignores
the cache. Scorers, by name (art_explorer.scoring.scorers): `heuristic` (weight-free,
art_explorer.scoring.aesthetic), `qwen2-vl` (art_explorer.scoring.vlm), `auto` (the
VLM when its weights are on this machine, else the heuristic).

Exit codes: 0 ok; 1 with a one-line message for an unreadable refs line (file +
line), a renderer that cannot be reached, VLM weights that cannot be found, or a
file that cannot be written.
"""

from __future__ import annotations

import sys
from typing import Any

from art_explorer import cli, utils
from art_explorer.data import refs_io
from art_explorer.scene import rendering
from art_explorer.scoring.ref_scores import ScoreRefsArgs, score_refs
from art_explorer.scoring.scorers import ScorerError

Args = ScoreRefsArgs


def parse_args(argv: list[str] | None = None) -> ScoreRefsArgs:
    return cli.parse(ScoreRefsArgs, argv, (__doc__ or "").split("\n\n")[0])


def main(args: ScoreRefsArgs) -> list[tuple[dict[str, Any], float]]:
    """Score every ref; returns [(flat params, score)] highest first."""
    return score_refs(args)


if __name__ == "__main__":
    try:
        main(parse_args())
    except (refs_io.RefsError, rendering.RendererError, ScorerError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"error: {utils.os_error_line(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)  # what was scored is in the cache (score_refs said so)
