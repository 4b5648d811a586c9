"""Pretrain the inverse model on renders made on the fly (no data on disk).

The bundled renderer (renderer/scene.py) runs in-process in DataLoader worker
processes and draws params from the refs-like distribution (sampling.sample_refs_like,
what curated references look like) mixed with the coverage distribution
(sampling.sample_params). Each rendered pair enters a replay buffer and is seen about
`--reuse` times, since rendering costs about as much as a training step on a CPU.
The model is InverseModel with the small SceneCNN backbone on √image; the loss is
train.py's parameter loss plus extra weight on the structure (geometry, the
progressions, origin, layer count). The schedule runs on the clock (`--minutes`):
cosine from `--lr` to 5% of it. Every `--save-every` minutes it evaluates on a fixed
held-out set of refs-like draws and writes the checkpoint (safetensors + JSON
sidecar with the command, the figures and the schema hash; `checkpoint_io.load_inverse`
refuses it after a schema change).

    python pretrain_inverse.py --minutes 80 --out models/inverse-pretrained
    python pretrain_inverse.py --evaluate models/inverse-pretrained  # its figures
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch

from art_explorer import cli
from art_explorer.training.pretrain import (
    MAX_LIT,
    MIN_LIT,
    PretrainArgs,
    draw_target,
    evaluate,
    lit_fraction,
    pretrain,
)

__all__ = ["MAX_LIT", "MIN_LIT", "draw_target", "evaluate", "lit_fraction", "main"]


def parse_args(argv: list[str] | None = None) -> PretrainArgs:
    """The options from a command line (None: the process's); see PretrainArgs."""
    args = cli.parse(PretrainArgs, argv, (__doc__ or "").split("\n\n")[0])
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the sidecar
    return args


def main(args: PretrainArgs) -> dict[str, Any]:
    """Pretrain (or, with --evaluate, print a checkpoint's figures)."""
    if args.evaluate:
        torch.set_num_threads(args.threads)
        res = evaluate(args.evaluate, args.val, args.size)
        print(json.dumps(res, indent=1))
        return res
    return pretrain(args)


if __name__ == "__main__":
    main(parse_args())
