"""Pictures as tensors: image arrays (H, W, 3) / (B, H, W, 3) → (B, 3, H, W) float."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W, 3) / (B, H, W, 3) arrays or (B, 3, H, W) tensors → (B, 3, H, W) float."""
    if isinstance(images, torch.Tensor):
        return images.float()
    a = np.asarray(images, np.float32)
    a = a[None] if a.ndim == 3 else a
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()
