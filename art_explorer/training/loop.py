"""The shared training loop: epochs of AdamW steps on the lr schedule, a validation
pass, one log line, checkpoints, curves and the sheet per epoch."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from art_explorer.nets.compile import compile_hot_paths
from art_explorer.progress import progress
from art_explorer.training import cluster
from art_explorer.training.args import TrainArgs
from art_explorer.training.loader import Pairs, batches, images_at, to_device
from art_explorer.training.run import Run
from art_explorer.training.schedule import lr_at

Log = Callable[[str], None]

TrainStep = Callable[
    [dict[str, torch.Tensor], torch.Tensor, int], tuple[torch.Tensor, dict[str, float]]
]
"""(encoded params, images (B, 3, R, R) in [0, 1], epoch) → (loss, its parts)."""


@dataclass
class Stage:
    """One stage as the shared loop sees it: the net whose weights are saved, its
    optimizer and autocast, and the stage's own steps."""

    net: torch.nn.Module
    opt: torch.optim.Optimizer
    amp: contextlib.AbstractContextManager[Any]
    train_step: TrainStep
    evaluate: Callable[[], dict[str, float]]
    """the validation scores of the epoch (rank 0 only)"""
    sheet: Callable[[], Any]
    """the validation sheet of the epoch, a PIL image (rank 0 only)"""
    fields: list[str]
    """the scores the epoch's log line and the curves show"""
    on_epoch: Callable[[int], None] | None = None
    """called with the epoch's index before it starts"""


def speedups(
    net: torch.nn.Module, device: torch.device, args: TrainArgs
) -> tuple[contextlib.AbstractContextManager[Any], Any]:
    """(autocast, the net to step): bf16 autocast and the compiled hot paths on CUDA
    (unless --no-compile), no autocast and the net itself elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext(), net
    amp = torch.autocast("cuda", dtype=torch.bfloat16)
    return amp, compile_hot_paths(net) if args.compile else net


@dataclass
class Schedule:
    """The steps of a fit: batches per epoch, all steps, warm-up steps, base LRs."""

    per_epoch: int
    total: int
    warmup: int
    base_lrs: list[float]

    @classmethod
    def of(cls, n_train: int, args: TrainArgs, opt: torch.optim.Optimizer) -> Schedule:
        bs = args.batch_size
        per_epoch = max(1, n_train // bs if n_train > bs else 1)
        total = args.epochs * per_epoch
        warmup = min(200, max(1, total // 20))
        return cls(per_epoch, total, warmup, [g["lr"] for g in opt.param_groups])


def train_epoch(
    run: Run,
    stage: Stage,
    train: Pairs,
    args: TrainArgs,
    sched: Schedule,
    epoch: int,
    gen: torch.Generator,
    dist: cluster.Dist,
    device: torch.device,
) -> tuple[int, float]:
    """One epoch of AdamW steps on the lr_at schedule → (samples seen, loss sum)."""
    seen, loss_sum = 0, 0.0
    order = (
        batches(len(train), args.batch_size, gen)
        if dist.world == 1
        else cluster.rank_batches(len(train), args.batch_size, dist, args.seed, epoch)
    )
    bar = progress(
        order,
        f"epoch {epoch + 1}/{args.epochs}",
        total=sched.per_epoch,
        unit="batch",
        leave=False,
        disable=not dist.main,
    )
    for idx in bar:
        scale = lr_at(run.step, sched.total, 1.0, sched.warmup)
        for g, base in zip(stage.opt.param_groups, sched.base_lrs, strict=True):
            g["lr"] = base * scale
        enc = to_device(train.enc, idx, device)
        target = images_at(train, idx, device)  # (B, 3, R, R) in [0, 1]
        with stage.amp:
            loss, parts = stage.train_step(enc, target, epoch)
        stage.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(stage.net.parameters(), 1.0)
        stage.opt.step()
        run.step += 1
        seen += len(idx)
        loss_sum += float(loss.detach()) * len(idx)
        shown = {"loss": f"{float(loss.detach()):.4f}"}
        shown.update({k: f"{v:.3f}" for k, v in list(parts.items())[:3]})
        bar.set_postfix(shown)
    bar.close()
    return seen, loss_sum


def epoch_line(
    epoch: int, epochs: int, scores: dict[str, Any], fields: list[str], best: bool
) -> str:
    """The one log line of an epoch, with fixed fields."""
    shown = "  ".join(f"{f} {scores[f]:.3f}" for f in fields)
    return (
        f"epoch {epoch + 1:3d}/{epochs}  train {scores['train_loss']:.4f}  "
        f"val {scores['val_loss']:.4f}  {shown}  lr {scores['lr']:.1e}  "
        f"{scores['seconds']:6.1f} s  {scores['samples_per_s']:6.1f} img/s"
        + (f"  {scores['gpu_mem_gb']} GB" if "gpu_mem_gb" in scores else "")
        + ("  *best" if best else "")
    )


def fit(
    run: Run,
    stage: Stage,
    train: Pairs,
    args: TrainArgs,
    dist: cluster.Dist,
    device: torch.device,
    log: Log,
) -> dict[str, Any]:
    """The explicit training loop: epochs of AdamW steps with the lr_at schedule, a
    validation pass, one log line, checkpoints, curves and the sheet per epoch.
    Ctrl-C saves OUT-last and returns (resume with --resume)."""
    sched = Schedule.of(len(train), args, stage.opt)
    gen = torch.Generator().manual_seed(args.seed + run.start_epoch)
    scores: dict[str, Any] = run.history[-1] if run.history else {}
    stage.net.train()
    epoch = run.start_epoch
    try:
        for epoch in range(run.start_epoch, args.epochs):
            if stage.on_epoch is not None:
                stage.on_epoch(epoch)
            t0 = time.time()
            seen, loss_sum = train_epoch(
                run, stage, train, args, sched, epoch, gen, dist, device
            )
            train_time = time.time() - t0
            seen, loss_sum = cluster.all_sum([seen, loss_sum], dist)  # every rank's
            scores = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(1, seen),
                **(stage.evaluate() if dist.main else {}),
            }
            scores.update(
                lr=stage.opt.param_groups[-1]["lr"],
                seconds=round(time.time() - t0, 1),
                samples_per_s=round(seen / max(train_time, 1e-9), 1),
            )
            if device.type == "cuda":
                scores["gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 1)
            run.history.append(scores)
            if not dist.main:  # rank 0 alone validates, writes and logs
                continue
            best = run.save(stage.net, stage.opt, epoch + 1, scores)
            run.curves(stage.fields)
            run.sheet(stage.sheet())
            log(epoch_line(epoch, args.epochs, scores, stage.fields, best))
    except KeyboardInterrupt:
        if dist.main:  # rank 0 saves OUT-last
            run.save_last(stage.net, stage.opt, epoch, scores)
            log(
                f"interrupted in epoch {epoch + 1}: saved {run.last}; continue with "
                "the same command plus --resume"
            )
        return {
            "interrupted": True,
            "checkpoint": str(run.out),
            "history": run.history,
            "best": run.best,
            **scores,
        }
    log(
        f"best {run.key} {run.best:.4f} → {run.out}.safetensors (sheet "
        f"{run.out}-val.png, curves {run.out}-curves.png)"
        if run.best is not None
        else "no epochs run"
    )
    return {
        "interrupted": False,
        "checkpoint": str(run.out),
        "history": run.history,
        "best": run.best,
        **scores,
    }
