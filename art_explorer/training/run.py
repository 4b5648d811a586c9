"""One training run's bookkeeping: its history, the best and last checkpoints (the
last with the optimizer state, for --resume), the curves and the validation sheet."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from art_explorer import atomic
from art_explorer.nets import checkpoint_io
from art_explorer.scene import schema
from art_explorer.training.args import TrainArgs


def optimizer_state(
    opt: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as flat tensors (for safetensors) + JSON (no pickles)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], js: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, v in tensors.items():
        pid, k = name.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, st in js.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": js["param_groups"]})


def check_resume_meta(stem: Path, meta: dict[str, Any]) -> None:
    """CheckpointError unless an OUT-last sidecar holds what --resume reads: the
    optimizer state (an object), epoch and step (non-negative integers), history (a
    list) and best (a number or null)."""

    def bad(what: str) -> checkpoint_io.CheckpointError:
        return checkpoint_io.CheckpointError(
            f"{stem}.json: {what}; it cannot be resumed (start without --resume)"
        )

    if not isinstance(meta.get("optimizer"), dict):
        raise bad("no optimizer state")
    for k in ("epoch", "step"):
        v = meta.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(f"{k} is {schema.clip_text(v)}, not a count")
    if not isinstance(meta.get("history", []), list):
        raise bad("history is not a list")
    best = meta.get("best")
    if best is not None and (
        isinstance(best, bool) or not isinstance(best, (int, float))
    ):
        raise bad(f"best is {schema.clip_text(best)}, not a number")


class Run:
    """Bookkeeping of one training run: the history, best/last checkpoints, the curves
    and the resume state. OUT = best, OUT-last = latest with optimizer state."""

    def __init__(
        self,
        out: Path,
        stage: str,
        args: TrainArgs,
        higher_is_better: bool,
        key: str,
    ) -> None:
        self.out, self.stage, self.args = out, stage, args
        self.last = out.with_name(out.name + "-last")
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.key, self.higher = key, higher_is_better
        self.start_epoch = 0
        self.step = 0

    def args_json(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in vars(self.args).items()
            if isinstance(v, (str, int, float, bool, list, type(None)))
        }

    def resume(
        self,
        net: torch.nn.Module,
        opt: torch.optim.Optimizer,
        expect: dict[str, Any],
        log: Any,
    ) -> bool:
        """Load OUT-last into net and opt when it exists; False when there is none."""
        if not checkpoint_io.checkpoint_exists(self.last):
            log(f"resume: no {self.last} yet; starting fresh")
            return False
        saved = checkpoint_io.load_checkpoint(self.last, self.stage, expect=expect)
        net.load_state_dict(saved.state_dict())
        meta: dict[str, Any] = getattr(saved, "meta", {})
        check_resume_meta(self.last, meta)
        try:
            load_optimizer_state(
                opt,
                checkpoint_io.load_extra_tensors(self.last, "optim."),
                meta["optimizer"],
            )
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise checkpoint_io.CheckpointError(
                f"{self.last}: its optimizer state does not fit this run ({e!r:.200}); "
                "start without --resume"
            ) from None
        self.history = meta.get("history", [])
        self.best = meta.get("best")
        self.start_epoch = int(meta["epoch"])
        self.step = int(meta["step"])
        log(
            f"resume: {self.last} after epoch {self.start_epoch} (best {self.key} {self.best})"
        )
        return True

    def meta(self, epoch: int, scores: dict[str, Any]) -> dict[str, Any]:
        """The sidecar entries of this run after `epoch` epochs."""
        return {
            "args": self.args_json(),
            "epoch": epoch,
            "step": self.step,
            "metrics": scores,
            "best": self.best,
            "history": self.history,
        }

    def save(
        self,
        net: torch.nn.Module,
        opt: torch.optim.Optimizer,
        epoch: int,
        scores: dict[str, Any],
    ) -> bool:
        """Write OUT-last (and OUT when this epoch is the best); True if it was."""
        v = scores[self.key]
        better = self.best is None or (v > self.best if self.higher else v < self.best)
        if better:
            self.best = v
            checkpoint_io.save_checkpoint(net, self.out, self.meta(epoch, scores))
        self.save_last(net, opt, epoch, scores)
        return better

    def save_last(
        self,
        net: torch.nn.Module,
        opt: torch.optim.Optimizer,
        epoch: int,
        scores: dict[str, Any],
    ) -> None:
        """Write OUT-last: the weights with the optimizer state, to --resume from."""
        tensors, js = optimizer_state(opt)
        meta = {**self.meta(epoch, scores), "optimizer": js}
        checkpoint_io.save_checkpoint(net, self.last, meta, extra=tensors)

    def curves(self, fields: list[str]) -> None:
        """OUT-curves.png: train/val loss and the given metrics per epoch."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.history:
            return
        ep = [h["epoch"] for h in self.history]
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        axes[0].plot(ep, [h["train_loss"] for h in self.history], "o-", label="train")
        axes[0].plot(ep, [h["val_loss"] for h in self.history], "o-", label="val")
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("loss")
        axes[0].legend()
        for f in fields:
            axes[1].plot(
                ep, [h.get(f, float("nan")) for h in self.history], "o-", label=f
            )
        axes[1].set_xlabel("epoch")
        axes[1].legend()
        axes[1].grid(alpha=0.3)
        fig.suptitle(f"{self.stage} model: {self.out}")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        atomic.atomic_write_bytes(
            self.out.with_name(self.out.name + "-curves.png"), buf.getvalue()
        )

    def sheet(self, image: Any) -> Path:
        path = self.out.with_name(self.out.name + "-val.png")
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        atomic.atomic_write_bytes(path, buf.getvalue())
        return path
