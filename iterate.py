"""One full round of the pipeline (pipeline.md "Round N"), resumable.

    generate → train forward → score refs → generate quality → train inverse →
    choose inverse (the round's or the bundled one) → explore → report

An interrupted round is carried on by the next `make iterate` (finished stages are
skipped); a finished round makes the next call start round N+1. The round ends with
`output/round-NNN/report.md` and its pictures. The library is art_explorer.round.
"""

from __future__ import annotations

import sys
from pathlib import Path

from art_explorer import cli, utils
from art_explorer.data import refs_io
from art_explorer.round import STAGES, IterateArgs, Round, run_round
from art_explorer.scene import rendering

Args = IterateArgs
__all__ = ["STAGES", "Args", "Round", "main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> IterateArgs:
    return cli.parse(IterateArgs, argv)


def main(args: IterateArgs) -> Path:
    """Run (or carry on) a round; returns the path of its report."""
    return run_round(args)


if __name__ == "__main__":
    try:
        main(parse_args())
    except (rendering.RendererError, refs_io.RefsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"error: {utils.os_error_line(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: run `make iterate` again to carry on this round",
            file=sys.stderr,
        )
        sys.exit(130)
