"""The forward stage: train the forward model (params → image) on rendered pairs."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import torch

from art_explorer import config, utils
from art_explorer.nets import perceptual_distance
from art_explorer.nets.forward import ForwardModel
from art_explorer.scoring import metrics
from art_explorer.training import cluster
from art_explorer.training.args import FORWARD_FLAGS, TrainArgs
from art_explorer.training.loader import Pairs, batches, images_at, to_device
from art_explorer.training.loop import Stage, fit, speedups
from art_explorer.training.losses import ForwardLossWeights, forward_loss
from art_explorer.training.run import Run


def forward_config(args: TrainArgs) -> config.ForwardConfig:
    """The profile's forward network shape with the size and the shape flags."""
    return dataclasses.replace(
        config.get_profile(args.profile).forward.model,
        size=args.size,
        **{name: getattr(args, name) for name in FORWARD_FLAGS},
    )


@torch.no_grad()
def evaluate_forward(
    net: torch.nn.Module,
    pairs: Pairs,
    batch_size: int,
    device: torch.device,
    perceptual: torch.nn.Module,
    w: ForwardLossWeights,
    amp: contextlib.AbstractContextManager[Any] | None = None,
) -> dict[str, float]:
    """Validation loss, NCC and line F1 (means over `pairs`)."""
    was = net.training
    net.eval()
    tot = {"val_loss": 0.0, "ncc": 0.0, "f1": 0.0}
    for idx in batches(len(pairs), batch_size, None):
        target = images_at(pairs, idx, device)
        with amp or contextlib.nullcontext():
            pred = net(to_device(pairs.enc, idx, device))
        loss, _ = forward_loss(pred, target, perceptual, w)
        pred = pred.float()
        tot["val_loss"] += float(loss) * len(idx)
        tot["ncc"] += float(metrics.ncc_batch(pred, target).sum())
        tot["f1"] += float(metrics.line_f1_batch(pred, target).sum())
    net.train(was)
    return {k: v / max(1, len(pairs)) for k, v in tot.items()}


@torch.no_grad()
def forward_sheet(
    net: torch.nn.Module, pairs: Pairs, device: torch.device, n: int = 16
) -> Any:
    """Contact sheet of renderer image | forward-model image pairs, 4 pairs a row."""
    idx = torch.arange(min(n, len(pairs)))
    was = net.training
    net.eval()
    target = images_at(pairs, idx, device)
    pred = net(to_device(pairs.enc, idx, device)).float().clamp(0, 1)
    net.train(was)
    nccs = metrics.ncc_batch(pred, target).tolist()
    tiles, labels = [], []
    for i in range(len(idx)):
        tiles += [
            target[i].permute(1, 2, 0).cpu().numpy(),
            pred[i].permute(1, 2, 0).cpu().numpy(),
        ]
        labels += [Path(pairs.names[i]).name, f"model {nccs[i]:.2f}"]
    return utils.contact_sheet(
        tiles, labels, cols=8, cell=max(128, pairs.images.shape[-1])
    )


def train_forward(
    args: TrainArgs,
    train: Pairs,
    val: Pairs,
    device: torch.device,
    dist: cluster.Dist,
    log: Any,
) -> dict[str, Any]:
    cfg = forward_config(args)
    net = ForwardModel(cfg).to(device)
    n_params = sum(p.numel() for p in net.parameters())
    perceptual = perceptual_distance.create_perceptual(args.perceptual).to(device)
    log(f"forward: {n_params / 1e6:.2f}M params, {cfg}; perceptual: {perceptual.name}")
    w = ForwardLossWeights()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    run = Run(Path(args.out), "forward", args, higher_is_better=True, key="ncc")
    if args.resume:
        run.resume(net, opt, {"size": cfg.size, "width": cfg.width}, log)
    amp, step_net = speedups(net, device, args)
    train_net = cluster.wrap_ddp(step_net, dist, device)
    stage = Stage(
        net,
        opt,
        amp,
        train_step=lambda enc, target, epoch: forward_loss(
            train_net(enc), target, perceptual, w
        ),
        evaluate=lambda: evaluate_forward(
            step_net, val, args.batch_size, device, perceptual, w, amp
        ),
        sheet=lambda: forward_sheet(net, val, device),
        fields=["ncc", "f1"],
    )
    return fit(run, stage, train, args, dist, device, log)
