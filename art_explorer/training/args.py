"""train.py's options: one typed dataclass whose defaults are a profile's values for a
stage (`TrainArgs.of_profile`), and the command line made from it (`parse_args`)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from art_explorer import cli, config
from art_explorer.nets import checkpoint_io

FORWARD_FLAGS = ("width", "hidden", "attn_res", "density", "layout_k", "layout_res")
"""The config.ForwardConfig fields that have a flag of their own."""


@dataclass
class TrainArgs:
    """Train the forward model (params → image) or the inverse model (image → params)."""

    stage: Literal["forward", "inverse"]
    """forward: params → image; inverse: image → params"""
    profile: str = "cpu"
    """settings profile (config.PROFILES): the defaults below; gpu with CUDA, else cpu"""
    data: list[str] = field(default_factory=lambda: ["data"])
    """one or more folders with images/ and params/, or shard folders (missing ones
    are skipped)"""
    size: int = 64
    """training resolution in px"""
    max_samples: int = 0
    """use at most this many pairs, 0 = all"""
    val_frac: float = 0.1
    """validation share"""
    seed: int = 0
    """split/shuffle/init seed"""
    epochs: int = 3
    """epochs"""
    batch_size: int = 16
    """global batch size"""
    lr: float = 3e-3
    """AdamW learning rate (spec: forward 2e-4, inverse 1e-4)"""
    resume: bool = False
    """continue from OUT-last (model, optimizer, epoch)"""
    init: str | None = None
    """inverse stage: start from this checkpoint's weights and config (e.g. the
    bundled models/inverse-pretrained) instead of a fresh backbone"""
    out: str = checkpoint_io.DEFAULT_FORWARD_PATH
    """checkpoint path without extension"""
    perceptual: str = "auto"
    """perceptual distance: auto | lpips | sqrt-ms-l1 (auto: lpips when its weights
    exist)"""
    width: int = 8
    """forward model: decoder width"""
    hidden: int = 256
    """forward model: MLP width"""
    attn_res: int = 12
    """forward model: self-attention at the decoder stage of at most this² px, 0 = none"""
    density: float = 0.3
    """forward model: chain canvas px per view px"""
    layout_k: int = 48
    """forward model: instances per chain in the layout hint, 0 = none"""
    layout_res: int = 48
    """forward model: the layout hint's side in px"""
    forward: str = checkpoint_io.DEFAULT_FORWARD_PATH
    """inverse: the frozen forward model for the perceptual loss (skipped when absent)"""
    backbone: str | None = None
    """inverse: dinov2 | resnet10t | scene-cnn | any timm name (None: the profile's;
    the profile's dinov2 without weights falls back to resnet10t, an explicit one is
    an error)"""
    backbone_weights: str | None = None
    """inverse: DINOv2 weights file (.safetensors/.pth) instead of the HF hub cache"""
    freeze_epochs: int | None = None
    """inverse: epochs with the backbone frozen before it trains at 0.1× the LR (None:
    the profile's for a pretrained backbone, 0 from scratch)"""
    perceptual_weight: float = 0.1
    """inverse: weight of the perceptual loss through the forward model, 0 = off"""
    perceptual_batch: int = 16
    """inverse: samples of each batch put through the forward model"""
    sqrt_input: bool = True
    """inverse: feed the backbone √image"""
    renderer_url: str | None = None
    """renderer for the inverse sheet (None: $RENDERER_URL or localhost:3000; the
    bundled one is started when nothing answers)"""
    renderer: bool = True
    """draw the inverse sheet with the renderer (--no-renderer: with the forward
    model)"""
    device: str | None = None
    """torch device (None: cuda when available, else cpu)"""
    threads: int = 0
    """CPU threads for torch, 0 = torch's default"""
    compile: bool = True
    """torch.compile the hot paths on CUDA (--no-compile: skip it)"""

    @classmethod
    def of_profile(
        cls, profile: config.Profile, stage: Literal["forward", "inverse"]
    ) -> TrainArgs:
        """The options with the profile's values for the stage as their defaults."""
        st: config.ForwardTraining | config.InverseTraining = getattr(profile, stage)
        fm, inv = profile.forward.model, profile.inverse
        out = (
            checkpoint_io.DEFAULT_FORWARD_PATH
            if stage == "forward"
            else checkpoint_io.DEFAULT_INVERSE_PATH
        )
        return cls(
            stage=stage,
            profile=profile.name,
            size=profile.size,
            epochs=st.epochs,
            batch_size=profile.batch_size,
            lr=st.lr,
            out=out,
            perceptual_weight=inv.perceptual_weight,
            perceptual_batch=inv.perceptual_batch,
            sqrt_input=inv.sqrt_input,
            **{name: getattr(fm, name) for name in FORWARD_FLAGS},
        )

    def problems(self) -> list[str]:
        """What is wrong with these options, one message each (none: they are fine)."""
        out = []
        for name in ("epochs", "batch_size", "size", "width", "hidden"):
            if getattr(self, name) < 1:
                out.append(f"--{name.replace('_', '-')} must be >= 1")
        if self.lr <= 0:
            out.append("--lr must be > 0")
        if not 0.0 < self.val_frac < 1.0:
            out.append("--val-frac must be in (0, 1)")
        for name in ("max_samples", "freeze_epochs", "perceptual_batch", "attn_res"):
            if (getattr(self, name) or 0) < 0:
                out.append(f"--{name.replace('_', '-')} must be >= 0")
        if not self.data:
            out.append("--data needs at least one folder")
        if self.perceptual_weight < 0:
            out.append("--perceptual-weight must be >= 0")
        if self.profile not in config.PROFILES:
            out.append(f"--profile must be one of {sorted(config.PROFILES)}")
        return out


def _profile_and_stage(
    argv: list[str] | None,
) -> tuple[config.Profile, Literal["forward", "inverse"]]:
    """--profile and --stage read ahead of the full parse, so that the flags' defaults
    (and --help) are the profile's values for that stage."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile", choices=sorted(config.PROFILES), default=None)
    pre.add_argument("--stage", default="forward")
    known, _ = pre.parse_known_args(argv)
    stage = "inverse" if known.stage == "inverse" else "forward"
    return config.get_profile(known.profile), stage


def parse_args(argv: list[str] | None = None, doc: str | None = None) -> TrainArgs:
    """TrainArgs from a command line (None: the process's): the flags left out take
    the profile's values (config.PROFILES) for the stage, which --help shows."""
    prof, stage = _profile_and_stage(argv)
    defaults = TrainArgs.of_profile(prof, stage)
    ap = cli.parser(TrainArgs, doc)
    ap.epilog = (
        f"Defaults shown: profile {prof.name}, stage {stage} (--profile and --stage "
        "change them)."
    )
    values: dict[str, Any] = {
        f.name: getattr(defaults, f.name)
        for f in dataclasses.fields(TrainArgs)
        if f.name != "stage"
    }
    ap.set_defaults(**values)
    for action in ap._actions:  # the profile's names, as choices
        if action.dest == "profile":
            action.choices = sorted(config.PROFILES)
    args = TrainArgs(**vars(ap.parse_args(argv)))
    for problem in args.problems():
        ap.error(problem)
    return args
