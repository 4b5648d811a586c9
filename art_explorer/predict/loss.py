"""The image loss every search stage minimises: 1 − mean NCC of the √grey picture
blurred at two scales, plus line F1 and the picture score's shape terms.

√ lifts the thin dim lines that dominate this scene, the fine scale rewards exact lines
(it is the evaluation's NCC), the coarse one gives the optimiser a slope towards the
right place when lines do not overlap yet. Both scales are 0 for a blank image, so
black never wins (see docs/evaluation.md: SSIM/L2 reward black).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics


class ImageLoss:
    """1 − mean over scales of NCC(√grey blurred by σ) against one target.

    target: (S, S, 3) in [0, 1]. sigmas: blur in px at 256² (scaled to the size of the
    images compared); default (2, 8) = the evaluation's NCC plus a coarse one.
    `__call__` takes (B, 3, R, R) tensors in [0, 1] at any R (the target is resized
    to R once and cached) and returns (B,) losses in [0, 2]; differentiable.
    """

    def __init__(
        self,
        target: np.ndarray,
        sigmas: Sequence[float] = (metrics.NCC_SIGMA, metrics.COARSE_SIGMA),
        f1_weight: float = 0.0,
        brightness_weight: float = 0.0,
        picture_weight: float = 0.0,
    ):
        self.target = to_tensor(target)
        self.sigmas = tuple(sigmas)
        self.f1_weight = f1_weight
        self.brightness_weight = brightness_weight
        self.picture_weight = picture_weight
        self._feats: dict[int, list[torch.Tensor]] = {}
        self._picture_feats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, R, R) → per scale (B, R·R) zero-mean unit-norm vectors."""
        res = images.shape[-1]
        return [
            metrics.ncc_features(images, metrics.scaled_sigma(s, res), metrics.SQRT_EPS)
            for s in self.sigmas
        ]

    def target_features(self, res: int) -> list[torch.Tensor]:
        if res not in self._feats:
            t = self.target
            if t.shape[-1] != res:
                t = F.interpolate(t, size=(res, res), mode="area")
            self._feats[res] = self.features(t)
        return self._feats[res]

    def ncc(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) → (B,) mean NCC over the scales, in [-1, 1]."""
        tf = self.target_features(images.shape[-1])
        sims = [
            (a * b).sum(dim=1) for a, b in zip(self.features(images), tf, strict=True)
        ]
        return torch.stack(sims).mean(dim=0)

    def line_f1(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) → (B,) metrics.line_f1_batch against the target: lit
        pixels matched within 2 px at 256² (scaled). Not
        differentiable (a step function); 0 when either image is blank."""
        res = images.shape[-1]
        t = self.target
        if t.shape[-1] != res:
            t = F.interpolate(t, size=(res, res), mode="area")
        r = max(1, round(metrics.LINE_RADIUS * res / metrics.REFERENCE_SIZE))
        return metrics.line_f1_batch(images.detach(), t, radius=r)

    def picture_features(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, R, R) → the picture score's shape terms (structure.py) as unit
        vectors: sharp (B, R·R), the linear grey blurred at σ 0.5 px at 256², zero
        mean; orient (B, 2·R·R), the doubled-angle gradient (gx + i·gy)² of √grey
        blurred at σ 2 px at 256², real and imaginary parts."""
        from art_explorer.scene import structure

        res = images.shape[-1]
        g = images.mean(dim=1, keepdim=True).clamp(0, 1)
        sharp = metrics.gaussian_blur_batch(
            g, metrics.scaled_sigma(structure.SHARP_SIGMA, res)
        ).flatten(1)
        sharp = sharp - sharp.mean(dim=1, keepdim=True)
        r = torch.sqrt(g + 1e-6)
        gx = (
            F.pad(r, (1, 1, 0, 0), mode="replicate").diff(dim=3)[..., 1:]
            + F.pad(r, (1, 1, 0, 0), mode="replicate").diff(dim=3)[..., :-1]
        ) / 2
        gy = (
            F.pad(r, (0, 0, 1, 1), mode="replicate").diff(dim=2)[..., 1:, :]
            + F.pad(r, (0, 0, 1, 1), mode="replicate").diff(dim=2)[..., :-1, :]
        ) / 2
        s = metrics.scaled_sigma(structure.ORIENT_SIGMA, res)
        blur = metrics.gaussian_blur_batch
        z = torch.cat([blur(gx * gx - gy * gy, s), blur(2 * gx * gy, s)], 1).flatten(1)
        return (
            sharp / (sharp.norm(dim=1, keepdim=True) + 1e-8),
            z / (z.norm(dim=1, keepdim=True) + 1e-8),
        )

    def picture_terms(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) → (B,) sharp NCC + orientation NCC (two of the picture
        score's three parts; line F1 is the third), each in [-1, 1]."""
        res = images.shape[-1]
        if res not in self._picture_feats:
            t = self.target
            if t.shape[-1] != res:
                t = F.interpolate(t, size=(res, res), mode="area")
            self._picture_feats[res] = self.picture_features(t)
        ts, to = self._picture_feats[res]
        s, o = self.picture_features(images)
        return (s * ts).sum(1) + (o * to).sum(1)

    def brightness_gap(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) → (B,) |log ratio| of the mean √grey to the target's, at most
        1; differentiable. NCC does not see overall gain, so without this a search can
        settle on a blown-out version of the right lines."""
        res = images.shape[-1]
        t = self.target
        if t.shape[-1] != res:
            t = F.interpolate(t, size=(res, res), mode="area")

        def level(x: torch.Tensor) -> torch.Tensor:
            return torch.sqrt(x.mean(1).clamp(0, 1) + 1e-6).mean((1, 2)) + 0.02

        return torch.log(level(images) / level(t)).abs().clamp(max=1.0)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n = len(self.sigmas)
        score = self.ncc(images) * n
        if self.f1_weight > 0:
            score = score + self.f1_weight * self.line_f1(images)
        if self.brightness_weight > 0:
            score = score - self.brightness_weight * self.brightness_gap(images)
        if self.picture_weight > 0:
            score = score + self.picture_weight * self.picture_terms(images)
        return 1.0 - score / (n + self.f1_weight + 2 * self.picture_weight)


PIPELINE_SIGMAS = (metrics.NCC_SIGMA, metrics.COARSE_SIGMA)
PIPELINE_F1_WEIGHT = 1.0
PIPELINE_BRIGHTNESS_WEIGHT = 0.0
# weight of each of the picture score's shape terms (sharp NCC, orientation NCC):
# NCC at σ 2 px alone rewards light in the right region, whatever its shape
PIPELINE_PICTURE_WEIGHT = 1.0


def pipeline_loss(target: np.ndarray) -> ImageLoss:
    """The loss the inverse pipeline minimises (see the module docstring)."""
    return ImageLoss(
        target,
        PIPELINE_SIGMAS,
        PIPELINE_F1_WEIGHT,
        PIPELINE_BRIGHTNESS_WEIGHT,
        PIPELINE_PICTURE_WEIGHT,
    )
