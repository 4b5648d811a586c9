"""Train the forward model (params → image) or the inverse model (image → params).

    python train.py --stage forward --data data                  # → checkpoints/forward
    python train.py --stage inverse --data data data/quality     # → checkpoints/inverse
    python train.py --stage forward --data data --resume         # continue a run
    torchrun --nproc_per_node 8 train.py --stage forward --data data-shards   # DDP

Data: DIR/images/NNNNNN.png + DIR/params/NNNNNN.json pairs from generate.py, or a
shard folder (generate.py --shards, shards.py), decoded
once into DIR/.cache/train-SIZE.npz (images resized to --size). 10% validation
(seeded); the best epoch by validation is kept at --out, the latest (with optimizer
state, for --resume) at OUT-last. Each epoch writes OUT-curves.png and OUT-val.png
(a validation sheet to look at). Settings default to the profile (config.py: cpu on
a CPU, gpu with CUDA; `--help` shows its values); flags win.

Forward loss (evaluation.md: plain L1/L2 and SSIM reward black on this scene): L1 on
√image with pixels near lit target pixels weighted up, + L1 of 4×-pooled √image (a
coarse target), + 0.5 × perceptual (LPIPS where its weights exist, else the
weight-free multi-scale √L1), + (1 − NCC) of blurred √image.
Inverse loss: MSE / cross-entropy / BCE per head (layers masked to real ones) + the
perceptual distance between the frozen forward model's renders of the predicted and
the true params, ramped in over the first half of the epochs.
"""

from __future__ import annotations

import random
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_explorer.nets import checkpoint_io
from art_explorer.nets.backbones import BackboneError
from art_explorer.training import cluster
from art_explorer.training.args import TrainArgs
from art_explorer.training.args import parse_args as parse_training_args
from art_explorer.training.forward_stage import train_forward
from art_explorer.training.inverse_stage import train_inverse
from art_explorer.training.loader import load_pairs, split


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    """The options from a command line (None: the process's); see TrainArgs."""
    return parse_training_args(argv, (__doc__ or "").split("\n\n")[0])


def main(args: TrainArgs) -> dict[str, Any]:
    """Train one stage; returns the final metrics, the history and the checkpoint."""
    stage = args.stage
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dist = cluster.init_distributed(args.device)  # torchrun: WORLD_SIZE > 1
    if not dist.main:
        args.renderer = False  # rank 0 draws the sheets
    device = torch.device(
        cluster.device_for(dist, args.device)
        or ("cuda" if torch.cuda.is_available() else "cpu")
    )

    def log(msg: str) -> None:
        if dist.main:
            print(msg, flush=True)

    log(
        f"train {stage}: profile {args.profile}, size {args.size}, epochs {args.epochs}, "
        f"batch {args.batch_size}, lr {args.lr:g}, device {device}"
        + (
            " (bf16 autocast" + (", compiled)" if args.compile else ")")
            if device.type == "cuda"
            else ""
        )
    )
    if dist.world > 1:
        log(
            f"distributed: {dist.world} processes (DDP, "
            f"{'NCCL' if device.type == 'cuda' else 'gloo'}), global batch "
            f"{args.batch_size} = {dist.world} × "
            f"{max(1, args.batch_size // dist.world)}"
        )
    if not dist.main:
        cluster.barrier(dist)  # rank 0 decodes and caches the data first
    pairs = load_pairs(args.data, args.size, args.max_samples, log)
    if dist.main:
        cluster.barrier(dist)
    if len(pairs) < 2:
        raise SystemExit(f"need at least 2 pairs to train, found {len(pairs)}")
    tr, va = split(len(pairs), args.val_frac, args.seed)
    train, val = pairs.subset(tr), pairs.subset(va)
    log(f"data: {len(train)} train / {len(val)} validation pairs at {args.size} px")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    try:
        if stage == "forward":
            res = train_forward(args, train, val, device, dist, log)
        else:
            res = train_inverse(args, train, val, device, dist, log)
        # the ranks leave together: one that tears down gloo while rank 0 still
        # validates and writes its last epoch can abort ("terminate called…")
        cluster.barrier(dist)
        return res
    finally:
        cluster.finish_distributed(dist)


def _stop(signum: int, _frame: Any) -> None:
    """SIGTERM → KeyboardInterrupt, so a stopped run saves OUT-last like Ctrl-C."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    try:
        res = main(parse_args())
    except (checkpoint_io.CheckpointError, BackboneError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    sys.exit(130 if res.get("interrupted") else 0)
