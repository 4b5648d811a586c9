"""Perceptual distances between pictures, chosen by name (`create_perceptual`):

- `lpips`: LPIPS-AlexNet (the `lpips` package) when torchvision's AlexNet weights
  are on the machine;
- `sqrt-ms-l1`: the weight-free default, L1 of √image at full size and 2×, 4×, 8×
  average-pooled;
- `auto`: lpips when its weights exist, else sqrt-ms-l1.

Inputs (B, 3, H, W) in [0, 1] → (B,) distances."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from art_explorer.scoring import metrics


class SqrtMultiScaleL1(nn.Module):
    """Weight-free perceptual distance for thin bright lines on black: mean |√a − √b|
    at full size and after 2×, 4× and 8× average pooling (coarser levels see
    near-misses as close). Inputs (B, 3, H, W) in [0, 1] → (B,) ≥ 0."""

    name = "sqrt-ms-l1"

    def __init__(self, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = metrics.sqrt_image(a), metrics.sqrt_image(b)
        total = a.new_zeros(a.shape[0])
        for lvl in range(self.levels):
            if lvl:
                if a.shape[-1] < 2:
                    break
                a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            total = total + (a - b).abs().mean((1, 2, 3))
        return total / self.levels


class LPIPSDistance(nn.Module):
    """LPIPS (AlexNet) via the `lpips` package; inputs (B, 3, H, W) in [0, 1] → (B,)."""

    name = "lpips"

    def __init__(self) -> None:
        super().__init__()
        import warnings

        import lpips

        with warnings.catch_warnings():  # lpips still passes torchvision's old flag
            warnings.simplefilter("ignore", UserWarning)
            self.net = lpips.LPIPS(net="alex", pretrained=True, verbose=False)
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[-1] < 32:  # AlexNet's strides need ≥ 32 px
            a = F.interpolate(a, size=(32, 32), mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=(32, 32), mode="bilinear", align_corners=False)
        return self.net(a, b, normalize=True).flatten()


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet_Weights.IMAGENET1K_V1


def alexnet_weights_file() -> Path:
    """Where torchvision keeps AlexNet's ImageNet weights ($TORCH_HOME/hub/checkpoints;
    the name is the basename of AlexNet_Weights.IMAGENET1K_V1.url)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def create_perceptual(name: str = "auto") -> nn.Module:
    """A perceptual distance by name: module(a, b) with a, b (B, 3, H, W) in [0, 1]
    → (B,) ≥ 0 (0 = identical). Frozen (no trainable weights).

    Names:
      - "lpips": LPIPS-AlexNet (the `lpips` package); needs torchvision's AlexNet
        ImageNet weights in the torch hub cache (alexnet_weights_file()), otherwise
        raises FileNotFoundError naming the file.
      - "sqrt-ms-l1": the weight-free default, SqrtMultiScaleL1.
      - "auto": "lpips" when its weights are on disk, else "sqrt-ms-l1".
    The module's `name` attribute says which one it is.
    """
    if name == "auto":
        name = "lpips" if alexnet_weights_file().is_file() else SqrtMultiScaleL1.name
    if name == "lpips":
        if not alexnet_weights_file().is_file():
            raise FileNotFoundError(
                f"LPIPS needs AlexNet weights at {alexnet_weights_file()} (torchvision's "
                "alexnet-owt-7be5be79.pth; set TORCH_HOME to where you have them)"
            )
        return LPIPSDistance()
    if name == SqrtMultiScaleL1.name:
        return SqrtMultiScaleL1()
    raise ValueError(
        f"unknown perceptual {name!r} (lpips, {SqrtMultiScaleL1.name}, auto)"
    )
