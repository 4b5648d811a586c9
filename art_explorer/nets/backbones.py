"""Image backbones for the inverse model by name (`create_backbone`): DINOv2 with its
pretrained weights, this project's SceneCNN, any timm model trained from scratch."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

DINOV2 = "vit_small_patch14_dinov2.lvd142m"
DINOV2_REPO = "timm/vit_small_patch14_dinov2.lvd142m"
DEFAULT_FREE_BACKBONE = "resnet10t"


class BackboneError(RuntimeError):
    """A backbone's weights are missing or do not fit; the message says how to fix it."""


def dinov2_weights_file(weights: str | None = None) -> str | None:
    """The DINOv2-S/14 weights file to use: `weights` if given (must exist), else the
    Hugging Face hub cache's copy of timm/vit_small_patch14_dinov2.lvd142m, else None."""
    if weights:
        if not Path(weights).is_file():
            raise BackboneError(f"backbone weights file {weights} does not exist")
        return str(weights)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cache = os.environ.get("HF_HUB_CACHE") or (
        os.path.join(os.environ["HF_HOME"], "hub")
        if os.environ.get("HF_HOME")
        else None
    )
    for fname in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(DINOV2_REPO, fname, cache_dir=cache)
        if isinstance(hit, str):
            return hit
    return None


SCENE_CNN = "scene-cnn"  # this project's small CNN (SceneCNN), no weights to fetch


class SceneCNN(nn.Module):
    """A small residual CNN for 64-128² pictures of this scene (thin lit outlines on
    black), about 1.3M params and 50M multiply-adds at 64², so it trains on a CPU core
    from renders made on the fly. (B, 3, R, R) normalised → (B, 2·C) features: the
    average and the max over positions of the last stage (a thin bright line is a
    strong local response that average pooling would dilute)."""

    def __init__(self, widths: tuple[int, ...] = (24, 32, 64, 128, 256)) -> None:
        super().__init__()

        def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.stem = conv(3, widths[0], 2)  # R/2
        layers: list[nn.Module] = [conv(widths[0], widths[1])]
        for cin, cout in itertools.pairwise(widths[1:]):
            layers.append(
                nn.Sequential(conv(cin, cout, 2), _Residual(conv(cout, cout)))
            )
        self.stages = nn.Sequential(*layers)  # R/16 at the end
        self.num_features = 2 * widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(x))  # (B, C, R/16, R/16)
        return torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def create_backbone(
    name: str, weights: str | None = None, pretrained: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """A timm image backbone by name → (module giving pooled (B, D) features, info).

    Names:
      - "dinov2" or "vit_small_patch14_dinov2.lvd142m": DINOv2-S/14, 384-dim CLS
        features, input 224²; its weights come from `weights` (a .safetensors or
        .pth file) or the Hugging Face hub cache (timm/vit_small_patch14_dinov2.lvd142m,
        e.g. `huggingface-cli download timm/vit_small_patch14_dinov2.lvd142m`).
        Missing weights raise BackboneError naming the file and how to get it.
      - "resnet10t" (the weight-free default; 4.9M params, 512-dim features): trained
        from scratch, input = the training size.
      - "scene-cnn": SceneCNN, this project's small CNN (1.3M params, 512-dim
        features, no normalisation: √image goes in as it is), trained from scratch.
      - any other timm model name: built without weights (trained from scratch).
    pretrained=False builds the architecture only (checkpoint loading).
    info: {"name", "features", "input_size", "weights" (a file, or "none"), "mean",
    "std"} — images are normalised with mean/std before the backbone.
    """
    import timm

    full = DINOV2 if name in ("dinov2", DINOV2) else name
    if full == SCENE_CNN:
        if weights:
            raise BackboneError(f"{SCENE_CNN} has no pretrained backbone weights")
        net = SceneCNN()
        info = dict(name=SCENE_CNN, features=net.num_features, input_size=0)
        info.update(weights="none", mean=[0.0] * 3, std=[1.0] * 3)
        return net, info
    if full == DINOV2:
        kwargs: dict[str, Any] = dict(num_classes=0, img_size=224)
        source = "none"
        if pretrained:
            file = dinov2_weights_file(weights)
            if file is None:
                raise BackboneError(
                    f"DINOv2 weights not found: no {DINOV2_REPO} in the Hugging Face "
                    "cache and no --backbone-weights file. Get them with "
                    f"`huggingface-cli download {DINOV2_REPO}` on a machine with "
                    "internet (copy ~/.cache/huggingface over), or pass "
                    "--backbone-weights path/to/model.safetensors"
                )
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=file))
            source = file
        m = timm.create_model(DINOV2, **kwargs)
        info: dict[str, Any] = dict(
            name=DINOV2, features=m.num_features, input_size=224, weights=source
        )
    else:
        if weights:
            raise BackboneError(
                f"backbone {full} is trained from scratch here; --backbone-weights "
                "applies to dinov2 only"
            )
        try:
            m = timm.create_model(full, pretrained=False, num_classes=0)
        except RuntimeError as e:
            raise BackboneError(f"unknown backbone {full!r}: {e}") from None
        info = dict(name=full, features=m.num_features, input_size=0, weights="none")
    cfg = getattr(m, "pretrained_cfg", {}) or {}
    info["mean"] = list(cfg.get("mean", (0.485, 0.456, 0.406)))
    info["std"] = list(cfg.get("std", (0.229, 0.224, 0.225)))
    return m, info
