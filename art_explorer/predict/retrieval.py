"""Retrieval: the nearest rendered training images to a target, as starts (no renders)."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer.data import dataset
from art_explorer.predict.loss import ImageLoss
from art_explorer.predict.registration import (
    MIN_SCENE_SCALE,
    apply_similarity,
    register,
    warp,
)
from art_explorer.scene import schema
from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics


def load_image_file(path: str | Path, res: int) -> np.ndarray:
    """A rendered square PNG → (res, res, 3) float32 in [0, 1] (area resampling)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (res, res):
            im = im.resize((res, res), Image.Resampling.BOX)
        return np.asarray(im, np.float32) / 255.0


@dataclass
class RetrievalBank:
    """Rendered images with their params (data/images + data/params, any number of
    such folders) as NCC features at `res`² (the loss's two scales, concatenated), so
    that the nearest neighbours of a target cost a matrix product and no renders."""

    feats: torch.Tensor  # (N, D), each scale's part unit-norm / √scales
    params_paths: list[Path]
    image_paths: list[Path]
    scales: torch.Tensor  # (N,) Scene.scale of each
    res: int
    sigmas: tuple[float, ...]

    @classmethod
    def load(
        cls,
        dirs: Sequence[str | Path],
        res: int = 32,
        sigmas: Sequence[float] = (metrics.NCC_SIGMA, metrics.COARSE_SIGMA),
        limit: int | None = None,
    ) -> RetrievalBank | None:
        """Every complete pair under dirs (images/N.png + params/N.json); None when
        there is none."""
        pairs: list[tuple[Path, Path]] = []
        for d in dirs:
            pairs += dataset.Layout(Path(d)).pairs()
        if limit is not None:
            pairs = pairs[:limit]
        if not pairs:
            return None
        loss = ImageLoss(np.zeros((res, res, 3), np.float32), sigmas)
        kept: list[tuple[Path, Path]] = []
        scale_list: list[float] = []
        feats = []
        skipped: list[str] = []
        for i in range(0, len(pairs), 512):
            imgs = []
            for img, par in pairs[i : i + 512]:
                try:  # a broken pair is left out, not fatal: it is one of thousands
                    sc = float(dataset.load_params(par)["scale"])
                    imgs.append(load_image_file(img, res))
                except (OSError, ValueError, AttributeError) as e:
                    skipped.append(f"{img} ({e})")
                    continue
                kept.append((img, par))
                scale_list.append(sc)
            if imgs:
                feats.append(cls._features(loss, to_tensor(np.stack(imgs))))
        if skipped:
            print(
                f"retrieval: left out {len(skipped)} unreadable pair(s),"
                f" e.g. {skipped[0]}",
                file=sys.stderr,
            )
        if not kept:
            return None
        pairs = kept
        scales = torch.tensor(scale_list)
        return cls(
            torch.cat(feats),
            [p for _, p in pairs],
            [i for i, _ in pairs],
            scales,
            res,
            tuple(sigmas),
        )

    @staticmethod
    def _features(loss: ImageLoss, images: torch.Tensor) -> torch.Tensor:
        fs = loss.features(images)
        return torch.cat(fs, dim=1) / math.sqrt(len(fs))

    def __len__(self) -> int:
        return len(self.params_paths)

    def nearest(
        self, target: np.ndarray, k: int, transforms: bool = True
    ) -> list[tuple[float, int, float, float]]:
        """The k most similar training images as (ncc, index, angle, scale), best
        first. With `transforms`, each image is compared under every rotation (15°
        steps) and scale (0.8-1.25, within what its Scene.scale allows) of the scene
        and (angle, scale) is the best one; else (0, 1). Mean NCC over the scales."""
        t = F.interpolate(to_tensor(target), size=(self.res, self.res), mode="area")
        loss = ImageLoss(np.zeros((self.res, self.res, 3), np.float32), self.sigmas)
        if not transforms:
            sims = self.feats @ self._features(loss, t)[0]
            top = torch.topk(sims, min(k, len(self))).indices.tolist()
            return [(float(sims[i]), i, 0.0, 1.0) for i in top]
        angles = torch.arange(24, dtype=torch.float32) * (math.pi / 12)
        scales = torch.tensor([0.8, 0.9, 1.0, 1.12, 1.25])
        aa, kk = torch.meshgrid(angles, scales, indexing="ij")
        aa, kk = aa.flatten(), kk.flatten()
        # image warped by (a, k) ≈ target  ⇔  image ≈ target warped by (−a, 1/k)
        tw = warp(t.expand(len(aa), -1, -1, -1), -aa, 1 / kk, torch.zeros(len(aa), 2))
        sims = self.feats @ self._features(loss, tw).T  # (N, transforms)
        sp = schema.PARAM["scale"]
        new_scale = self.scales[:, None] * kk[None, :]
        ok = (new_scale >= sp.clamp_lo - 1e-6) & (new_scale <= sp.clamp_hi + 1e-6)
        ok[:, (aa == 0) & (kk == 1)] = True
        sims = torch.where(ok, sims, torch.full_like(sims, -2.0))
        best = sims.max(dim=1)
        top = torch.topk(best.values, min(k, len(self))).indices.tolist()
        out = []
        for i in top:
            j = int(best.indices[i])
            out.append((float(best.values[i]), i, float(aa[j]), float(kk[j])))
        return out

    def params(self, i: int) -> dict[str, Any]:
        return dataset.load_params(self.params_paths[i])

    def image(self, i: int, res: int) -> np.ndarray:
        """(res, res, 3) in [0, 1]."""
        return load_image_file(self.image_paths[i], res)


def registered_starts(
    cands: Sequence[tuple[dict[str, Any], np.ndarray]],
    target: np.ndarray,
    res: int = 64,
    init: Sequence[tuple[float, float]] | None = None,
) -> list[tuple[float, dict[str, Any]]]:
    """Each (params, its image) moved by the similarity transform (Scene rotation,
    scale, position) that best fits its image to the target, best first, as
    (ncc at res², params). No renders."""
    imgs = torch.cat(
        [F.interpolate(to_tensor(im), size=(res, res), mode="area") for _, im in cands]
    )
    tgt = F.interpolate(to_tensor(target), size=(res, res), mode="area")
    sp = schema.PARAM["scale"]
    lo = max(sp.clamp_lo, MIN_SCENE_SCALE)
    k_range = [
        (lo / max(p["scale"], lo), sp.clamp_hi / max(p["scale"], lo)) for p, _ in cands
    ]
    regs = register(imgs, tgt, k_range, init=init)
    out = [
        (r[4], apply_similarity(p, r[0], r[1], r[2:4]))
        for (p, _), r in zip(cands, regs, strict=True)
    ]
    return sorted(out, key=lambda t: -t[0])
