"""Settings of a round: typed dataclasses with their defaults, and the two profiles.

A profile is a `Profile` instance: `CPU` (the default on a machine without CUDA,
sized for a 2-core CPU; bench/results/models.md has the measurements) and `GPU` (the
pipeline's sizes). Scripts take their flags' defaults from the chosen profile
(`--profile`, else `default_profile_name()`), so `--help` shows the values a run
uses and every flag given on the command line wins over the profile.

No torch here: generate.py, iterate.py and the gallery read the profile without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class ForwardConfig:
    """The forward network's shape (model.ForwardModel), recorded in its checkpoint."""

    size: int = 64
    """output side R in px"""
    width: int = 8
    """decoder base width (channels at full size)"""
    hidden: int = 256
    """MLP width"""
    embed: int = 8
    """categorical embedding size"""
    n_freq: int = 4
    """Fourier frequencies per continuous value (0 = raw values only)"""
    attn_res: int = 12
    """self-attention at the largest decoder stage of at most attn_res² px (0 = none)"""
    composite: bool = True
    """per-chain decode + affine warp + additive sum (False: one decoder for the image)"""
    canvas: float = 2.5
    """the canonical chain canvas' extent relative to the view"""
    density: float = 0.5
    """the canvas' pixels per view pixel (side = size·canvas·density, a multiple of 8)"""
    pattern_ch: int = 4
    """learned fixed-pattern maps given to the post-net (dither / noise)"""
    layout_k: int = 48
    """instances per chain placed by docs/scene.md's progressions and splatted as a
    hint for the decoder (0 = none)"""
    layout_res: int = 48
    """the hint's side in px"""
    template: int = 32
    """side of the learned outline templates used by the splat"""
    hint_direct: bool = True
    """add the hint (at a learned per-chain gain) to the decoder's canvas"""

    @property
    def canvas_size(self) -> int:
        """The canonical canvas' side: size·canvas·density rounded to b·2^k, b in
        8..15, so that the decoder can reach it from a b×b grid."""
        target = max(8.0, self.size * self.canvas * self.density)
        k = max(1, math.floor(math.log2(target / 8)))
        return int(round(target / 2**k) * 2**k)


@dataclass(frozen=True)
class ForwardTraining:
    """Training of the forward model (train.py --stage forward)."""

    epochs: int = 3
    """passes over the coverage data"""
    lr: float = 3e-3
    """AdamW learning rate (short CPU runs need far more than the spec's 2e-4)"""
    model: ForwardConfig = field(default_factory=lambda: ForwardConfig(density=0.3))
    """the network's shape; its size is replaced by Profile.size (or --size)"""


@dataclass(frozen=True)
class InverseTraining:
    """Training of the inverse model (train.py --stage inverse)."""

    epochs: int = 2
    """passes over the coverage + quality data"""
    lr: float = 1e-3
    """AdamW learning rate of the heads (a pretrained backbone trains at 0.1×)"""
    backbone: str = "resnet10t"
    """dinov2 | resnet10t | any timm name (dinov2 without weights: resnet10t)"""
    freeze_epochs: int = 3
    """epochs a pretrained backbone stays frozen first (from scratch: none)"""
    perceptual_batch: int = 16
    """samples of each batch whose prediction goes through the forward model"""
    perceptual_weight: float = 1.0
    """weight of the perceptual loss through the frozen forward model (0 = off)"""
    sqrt_input: bool = True
    """feed the backbone √image, where thin lines are not negligible"""


@dataclass(frozen=True)
class Profile:
    """Everything a round's size depends on; CPU and GPU below are the instances."""

    name: str
    """the name --profile and PROFILE= take"""
    size: int = 64
    """data and training resolution in px"""
    n: int = 6000
    """coverage samples per round (many cheap samples beat epochs)"""
    nq: int = 1000
    """quality samples per round"""
    batch_size: int = 64
    """training batch size (global, across processes)"""
    forward: ForwardTraining = field(default_factory=ForwardTraining)
    inverse: InverseTraining = field(default_factory=InverseTraining)


CPU = Profile(name="cpu")
GPU = Profile(
    name="gpu",
    size=256,
    n=5000,
    nq=2000,
    batch_size=32,
    forward=ForwardTraining(
        epochs=20,
        lr=1e-3,
        model=ForwardConfig(  # ~11M params at 256²
            width=40, hidden=512, attn_res=32, density=0.6, layout_k=64, layout_res=192
        ),
    ),
    inverse=InverseTraining(
        epochs=10,
        lr=1e-4,
        backbone="vit_small_patch14_dinov2.lvd142m",
        freeze_epochs=3,
        perceptual_batch=8,  # at 256² the forward model is memory-hungry
    ),
)
PROFILES: dict[str, Profile] = {p.name: p for p in (CPU, GPU)}


def default_profile_name() -> str:
    """'gpu' when CUDA is available, else 'cpu'."""
    try:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def get_profile(name: str | None = None) -> Profile:
    """The named profile, or the device's default; ValueError for an unknown name."""
    name = name or default_profile_name()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (one of {', '.join(PROFILES)})")
    return PROFILES[name]
