"""Generate (image, params) pairs with the renderer: the models' training data.

    python generate.py --n 200                        # → data/images, data/params
    python generate.py --scored --n 100 --out data/quality
    python generate.py --n 50 --preview               # watch the samples arrive
    python generate.py --n 100000 --ray --shards --out data-shards   # README: Scaling out

Sampling follows pipeline.md "Sampling": a random run is `--ref-share` (0.3) bred from
references/refs.jsonl and the rest drawn at random; `--scored` breeds 90% from
references/refs-scored.jsonl with the scores as parent weights (the quality data).
`--n N` is how many complete pairs OUT holds when the run ends, so the same command
run again after an interruption (even kill -9) carries on where it stopped. Ctrl-C or
SIGTERM stops cleanly (a second one stops at once) and says how to resume. The
library is art_explorer.data.generation.
"""

from __future__ import annotations

import signal
import sys

from art_explorer import cli, utils
from art_explorer.data import refs_io
from art_explorer.data.generation import (
    GenerateArgs,
    PairWriter,
    Sampler,
    generate,
    make_sampler,
    resume_command,
)
from art_explorer.scene import rendering
from art_explorer.stop import Stopped

Args = GenerateArgs
__all__ = ["Args", "PairWriter", "Sampler", "main", "make_sampler", "parse_args"]
__all__ += ["resume_command"]


def parse_args(argv: list[str] | None = None) -> GenerateArgs:
    """The command line → GenerateArgs; a value out of range is a usage error."""
    ap = cli.parser(GenerateArgs, (__doc__ or "").split("\n\n")[0])
    try:
        return GenerateArgs(**vars(ap.parse_args(argv)))
    except ValueError as e:
        ap.error(str(e))


def main(args: GenerateArgs) -> int:
    """Top args.out up to args.n complete pairs; returns how many were written."""
    return generate(args)


if __name__ == "__main__":
    try:
        main(parse_args())
    except (rendering.RendererError, refs_io.RefsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:  # a full disk: every pair written so far is complete
        print(f"error: {utils.os_error_line(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        sys.exit(128 + (e.signum if isinstance(e, Stopped) else signal.SIGINT))
