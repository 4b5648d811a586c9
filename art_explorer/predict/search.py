"""The search machinery of predict.py: image loss, search spaces, the render budget,
CMA-ES, retrieval from the training data, gradient descent through the forward model
and the inverse pipeline that chains them (docs/pipeline.md, "Predict and explore").

The loss every stage minimises is `ImageLoss`: 1 − mean NCC of the √grey image,
blurred at two scales (σ = 1 px and 4 px at 128², scaled with size). √ lifts the thin
dim lines that dominate this scene, the fine scale rewards exact lines (it is the
evaluation's NCC), the coarse one gives the optimiser a slope towards the right place
when lines do not overlap yet. Both scales are 0 for a blank image, so black never
wins (see docs/evaluation.md: SSIM/L2 reward black).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer import utils
from art_explorer.data import dataset
from art_explorer.scene import encoding, rendering, sampling, schema
from art_explorer.scoring import metrics

Log = Callable[[str], None]


# ----------------------------------------------------------------------------------
# Loss


def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W, 3) / (B, H, W, 3) arrays or (B, 3, H, W) tensors → (B, 3, H, W) float."""
    if isinstance(images, torch.Tensor):
        return images.float()
    a = np.asarray(images, np.float32)
    a = a[None] if a.ndim == 3 else a
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


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
        g = images.mean(dim=1, keepdim=True).clamp(0, 1)
        g = torch.sqrt(g + 1e-6) - 1e-3
        res = images.shape[-1]
        out = []
        for s in self.sigmas:
            b = metrics.gaussian_blur_batch(g, metrics.scaled_sigma(s, res)).flatten(1)
            b = b - b.mean(dim=1, keepdim=True)
            out.append(b / (b.norm(dim=1, keepdim=True) + 1e-8))
        return out

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


# ----------------------------------------------------------------------------------
# Search spaces: the continuous values of one discrete configuration, in [0, 1]

COLOR_KEYS = ("color",)
DITHER_CONT = ("ditherColors", "ditherStrength", "ditherScale", "ditherBias")
NOISE_CONT = ("noiseDensity", "noiseOpacity", "noiseSize")


@dataclass
class SearchSpace:
    """The continuous search space of one configuration (the discrete choices of
    `base`: categoricals, booleans, layer count, which layer overrides are set, layer
    geometries). A point x is a vector in [0, 1]^d (periodic angles wrap) of the
    encoding.encode_params normalised values; the values not searched stay as in base.

    dims="active": what the picture depends on: no colours (the loss is on grey;
    colour is fitted separately), noise/dither values only when enabled, layer
    overrides only when set. dims="all": every continuous value of the config
    (the plain CMA-ES baseline of evaluation.md).
    """

    base: dict[str, Any]
    cont_idx: list[int]
    layer_idx: list[tuple[int, int]]
    periodic: np.ndarray
    names: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, params: dict[str, Any], dims: str = "active") -> SearchSpace:
        base = schema.validate_params(params)
        cont_idx: list[int] = []
        periodic: list[bool] = []
        names: list[str] = []
        for i, (k, _c) in enumerate(schema.CONT_COMPONENTS):
            if dims == "active" and (
                k in COLOR_KEYS
                or (k in NOISE_CONT and not base["noiseEnabled"])
                or (k in DITHER_CONT and not base["ditherEnabled"])
            ):
                continue
            cont_idx.append(i)
            periodic.append(schema.PARAM[k].periodic)
            names.append(schema.CONT_NAMES[i])
        layer_idx: list[tuple[int, int]] = []
        for li, layer in enumerate(base["layers"]):
            for j, (k, c) in enumerate(schema.LAYER_CONT_COMPONENTS):
                if dims == "active" and (
                    k in COLOR_KEYS
                    or (k not in schema.LAYER_REQUIRED and k not in layer)
                ):
                    continue
                layer_idx.append((li, j))
                periodic.append(schema.LAYER_PARAM[k].periodic)
                kind = schema.LAYER_PARAM[k].kind
                sub = {"vec2": ".xy", "color": ".rgb"}.get(kind, "")
                names.append(f"layers[{li}].{k}{sub[:1] + sub[1 + c] if sub else ''}")
        return cls(base, cont_idx, layer_idx, np.array(periodic, bool), names)

    @property
    def dim(self) -> int:
        return len(self.cont_idx) + len(self.layer_idx)

    def bounds(self) -> list[list[float | None]]:
        """pycma bounds: [0, 1] except periodic dims (unbounded, decoded mod 1)."""
        lo = [None if p else 0.0 for p in self.periodic]
        hi = [None if p else 1.0 for p in self.periodic]
        return [lo, hi]

    def encode(self, params: dict[str, Any]) -> np.ndarray:
        """Params of this config → x in [0, 1]^d."""
        enc = encoding.encode_params(params)
        x = [enc.cont[i] for i in self.cont_idx]
        x += [enc.layer_cont[li, j] for li, j in self.layer_idx]
        return np.array(x, np.float64)

    def decode(self, x: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """x → flat params (base with the searched values replaced)."""
        x = np.asarray(x, np.float64)
        x = np.where(self.periodic, np.mod(x, 1.0), np.clip(x, 0.0, 1.0))
        enc = encoding.encode_params(self.base).as_dict()
        n = len(self.cont_idx)
        enc["cont"][self.cont_idx] = x[:n]
        for (li, j), v in zip(self.layer_idx, x[n:], strict=True):
            enc["layer_cont"][li, j] = v
        out = encoding.decode_params(enc)
        # decode_params rebuilds colours from the encoding; keep the base's exactly.
        out["color"] = self.base["color"]
        for layer, b in zip(out["layers"], self.base["layers"], strict=True):
            if "color" in b:
                layer["color"] = b["color"]
        return out


# ----------------------------------------------------------------------------------
# The render budget


@dataclass
class Candidate:
    loss: float
    params: dict[str, Any]
    image: np.ndarray | None = None  # (S, S, 3) in [0, 1], the search-size render


class Evaluator:
    """Renders params with the real renderer at `size` and scores them with `loss`,
    counting renders against `budget`. Identical params are cached (free). Keeps the
    best so far and `trace[k]` = best loss after k + 1 renders.

    A batch is rendered concurrently (`workers` requests in flight); calls past the
    budget return inf for what was not rendered.
    """

    def __init__(
        self,
        client: Any,  # rendering.RendererClient or anything with its render(params, size)
        loss: ImageLoss,
        size: int = 128,
        budget: int = 500,
        workers: int = 4,
    ) -> None:
        self.client, self.loss, self.size = client, loss, size
        self.budget, self.workers = budget, workers
        self.renders = 0
        self.best: Candidate | None = None
        self.trace: list[float] = []
        self.history: list[tuple[int, Candidate]] = []  # (renders, new best)
        self.seconds: list[float] = []  # seconds since creation at each render
        self._t0 = time.time()
        self._cache: dict[str, float] = {}
        self.last_images: dict[str, np.ndarray] = {}  # canonical JSON → render
        # every render by canonical JSON (float16), when keep_images is set
        self.keep_images = False
        self.images: dict[str, np.ndarray] = {}

    @property
    def left(self) -> int:
        return max(0, self.budget - self.renders)

    def close(self) -> None:
        """Nothing is held between calls (each batch renders on its own threads)."""

    def __call__(self, params_list: Sequence[dict[str, Any]]) -> list[float]:
        keys = [schema.canonical_json(p) for p in params_list]
        todo: list[int] = []
        seen: set[str] = set()
        for i, k in enumerate(keys):
            if k not in self._cache and k not in seen and len(todo) < self.left:
                todo.append(i)
                seen.add(k)
        images = rendering.render_many(
            self.client.render, [params_list[i] for i in todo], self.size, self.workers
        )
        self.last_images = {keys[i]: img for i, img in zip(todo, images, strict=True)}
        if self.keep_images:
            for k, img in self.last_images.items():
                self.images[k] = img.astype(np.float16)
        if todo:
            with torch.no_grad():
                losses = self.loss(to_tensor(np.stack(images))).tolist()
            for i, img, lo in zip(todo, images, losses, strict=True):
                self._cache[keys[i]] = lo
                self.renders += 1
                if self.best is None or lo < self.best.loss:
                    self.best = Candidate(lo, params_list[i], img)
                    self.history.append((self.renders, self.best))
                self.trace.append(self.best.loss)
                self.seconds.append(time.time() - self._t0)
        return [self._cache.get(k, math.inf) for k in keys]

    def render_only(self, params_list: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        """Renders that count against the budget but are not candidates (no loss, no
        best, no cache): probes such as `chain_footprints`. Fewer come back when the
        budget runs out."""
        todo = list(params_list)[: self.left]
        images = rendering.render_many(
            self.client.render, todo, self.size, self.workers
        )
        self.renders += len(images)
        return images

    def best_at(self, renders: int) -> Candidate | None:
        """The best candidate after the first `renders` renders (None before any)."""
        found = None
        for n, cand in self.history:
            if n > renders:
                break
            found = cand
        return found


# ----------------------------------------------------------------------------------
# Optimisers


def cma_search(
    space: SearchSpace,
    evaluate: Evaluator,
    x0: np.ndarray,
    sigma0: float,
    budget: int,
    seed: int = 0,
    popsize: int | None = None,
) -> Candidate:
    """pycma CMA-ES in `space` from x0 for at most `budget` renders; each generation
    is rendered concurrently. Returns the best candidate it saw."""
    import cma

    opts: dict[str, Any] = {
        "bounds": space.bounds(),
        "seed": seed + 1,
        "verbose": -9,
        "tolfun": 1e-5,
    }
    if popsize:
        opts["popsize"] = popsize
    best = Candidate(math.inf, space.decode(x0))
    if space.dim == 0:
        best.loss = evaluate([best.params])[0]
        return best
    x0 = np.clip(x0, 0.0, 1.0) if space.dim else x0
    es = cma.CMAEvolutionStrategy(list(x0), sigma0, opts)
    used = 0
    while used < budget and evaluate.left > 0 and not es.stop():
        xs = es.ask()
        n = min(len(xs), budget - used, evaluate.left)
        params = [space.decode(x) for x in xs[:n]]
        losses = evaluate(params)
        used += n
        for p, lo in zip(params, losses, strict=True):
            if lo < best.loss:
                best = Candidate(lo, p)
        if n < len(xs):
            break
        es.tell(xs, losses)
    return best


def random_search(
    evaluate: Evaluator, budget: int, rng: random.Random, batch: int = 8
) -> Candidate:
    """Fresh sampling.sample_params draws, the best kept (the blind baseline)."""
    best = Candidate(math.inf, sampling.sample_params(rng))
    while budget > 0 and evaluate.left > 0:
        ps = [sampling.sample_params(rng) for _ in range(min(batch, budget))]
        for p, lo in zip(ps, evaluate(ps), strict=True):
            if lo < best.loss:
                best = Candidate(lo, p)
        budget -= len(ps)
    return best


# ----------------------------------------------------------------------------------
# Retrieval: nearest neighbours among the rendered training data (no new renders)


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
                    sc = float(json.loads(par.read_text()).get("scale", 0.85))
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
        return schema.validate_params(json.loads(self.params_paths[i].read_text()))

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


# ----------------------------------------------------------------------------------
# Discrete moves: the single-change neighbours of a configuration


def discrete_neighbours(
    params: dict[str, Any], keep_structure: bool = False
) -> list[dict[str, Any]]:
    """Every params that differs from `params` in one discrete choice: another option
    of a categorical, a flipped boolean, one layer fewer. Choices that cannot change
    the picture (dither type/matrix/grayscale with dither off) are skipped; with
    keep_structure, so are the structure's (structure.STRUCTURE_KEYS, layer count)."""
    from art_explorer.scene import structure

    p = schema.validate_params(params)
    out: list[dict[str, Any]] = []
    dither_only = ("ditherType", "ditherMatrix", "ditherGrayscale")
    for k in (*schema.CAT_KEYS, *schema.BOOL_KEYS):
        if k in dither_only and not p["ditherEnabled"]:
            continue
        if keep_structure and k in structure.STRUCTURE_KEYS:
            continue
        opts = (
            schema.PARAM[k].options if schema.PARAM[k].kind == "cat" else (True, False)
        )
        for o in opts:
            if o != p[k]:
                out.append({**p, k: o})
    for i in range(len(p["layers"]) if not keep_structure else 0):
        out.append({**p, "layers": p["layers"][:i] + p["layers"][i + 1 :]})
    return out


# ----------------------------------------------------------------------------------
# Evolution with sparse mutations: the picture depends on a few values so sharply
# (rotationFactor, steps, angles: a 0.01 change of the normalised value already costs
# 0.1-0.3 NCC) that moving every value at once, as CMA-ES does, mostly destroys
# what is right. A mutation here changes one to three things: a value by a step of
# random scale (0.003-0.3), a discrete choice, or a layer added.


def mutate(
    params: dict[str, Any], rng: random.Random, keep_structure: bool = False
) -> dict[str, Any]:
    """A copy of params with 1-3 sparse changes (see above); with keep_structure,
    no change of the structure (discrete_neighbours)."""
    cur = params
    n = 1 + (rng.random() < 0.4) + (rng.random() < 0.15)
    for _ in range(n):
        r = rng.random()
        if r < 0.2:
            moves = discrete_neighbours(cur, keep_structure)
            cur = rng.choice(moves) if moves else cur
        elif r < 0.25 and len(cur["layers"]) < schema.MAX_LAYERS and not keep_structure:
            cur = {**cur, "layers": [*cur["layers"], sampling.sample_layer(rng)]}
        else:
            sp = SearchSpace.of(cur)
            if sp.dim == 0:
                continue
            x = sp.encode(cur)
            d = rng.randrange(sp.dim)
            x[d] += rng.gauss(0.0, 10 ** rng.uniform(-2.5, -0.5))
            cur = sp.decode(x)
    return cur


def evolve(
    pool: Sequence[Candidate],
    evaluate: Evaluator,
    budget: int,
    rng: random.Random,
    elite: int = 6,
    batch: int = 12,
    p_cross: float = 0.2,
    keep_structure: bool = False,
) -> Candidate:
    """(μ + λ) evolution from the evaluated candidates in `pool`: each generation,
    `batch` children (sparse mutations of rank-weighted elite parents, or uniform
    crossovers of two) rendered concurrently; the `elite` best survive."""
    seen: dict[str, Candidate] = {}
    for c in pool:
        if math.isfinite(c.loss):
            seen.setdefault(schema.canonical_json(c.params), c)
    ranked = sorted(seen.values(), key=lambda c: c.loss)[:elite]
    if not ranked:
        return Candidate(math.inf, {})
    r0 = evaluate.renders
    stale = 0
    while evaluate.renders - r0 < budget and evaluate.left > 0 and stale < 20:
        w = [1.0 / (i + 1) for i in range(len(ranked))]
        kids = []
        for _ in range(min(batch, budget - (evaluate.renders - r0))):
            if len(ranked) > 1 and rng.random() < p_cross and not keep_structure:
                a, b = rng.sample(ranked, 2)
                kid = sampling.breed(
                    [a.params, b.params], rng, p_two=1.0, p_copy=1.0, jitter=(1, 1)
                )
            else:
                parent = rng.choices(ranked, weights=w)[0].params
                kid = mutate(parent, rng, keep_structure)
            kids.append(kid)
        before = evaluate.renders
        losses = evaluate(kids)
        stale = stale + 1 if evaluate.renders == before else 0
        for kid, lo in zip(kids, losses, strict=True):
            key = schema.canonical_json(kid)
            if math.isfinite(lo) and key not in seen:
                seen[key] = Candidate(lo, kid)
                ranked.append(seen[key])
        ranked = sorted(ranked, key=lambda c: c.loss)[:elite]
    return ranked[0]


# ----------------------------------------------------------------------------------
# The learned models (model.py): starting points and gradient descent

ENC_KEYS = ("cont", "cat", "bools", "n_layers", "layer_cont", "layer_opt", "layer_geom")


def inverse_input_size(inverse: Any) -> int:
    """The side in px the inverse model was trained at: its backbone's input size,
    else the training size in its checkpoint sidecar, else 64."""
    size = getattr(getattr(inverse, "cfg", None), "input_size", 0)
    if size:
        return int(size)
    meta = getattr(inverse, "meta", None) or {}
    return int((meta.get("args") or {}).get("size") or 64)


def predict_one(inverse: Any, target: np.ndarray) -> dict[str, Any]:
    """The inverse model's predict_encoded for one target (batch of 1), resized to
    its input size, with the geometry's probabilities (and its argmax) averaged
    over the picture and its mirror images (left-right, up-down, both): a mirrored
    scene has the same geometry (the scene draws mirrors by a negative layer
    scale), and on the 300 held-out refs-like draws the average is right more often
    (top-1 69.0% → 72.3%, top-3 91.0% → 92.0%: `python pretrain_inverse.py
    --evaluate models/inverse-pretrained`). The other heads are the picture's own
    (an origin is not mirror-free; for the others the average gained nothing)."""
    res = inverse_input_size(inverse)
    img = F.interpolate(to_tensor(target), size=(res, res), mode="area")
    img = img.to(device_of(inverse))
    views = torch.cat([img, img.flip(3), img.flip(2), img.flip((2, 3))])
    with torch.no_grad():
        enc = inverse.predict_encoded(views)
    one: dict[str, Any] = {
        k: (v[:1] if isinstance(v, torch.Tensor) else [p[:1] for p in v])
        for k, v in enc.items()
    }
    j = schema.CAT_KEYS.index("geometry")
    geo = enc["cat_probs"][j].mean(0, keepdim=True)
    one["cat_probs"][j] = geo
    one["cat"] = one["cat"].clone()
    one["cat"][0, j] = geo[0].argmax()
    return one


def inverse_candidates(
    inverse: Any, target: np.ndarray, n_alt: int = 3
) -> list[dict[str, Any]]:
    """The inverse model's guess, then up to n_alt alternatives in the discrete
    choices it is least sure of (the next likely layer counts, the runner-up option
    of the least confident categoricals), most likely first."""
    enc = predict_one(inverse, target)
    one = {k: enc[k][0].detach().cpu() for k in ENC_KEYS}
    alts: list[tuple[float, dict[str, Any]]] = []
    n_probs = enc["n_layers_probs"][0].detach().cpu()
    n0 = int(one["n_layers"])
    for n in torch.argsort(n_probs, descending=True).tolist():
        if n != n0:
            alts.append((float(n_probs[n]), {**one, "n_layers": torch.tensor(n)}))
    for j, probs in enumerate(enc["cat_probs"]):
        p = probs[0].detach().cpu()
        top2 = torch.topk(p, 2).indices.tolist()
        cat = one["cat"].clone()
        if int(cat[j]) != top2[0]:
            continue
        cat[j] = top2[1]
        alts.append((float(p[top2[1]]), {**one, "cat": cat}))
    alts.sort(key=lambda a: -a[0])
    out = [encoding.decode_params(one)]
    out += [encoding.decode_params(a) for _, a in alts[:n_alt]]
    return out


def structure_candidates(
    inverse: Any, target: np.ndarray, k: int = 8, per_head: int = 3
) -> list[tuple[float, dict[str, Any]]]:
    """The inverse model's k most likely structures (structure.STRUCTURE_KEYS and the
    layer count, the heads taken as independent), each with the model's continuous
    guess → [(probability, params)], most likely first. The k // 2 likeliest
    geometries each get their likeliest structure in (the geometry decides the
    picture most), the rest are the next likeliest overall."""
    from art_explorer.scene import structure

    enc = predict_one(inverse, target)
    one = {key: enc[key][0].detach().cpu() for key in ENC_KEYS}
    heads: list[tuple[str | None, torch.Tensor]] = [
        (key, enc["cat_probs"][schema.CAT_KEYS.index(key)][0].detach().cpu())
        for key in structure.STRUCTURE_KEYS
    ]
    n_probs = enc["n_layers_probs"][0].detach().cpu().clone()
    n_probs[0] = 0.0  # a scene always has a layer (0 layers means the default one)
    heads.append((None, n_probs / n_probs.sum().clamp(min=1e-8)))
    beam: list[tuple[float, dict[str | None, int]]] = [(0.0, {})]
    n_geo = max(1, k // 2)
    for key, probs in heads:
        width = max(per_head, n_geo) if key == "geometry" else per_head
        top = torch.topk(probs, min(width, probs.numel()))
        beam = sorted(
            (
                (lp + math.log(max(float(pv), 1e-12)), {**ch, key: int(i)})
                for lp, ch in beam
                for pv, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            ),
            key=lambda t: -t[0],
        )[: 8 * k]
    chosen: list[tuple[float, dict[str | None, int]]] = []
    for lp, ch in beam:  # the likeliest structure of each of the top geometries
        if len(chosen) < n_geo and all(
            ch["geometry"] != c["geometry"] for _, c in chosen
        ):
            chosen.append((lp, ch))
    chosen += [b for b in beam if b not in chosen][: k - len(chosen)]
    chosen.sort(key=lambda t: -t[0])
    out = []
    for lp, ch in chosen:
        cat = one["cat"].clone()
        for key, i in ch.items():
            if key is not None:
                cat[schema.CAT_KEYS.index(key)] = i
        e = {**one, "cat": cat, "n_layers": torch.tensor(ch[None])}
        out.append((math.exp(lp), encoding.decode_params(e)))
    return out


def gradient_descent(
    forward: Any,
    loss: ImageLoss,
    starts: Sequence[dict[str, Any]],
    steps: int = 300,
    lr: float = 0.02,
) -> tuple[list[dict[str, Any]], list[float]]:
    """Adam on the active continuous values (SearchSpace "active") of each start,
    through the forward model, all starts in one batch. Returns the params after
    `steps` steps and their forward-model losses."""
    from art_explorer.nets import model

    batch = model.batch_encode(list(starts), device=device_of(forward))
    cmask = torch.zeros_like(batch["cont"])
    lmask = torch.zeros_like(batch["layer_cont"])
    for b, p in enumerate(starts):
        sp = SearchSpace.of(p)
        cmask[b, sp.cont_idx] = 1.0
        for li, j in sp.layer_idx:
            lmask[b, li, j] = 1.0
    cont = batch["cont"].clone().requires_grad_(True)
    lcont = batch["layer_cont"].clone().requires_grad_(True)
    opt = torch.optim.Adam([cont, lcont], lr=lr)
    losses = torch.zeros(len(starts))
    for _ in range(steps):
        opt.zero_grad()
        out = forward({**batch, "cont": cont, "layer_cont": lcont})  # (B, 3, R, R)
        losses = loss(out.float().cpu())  # the loss's target lives on the CPU
        losses.sum().backward()
        with torch.no_grad():
            assert cont.grad is not None and lcont.grad is not None
            cont.grad *= cmask
            lcont.grad *= lmask
        opt.step()
        with torch.no_grad():
            cont.clamp_(0.0, 1.0)
            lcont.clamp_(0.0, 1.0)
    out_params = []
    for b, p in enumerate(starts):
        enc = {k: batch[k][b].detach().cpu() for k in ENC_KEYS}
        enc["cont"], enc["layer_cont"] = cont[b].detach().cpu(), lcont[b].detach().cpu()
        q = encoding.decode_params(enc)
        q["color"] = p["color"]
        for layer, pl in zip(q["layers"], p["layers"], strict=False):
            if "color" in pl:
                layer["color"] = pl["color"]
        out_params.append(q)
    return out_params, losses.detach().tolist()


# Pictures the twin refused as too big to draw (twin.TooBig) in this process's
# descents, the workers' included (bench/inverse.py reports it). The twin returns its
# count (twin.Descent.refused); predict's stages should carry it in their state.
twin_refused = 0


def twin_descent(
    loss: ImageLoss | None,
    start: dict[str, Any],
    seconds: float = 10.0,
    log: Log | None = None,
    target: np.ndarray | None = None,
    wide: bool = False,
    also: Sequence[dict[str, Any]] = (),
) -> tuple[dict[str, Any], float]:
    """Adam on every continuous value of `start` through the differentiable twin of
    the bundled scene (twin.py), coarse to fine (twin.NCC_SCHEDULE) on `target` (the
    picture at up to 256², so the last stage can draw there; default: loss's target,
    at the search size), within `seconds`; its discrete choices stay. `wide`: the
    wide descent instead (twin.WIDE_SCHEDULE, larger steps, for a start far from
    the truth; the colours stay). `also`: more starts with the same discrete
    choices, descended in the same batch. Returns the params with the lowest of
    the twin's losses (1 − NCC) and that loss."""
    from art_explorer.scene import twin

    global twin_refused
    struct = twin.structure_of(start)
    try:
        result = twin.descend(
            struct,
            twin.values_of([start, *also], struct),
            loss,
            seconds=seconds,
            steps=TWIN_STEPS,
            log=log,
            target=_target_of(loss, target),
            schedule=twin.WIDE_SCHEDULE if wide else None,
            ncc_lr=twin.WIDE_LR if wide else twin.NCC_LR,
            keep_colors=wide,
        )
    except twin.TooBig as e:  # the start itself is too big to draw: left as it is
        twin_refused += 1
        if log is not None:
            log(f"    twin: not run: {e}")
        return start, math.inf
    values, best = result
    twin_refused += result.refused
    j = int(torch.argmin(best))
    return twin.params_of(struct, values, j), float(best[j])


def twin_refine(
    loss: ImageLoss | None,
    start: dict[str, Any],
    wide_seconds: float,
    fine_seconds: float,
    log: Log | None = None,
    target: np.ndarray | None = None,
) -> dict[str, Any]:
    """The twin's wide descent (the chain to its place), then its fine one (the
    details) from both the start and the wide one's end in one batch, keeping the
    better (a wide descent can leave a start that was already in the right
    valley); each skipped at 0 s; see twin_descent."""
    p, others = start, []
    if wide_seconds > 0:
        p, _ = twin_descent(loss, p, wide_seconds, log, target, wide=True)
        others = [start] if p != start else []
    if fine_seconds > 0:
        p, _ = twin_descent(loss, p, fine_seconds, log, target, also=others)
    return p


def _target_of(loss: ImageLoss | None, target: np.ndarray | None) -> Any:
    if target is not None:
        return target
    if loss is None:
        raise ValueError("a twin descent needs a loss or a target picture")
    return loss.target


# ----------------------------------------------------------------------------------
# Twin descents side by side. A step of the twin is bound by the cost of its many
# small tensor operations (a 64² step of a one-chain draw: hundreds of them), not by
# arithmetic, so a second torch thread does not speed it up (bench/results/twin.md)
# and Python threads share one interpreter lock; a second process does: 8 wide
# descents of 3 s for one picture take 23.0 s one after another and 11.6 s on 2
# workers, ending at the same NCC (bench/results/twin-workers.md). So descents of
# different starts run in worker processes, one per core, while the search waits.

_pool: Any = None  # (workers, concurrent.futures.ProcessPoolExecutor)


def twin_workers(requested: int = 0) -> int:
    """Processes for side-by-side twin descents: `requested`, or with 0 one per core
    (os.cpu_count(), up to 4)."""
    return requested if requested > 0 else max(1, min(4, os.cpu_count() or 1))


def _worker_start() -> None:
    torch.set_num_threads(1)
    from art_explorer.scene import twin

    twin.render_params(schema.default_params(), 32)


def _refine_job(
    start: dict[str, Any], wide_s: float, fine_s: float, target: np.ndarray
) -> tuple[dict[str, Any], int]:
    before = twin_refused
    found = twin_refine(None, start, wide_s, fine_s, None, target)
    return found, twin_refused - before


def _worker_pool(workers: int, log: Log | None = None) -> Any:
    """The worker processes (started once per process, in the background: each
    imports torch and draws one small picture, about 3 s), or None when they cannot
    be started (the descents then run here, one after another)."""
    global _pool
    if _pool is not None and _pool[0] == workers:
        return _pool[1]
    import concurrent.futures
    import multiprocessing

    if _pool is not None:
        _pool[1].shutdown(wait=False, cancel_futures=True)
        _pool = None
    try:
        ex = concurrent.futures.ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start,
        )
    except (OSError, ValueError) as e:
        if log is not None:
            log(f"    twin: descents run one after another ({e})")
        return None
    import atexit

    atexit.unregister(close_twin_workers)  # once, however many pools came before
    atexit.register(close_twin_workers)
    _pool = (workers, ex)
    return ex


def close_twin_workers() -> None:
    """Stops the worker processes (at exit, before the interpreter tears down what
    the executor's clean-up needs)."""
    global _pool
    if _pool is not None:
        _pool[1].shutdown(wait=True, cancel_futures=True)
        _pool = None


def start_twin_workers(workers: int, log: Log | None = None) -> None:
    """Starts the worker processes now, so that they are ready by the first
    side-by-side descents (nothing with one worker)."""
    if workers > 1:
        pool = _worker_pool(workers, log)
        if pool is not None:
            for _ in range(workers):
                pool.submit(time.sleep, 0)


def refine_many(
    jobs: Sequence[tuple[dict[str, Any], float, float]],
    target: np.ndarray,
    workers: int,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """twin_refine(start, wide_s, fine_s) on `target` of each job, side by side on
    `workers` processes (in this process, one after another, with one worker or one
    job, or when the workers fail; the failure is logged). Each descent keeps its
    own seconds, so n jobs of s seconds take about ⌈n / workers⌉ · s."""
    global _pool, twin_refused
    pool = _worker_pool(workers, log) if workers > 1 and len(jobs) > 1 else None
    if pool is not None:
        import concurrent.futures.process

        try:
            futures = [pool.submit(_refine_job, *job, target) for job in jobs]
            done = [f.result() for f in futures]
        except concurrent.futures.process.BrokenProcessPool as e:
            if log is not None:
                log(f"    twin: worker processes failed ({e}); descents run here")
            pool.shutdown(wait=False, cancel_futures=True)
            _pool = None
        else:
            twin_refused += sum(n for _, n in done)
            return [p for p, _ in done]
    return [twin_refine(None, s, w, f, log, target) for s, w, f in jobs]


# The descent is bound by its clock and each stage's stall rule, not by steps: at
# the old 400 (100 in a last stage) a light draw ran out of steps at 4 s of its 10 s
# with its loss still falling (t20 of the 2026-11-29 bench, ending at 128²: 0.80 with
# 400 steps, 0.95 without the cap).
TWIN_STEPS = 1600


# ----------------------------------------------------------------------------------
# Colour: fitted from the target directly (the loss is on grey)


def target_chroma(target: np.ndarray) -> np.ndarray | None:
    """The hue of the target's lines: the mean colour of its lit, unsaturated pixels
    (√grey > metrics.LIT, no channel at 1), divided by its largest channel; None when
    the target has too few lit pixels to say."""
    lit = np.sqrt(target.mean(axis=-1)) > metrics.LIT
    unsat = lit & (target.max(axis=-1) < 0.95)
    m = unsat if unsat.sum() >= 16 else lit
    if m.sum() < 4:
        return None
    mean = target[m].mean(axis=0)
    return mean / max(float(mean.max()), 1e-6)


CHROMA_BRIGHTNESS = (0.15, 0.3, 0.45)  # gradient brightnesses a line mostly shows


def shown_chroma(color: np.ndarray) -> np.ndarray:
    """The hue a base chain of this colour (sRGB in [0, 1]) shows: its drawn colour
    (the colour², tone-mapped, sRGB-encoded, as renderer/scene.py draws it) averaged
    over CHROMA_BRIGHTNESS and divided by its largest channel."""
    from renderer.progressions import tone_map
    from renderer.scene import linear_to_srgb, srgb_to_linear

    lin = srgb_to_linear(np.clip(color, 0.0, 1.0)) ** 2
    shown = np.mean([linear_to_srgb(tone_map(lin * b)) for b in CHROMA_BRIGHTNESS], 0)
    return shown / max(float(shown.max()), 1e-6)


def color_for_chroma(chroma: np.ndarray, steps: int = 30) -> np.ndarray:
    """A colour (sRGB, largest channel 1) whose drawn hue (`shown_chroma`) is
    `chroma`: the drawing squares the colour and the tone mapping deepens saturated
    hues, so the target's hue itself would come out too deep. Damped multiplicative
    steps, keeping the colour that came nearest (a hue out of reach, e.g. a channel
    the tone mapping always lifts, ends as near as the steps get)."""
    want = np.clip(np.asarray(chroma, np.float64), 1e-3, 1.0)
    c = want.copy()
    best, best_err = c, math.inf
    for _ in range(steps):
        shown = shown_chroma(c)
        err = float(np.abs(shown - want).max())
        if err < best_err:
            best, best_err = c, err
        c = np.clip(c * (want / np.maximum(shown, 1e-3)) ** 0.3, 1e-3, None)
        c = c / c.max()
    return best


def fit_color(params: dict[str, Any], target: np.ndarray) -> dict[str, Any]:
    """Params with the element colour given the target's hue (`target_chroma`) at the
    colour's current brightness (its largest channel, which the search fitted); layer
    colour overrides are shifted by the same per-channel ratio."""
    chroma = target_chroma(target)
    if chroma is None:
        return params
    old = np.array(schema.color_to_rgb(params["color"]))
    new = color_for_chroma(chroma) * max(float(old.max()), 0.05)
    ratio = new / np.maximum(old, 1e-3)

    def shift(c: str) -> str:
        return schema.rgb_to_color((np.array(schema.color_to_rgb(c)) * ratio).tolist())

    out = {**params, "color": schema.rgb_to_color(new.tolist())}
    out["layers"] = [
        {**la, "color": shift(la["color"])} if "color" in la else la
        for la in params["layers"]
    ]
    return out


def scale_brightness(params: dict[str, Any], factor: float) -> dict[str, Any]:
    """Params with the element colour and every layer colour override multiplied by
    `factor` (channels clipped to [0, 1]): the lines' gain under additive blending."""

    def scale(c: str) -> str:
        rgb = np.clip(np.array(schema.color_to_rgb(c)) * factor, 0.0, 1.0)
        return schema.rgb_to_color(rgb.tolist())

    out = {**params, "color": scale(params["color"])}
    out["layers"] = [
        {**la, "color": scale(la["color"])} if "color" in la else la
        for la in params["layers"]
    ]
    return out


def mix_colors(a: dict[str, Any], b: dict[str, Any], t: float) -> dict[str, Any]:
    """Params `b` with its element colour, and each layer colour override both
    have, mixed (1 − t)·a's + t·b's (sRGB channels)."""

    def mix(x: str, y: str) -> str:
        ca, cb = np.array(schema.color_to_rgb(x)), np.array(schema.color_to_rgb(y))
        return schema.rgb_to_color((ca * (1 - t) + cb * t).tolist())

    out = {**b, "color": mix(a["color"], b["color"])}
    out["layers"] = [
        {**lb, "color": mix(la["color"], lb["color"])}
        if "color" in la and "color" in lb
        else lb
        for la, lb in zip(a["layers"], b["layers"], strict=False)
    ] + b["layers"][len(a["layers"]) :]
    return out


def chain_footprints(
    params: dict[str, Any], evaluate: Evaluator
) -> list[np.ndarray] | None:
    """How bright each chain (the base, then each layer) draws, (S, S) each, from
    1 + layers renders: everything in white with every other layer's own colour
    black (under additive blending a black chain adds nothing), post-passes off, the
    base alone subtracted from each layer's. None when the budget runs out."""
    plain = {**params, **dict.fromkeys(POST_PASSES, False), "color": "#FFFFFF"}
    layers = params["layers"]
    variants = [
        {
            **plain,
            "layers": [
                {**la, "color": "#FFFFFF" if j == k else "#000000"}
                for j, la in enumerate(layers)
            ],
        }
        for k in range(-1, len(layers))
    ]
    images = evaluate.render_only(variants)
    if len(images) < len(variants):
        return None
    grey = [np.asarray(img, np.float32).mean(-1) for img in images]
    return [grey[0]] + [np.clip(g - grey[0], 0.0, None) for g in grey[1:]]


LAYER_HUE_GAP = 0.2  # chains whose parts of the target differ in hue by more than
# this (largest channel of the chroma) get their own colours
LAYER_OWN_SHARE = 0.6  # a pixel belongs to a chain drawing this share of its light
LAYER_HUE_GAIN = 0.05  # the share of the hue error the layers' hues must take off


def color_error(img: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference of the colour pictures blurred at σ 2 px (each
    channel): what a wrong hue costs, which the grey loss does not see."""
    a = torch.from_numpy(np.asarray(img, np.float64)).permute(2, 0, 1)
    b = torch.from_numpy(np.asarray(target, np.float64)).permute(2, 0, 1)
    return float(metrics.gaussian_blur_batch(a - b, 2.0).abs().mean())


def hue_error(img: np.ndarray, target: np.ndarray) -> float:
    """How far the hue of `img`'s lines is from the target's where both are lit:
    the mean absolute difference of the colour divided by its largest channel,
    over the pixels lit (√grey > metrics.LIT) in both pictures blurred at σ 2 px;
    color_error when fewer than 16 pixels are lit in both. Unlike color_error it
    does not see the shapes: lines in the wrong places cost a plain grey less than
    the target's own hue there (t02 of the 48-draw bench: its green 0.085 against
    grey's 0.071), so the colour steps judged by color_error kept grey."""
    a = torch.from_numpy(np.asarray(img, np.float64)).permute(2, 0, 1)
    b = torch.from_numpy(np.asarray(target, np.float64)).permute(2, 0, 1)
    a, b = metrics.gaussian_blur_batch(torch.stack([a, b]), 2.0)
    lit = (a.mean(0).sqrt() > metrics.LIT) & (b.mean(0).sqrt() > metrics.LIT)
    if int(lit.sum()) < 16:
        return color_error(img, target)
    ca = a / a.amax(0, keepdim=True).clamp_min(1e-6)
    cb = b / b.amax(0, keepdim=True).clamp_min(1e-6)
    return float((ca - cb).abs().mean(0)[lit].mean())


def fit_layer_colors(
    params: dict[str, Any], target: np.ndarray, evaluate: Evaluator
) -> dict[str, Any] | None:
    """Params whose layers take the hues of the target where they draw, when the
    target shows more than one hue: each chain's footprint (`chain_footprints`)
    claims the pixels where it draws most of the light; the base colour follows the
    base chain's part (fit_color's solve), each layer's own colour is the one that,
    times the base colour, draws its part's hue at the chain's present brightness.
    None when the target is one hue, the chains' parts are too small to say, or the
    budget runs out."""
    from renderer.scene import linear_to_srgb, srgb_to_linear

    if not params["layers"] or evaluate.left < len(params["layers"]) + 2:
        return None
    feet = chain_footprints(params, evaluate)
    if feet is None:
        return None
    light = np.stack(feet)
    share = light / np.maximum(light.sum(0), 1e-6)
    lit = np.sqrt(np.asarray(target, np.float32).mean(-1)) > metrics.LIT
    chromas: list[np.ndarray | None] = []
    for k in range(len(feet)):
        m = lit & (share[k] >= LAYER_OWN_SHARE) & (light[k] > 0.02)
        chromas.append(target_chroma(target * m[..., None]) if m.sum() >= 16 else None)
    known = [c for c in chromas if c is not None]
    if (
        len(known) < 2
        or max(float(np.abs(a - b).max()) for a in known for b in known)
        <= LAYER_HUE_GAP
    ):
        return None
    base_old = np.array(schema.color_to_rgb(params["color"]))
    base = base_old
    if chromas[0] is not None:
        base = color_for_chroma(chromas[0]) * max(float(base_old.max()), 0.05)
    b_lin = np.maximum(srgb_to_linear(base), 1e-4)
    old_lin = srgb_to_linear(base_old)
    layers = []
    for la, chroma in zip(params["layers"], chromas[1:], strict=True):
        if chroma is None:
            layers.append(la)
            continue
        own_old = srgb_to_linear(
            np.array(schema.color_to_rgb(la.get("color", params["color"])))
        )
        level = float((old_lin * own_old).max())  # the chain's linear brightness now
        want = srgb_to_linear(color_for_chroma(chroma)) ** 2
        want = want * level / max(float(want.max()), 1e-6)
        own = np.clip(want / b_lin, 0.0, 1.0)
        layers.append(
            {**la, "color": schema.rgb_to_color(linear_to_srgb(own).tolist())}
        )
    return {
        **params,
        "color": schema.rgb_to_color(np.clip(base, 0, 1).tolist()),
        "layers": layers,
    }


def better_in_color(
    best: Candidate,
    cands: list[dict[str, Any]],
    target: np.ndarray,
    evaluate: Evaluator,
    gain: float = 0.0,
) -> Candidate:
    """Of `cands` (a render each; colour changes of `best`, same shapes), those whose
    lines show the target's hue better (hue_error at least `gain`, a share, below
    best's) at a loss at most COLOR_SLACK above best's; of them, the one whose
    colour picture comes nearest the target's (color_error, which also sees the
    brightness; chosen by the hue error alone, the 48-draw bench's colour error rose
    0.051 → 0.061, ref1's orange came back a dim brown and ref2's white blown out,
    2026-12-05); else `best`."""
    key = schema.canonical_json(best.params)
    old = best.image if best.image is not None else evaluate.images.get(key)
    if old is None:
        old = next(iter(evaluate.render_only([best.params])), None)
    if old is None or evaluate.left < len(cands):
        return best
    losses = evaluate(cands)
    bar = (1 - gain) * hue_error(old, target)
    found, err = best, math.inf
    for p, lo in zip(cands, losses, strict=True):
        img = evaluate.last_images.get(schema.canonical_json(p))
        if img is None or lo > best.loss + COLOR_SLACK or hue_error(img, target) >= bar:
            continue
        e = color_error(img, target)
        if e < err:
            found, err = Candidate(lo, p, img), e
    return found


BRIGHTNESS_FACTORS = (0.3, 0.55, 1.8)
COLOR_GAINS = (1.0, 1.4, 2.0)  # gains tried with the fitted colour (a render each)
HALF_GAINS = (1.0, 1.4)  # gains tried with it at half strength (color_stages)
# grey loss a colour change may cost (the shapes stay; their grey dims as the hue
# saturates, and the brightness fit follows): 12 results at 500 renders lost
# 0.003-0.015 to the fitted hue; a green target (t21 of the 24-draw bench of
# 2026-12-05) 0.042, with its colour error halved (0.167 → 0.071), and came back grey
# at the old 0.03
COLOR_SLACK = 0.06


# a dimmer version must still light this share of the pixels the target lights: a
# blown-out blob of wrong shapes over a few dim lines (t37 of the 48-draw bench)
# scored best on loss + gap at 0.3×, which drew it black
BRIGHTNESS_LIT_FLOOR = 0.25


def fit_brightness(
    best: Candidate, evaluate: Evaluator, weight: float = 0.5
) -> Candidate:
    """NCC does not see the overall gain, so a search can end on a blown-out (or too
    dim) version of the right lines. Render the best with its colours scaled by
    BRIGHTNESS_FACTORS and keep the one with the lowest loss + weight × the
    brightness gap to the target (ImageLoss.brightness_gap), each on the loss's
    scale. Costs len(BRIGHTNESS_FACTORS) renders; the best's own render is needed
    (best.image), else the best is returned as it is."""
    if best.image is None:
        return best
    loss = evaluate.loss
    norm = len(loss.sigmas) + loss.f1_weight

    def gap(img: np.ndarray) -> float:
        return float(loss.brightness_gap(to_tensor(img[None]))[0])

    def lit(x: torch.Tensor) -> float:
        return float(metrics.lit_coverage(x)[0])

    floor = BRIGHTNESS_LIT_FLOOR * lit(loss.target)
    score = best.loss + weight * gap(best.image) / norm
    cands = [scale_brightness(best.params, f) for f in BRIGHTNESS_FACTORS]
    losses = evaluate(cands)
    for p, lo in zip(cands, losses, strict=True):
        img = evaluate.last_images.get(schema.canonical_json(p))
        if img is None or not math.isfinite(lo) or lit(to_tensor(img[None])) < floor:
            continue
        s = lo + weight * gap(img) / norm
        if s < score:
            score, best = s, Candidate(lo, p, img)
    return best


# ----------------------------------------------------------------------------------
# The pipeline


@dataclass
class Stage:
    """One pipeline stage as logged: its best loss, renders used, seconds."""

    name: str
    loss: float
    renders: int
    seconds: float
    params: dict[str, Any] | None = None


@dataclass
class PipelineOptions:
    """Knobs of `invert` (defaults measured in bench/inverse.py)."""

    n_retrieve: int = 0  # nearest training images rendered as starts (0: 8% of
    # the budget, 8-40)
    n_register: int = 0  # nearest training images aligned first (0: 2 × n_retrieve)
    register: bool = True  # fit Scene rotation/scale/position on pixels
    n_random: int = 8  # random starts when there is neither model nor data
    n_screen: int = 3  # inverse-model configurations given a short CMA-ES run each
    screen_share: float = 0.2  # share of the budget for those runs
    moves: bool = True  # try every single discrete change of the best (≈30 renders)
    move_rounds: int = 2  # repeat while a round finds something better
    structures: int = 8  # the inverse model's top structures fitted (0: its guess
    # and alternatives screened as before)
    structure_share: float = 0.5  # share of the budget for fitting them
    structure_prior: float = 0.0  # weight of the model's log-probability of a
    # structure beside its fit's picture score when choosing one (0: the score alone;
    # on 16 held-out draws at 500 renders no weight from 0.02 to 1000 chose better)
    gd_steps: int = 300
    gd_lr: float = 0.02
    twin_seconds: float = (
        10.0  # the twin's fine descent (when the renderer is the bundled one)
    )
    twin_wide_seconds: float = 8.0  # the twin's wide descent before it
    structure_wide_seconds: float = 3.0  # a wide twin descent of each structure's
    # fit before the choice (0: none; side by side on twin_workers)
    finalists: int = 4  # with the twin: the structures scoring best after those
    # fits get a longer wide + fine descent (finalist_seconds, 50/50) each, and the
    # choice is made again among them (0 or 1: none)
    finalist_seconds: float = 3.0
    alternates: bool = True  # with the twin on two or more workers: the runner-up
    # finalist gets the twin's main descent (twin_wide_seconds + twin_seconds) beside
    # the chosen one, on another worker, and goes on in its place when it then draws
    # the target better by the picture score
    twin_workers: int = 0  # processes the twin's descents of different starts run
    # on side by side (0: one per core, up to 4; 1: this process, one after another)
    finalist_other_geometry: bool = False  # when the finalists share one
    # geometry, the last place goes to the best fit of another (a short fit of the
    # true geometry often scores below several of a wrong one's progressions). Off:
    # on the 48-draw bench (commit 987524f, with the mirror-averaged geometry) it
    # flipped no more geometries than the spread of runs (75% → 77%) while the
    # "same picture" share fell 77% → 69% (structure 48% both); in a screen of the 8
    # draws whose true geometry was fitted but not chosen it won 1 (t17)
    final_twin_seconds: float = 12.0  # the twin's wide + fine descents (60/40) again
    # after the polish (0: none)
    max_seconds: float = 58.0  # the search's wall time: the twin's main and last
    # descents are cut to fit when the stages before them ran long, e.g. on a slower
    # or busy machine (0: no limit). The 60 s per target on 2 cores, less
    # what the colour stages after them take
    sigma_screen: float = 0.15
    sigma_polish: float = 0.1
    polish: str = "evolve"  # "evolve" (sparse mutations) or "cma"
    color_fit: bool = True
    color_half: bool = True  # also the fitted hue at half strength (color_stages)
    layer_color_fit: bool = True  # layers in their own hues when the target shows
    # several (fit_layer_colors: 1 + layers + 1 renders)
    brightness_fit: bool = True  # match the target's overall gain (a few renders)


@dataclass
class InverseResult:
    best: Candidate
    stages: list[Stage]
    guess: dict[str, Any] | None = None  # the start the search grew from
    after_gd: dict[str, Any] | None = None
    # the structures fitted in the search over structures: (model probability,
    # picture score of the fit, loss, params), in the model's order
    structures: list[tuple[float, float, float, dict[str, Any]]] = field(
        default_factory=list
    )
    chosen: int | None = None  # the index in `structures` the choice made
    runner_up: int | None = None  # the one descended beside it (opts.alternates)
    took_over: bool = False  # whether the runner-up then went on in its place


AFTER_TWIN_SECONDS = 1.0  # the stages after the twin's last descent (post-passes,
# colours, brightness: about 20 renders) within PipelineOptions.max_seconds
MIN_TWIN_SECONDS = 0.5  # a twin descent cut shorter than this is not run

POST_PASSES = ("ditherEnabled", "noiseEnabled", "crtEnabled")
POST_PASS_SLACK = 0.01  # loss a plainer picture may cost (as the colour step's)


def without_post_passes(best: Candidate, evaluate: Evaluator) -> Candidate:
    """`best` with dither, noise and CRT switched off when that costs at most
    POST_PASS_SLACK of loss (one render). The blurred grey loss hardly sees their
    dots, so the search alone keeps whatever the inverse guess switched on, and
    curated pictures rarely have them."""
    if not any(best.params.get(k) for k in POST_PASSES) or evaluate.left < 1:
        return best
    plain = {**best.params, **dict.fromkeys(POST_PASSES, False)}
    lo = evaluate([plain])[0]
    if lo > best.loss + POST_PASS_SLACK:
        return best
    return Candidate(lo, plain, evaluate.last_images.get(schema.canonical_json(plain)))


def pick_finalists(
    order: Sequence[int], geometries: Sequence[str], n: int, other: bool = True
) -> list[int]:
    """The first n of `order` (best first); with `other`, when those n share one
    geometry, the last place goes to the first of `order` with another geometry."""
    top = list(order[:n])
    if other and len(top) > 1 and len({geometries[j] for j in top}) == 1:
        alt = next((j for j in order if geometries[j] != geometries[top[0]]), None)
        if alt is not None:
            top[-1] = alt
    return top


def color_renders(opts: PipelineOptions) -> int:
    """Renders the colour step (7) of color_stages takes: one per candidate."""
    return len(COLOR_GAINS) + (len(HALF_GAINS) if opts.color_half else 0)


def color_stages(
    best: Candidate,
    target: np.ndarray,
    evaluate: Evaluator,
    opts: PipelineOptions,
    done: Callable[[str, Candidate], None] | None = None,
) -> Candidate:
    """The pipeline's last stages on the fitted shapes of `best`, each logged by
    `done`: (7) colour: the target's hue (fit_color) at COLOR_GAINS (a saturated
    hue lights fewer channels, so its grey is dimmer than the white's the search
    matched) and, with opts.color_half, at half strength (mixed half and half with
    the colour now) at HALF_GAINS (a paler hue than the fit's, or one whose full
    saturation cannot reach the lines' brightness within COLOR_SLACK); kept by
    better_in_color; (7b) each layer in its own hue when the target shows several
    (kept when its hue error falls LAYER_HUE_GAIN); (8) brightness (fit_brightness).
    """
    log = done or (lambda name, cand: None)
    if opts.color_fit and evaluate.left >= color_renders(opts):
        p_col = fit_color(best.params, target)
        if p_col != best.params:
            cands = [scale_brightness(p_col, g) for g in COLOR_GAINS]
            if opts.color_half:
                half = mix_colors(best.params, p_col, 0.5)
                cands += [scale_brightness(half, g) for g in HALF_GAINS]
            best = better_in_color(best, cands, target, evaluate)
        log("colour", best)
    if opts.layer_color_fit:
        p_lay = fit_layer_colors(best.params, target, evaluate)
        if p_lay is not None:
            best = better_in_color(best, [p_lay], target, evaluate, LAYER_HUE_GAIN)
        log("layer hues", best)
    if opts.brightness_fit and evaluate.left >= len(BRIGHTNESS_FACTORS):
        top = evaluate.best  # the search's best render, with its picture
        key = schema.canonical_json(best.params)
        if best.image is None and top is not None:
            best = top if schema.canonical_json(top.params) == key else best
        best = fit_brightness(best, evaluate)
        log("brightness", best)
    return best


def invert(
    target: np.ndarray,
    evaluate: Evaluator,
    *,
    inverse: Any = None,
    forward: Any = None,
    bank: RetrievalBank | None = None,
    opts: PipelineOptions | None = None,
    seed: int = 0,
    log: Log = print,
    use_twin: bool = False,
    fine_target: np.ndarray | None = None,
) -> InverseResult:
    """Image → params within evaluate.budget real renders (see the module docstring).

    target: (S, S, 3) in [0, 1] at the search size; fine_target: the same picture
    at up to 256², for the twin's last stage (twin.NCC_SCHEDULE). Stages: starts
    (inverse model guess and alternatives, nearest training images, or random draws)
    → screening (short CMA-ES runs of the best configurations) → discrete moves →
    gradient descent (through the differentiable twin when `use_twin`, i.e. the
    renderer draws the bundled scene: a wide descent, then a fine one, both again
    after the polish; else through the forward model) → CMA-ES polish → colour fit
    → each layer's own hue (when the target shows several) → brightness fit. With
    the twin, each structure's fit also gets a short wide descent before the choice.
    A stage's result is kept only when its real render scores better (the brightness
    fit: better on the loss plus the brightness gap)."""
    opts = opts or PipelineOptions()
    rng = random.Random(seed)
    stages: list[Stage] = []
    budget = evaluate.budget
    began = time.time()

    def seconds_left() -> float:  # before opts.max_seconds, less the last stages'
        if opts.max_seconds <= 0:
            return math.inf
        return opts.max_seconds - (time.time() - began) - AFTER_TWIN_SECONDS

    best = Candidate(math.inf, sampling.sample_params(rng))
    t0, r0 = time.time(), evaluate.renders

    def done(name: str, cand: Candidate) -> None:
        nonlocal t0, r0
        stages.append(
            Stage(name, cand.loss, evaluate.renders - r0, time.time() - t0, cand.params)
        )
        log(
            f"  {name:<10} loss {cand.loss:.4f}  renders {evaluate.renders - r0:4d}"
            f"  {time.time() - t0:6.1f} s"
        )
        t0, r0 = time.time(), evaluate.renders

    # 1. starts
    starts: list[dict[str, Any]] = []
    by_structure = inverse is not None and opts.structures > 0
    workers = twin_workers(opts.twin_workers) if use_twin else 1
    twin_target = fine_target if fine_target is not None else target
    alternates = by_structure and opts.alternates and workers > 1
    runner_up: Candidate | None = None
    chosen: int | None = None
    runner_j: int | None = None
    took_over = False
    if by_structure and use_twin:
        start_twin_workers(workers, log)

    def picture(c: Candidate) -> float:  # the picture score of a rendered candidate
        from art_explorer.scene import structure

        img = evaluate.images.get(schema.canonical_json(c.params))
        if img is None:
            return -1.0
        return structure.picture_score(img.astype(np.float32), target)

    probs: list[float] = []
    if by_structure:
        cands = structure_candidates(inverse, target, opts.structures)
        probs = [pr for pr, _ in cands]
        starts += [p for _, p in cands]
        evaluate.keep_images = True
    elif inverse is not None:
        starts += inverse_candidates(inverse, target)
    n_inv = len(starts)
    n_retrieve = opts.n_retrieve or min(40, max(8, round(0.08 * budget)))
    n_register = opts.n_register or 2 * n_retrieve
    if bank is not None:
        if opts.register:
            near = bank.nearest(target, n_register)
            cands = [(bank.params(i), bank.image(i, 64)) for _, i, _, _ in near]
            init = [(a, k) for _, _, a, k in near]
            reg = registered_starts(cands, target, init=init)
            starts += [p for _, p in reg[:n_retrieve]]
        else:
            near = bank.nearest(target, n_retrieve, transforms=False)
            starts += [bank.params(i) for _, i, _, _ in near]
    if not starts:
        starts = [sampling.sample_params(rng) for _ in range(opts.n_random)]
    starts = starts[: max(1, budget // 3)]
    losses = evaluate(starts)
    pool = [Candidate(lo, p) for lo, p in zip(losses, starts, strict=True)]
    ranked = sorted((lo, i) for i, lo in enumerate(losses))
    best = Candidate(ranked[0][0], starts[ranked[0][1]])
    guess = starts[0] if inverse is not None else best.params
    done("start", best)

    # 2a. search over structures: each of the inverse model's top structures gets
    # a short CMA-ES fit (and, with the twin, a short wide descent); the one whose
    # fit draws the target's picture best by the picture score (structure.py) wins,
    # whatever the loss says (plus, with opts.structure_prior, that weight × the
    # model's log-probability of it)
    per = int(opts.structure_share * budget) // max(1, n_inv)
    fitted: list[tuple[float, float, float, dict[str, Any]]] = []
    if by_structure and per >= 8:
        cmas: list[Candidate] = []
        for i in range(min(n_inv, len(starts))):
            sp = SearchSpace.of(starts[i])
            c = cma_search(
                sp, evaluate, sp.encode(starts[i]), opts.sigma_screen, per, seed
            )
            cmas.append(c if c.loss <= losses[i] else Candidate(losses[i], starts[i]))
        if use_twin and opts.structure_wide_seconds > 0 and evaluate.left > 0:
            wide = [(c.params, opts.structure_wide_seconds, 0.0) for c in cmas]
            walked = refine_many(wide, twin_target, workers, log)
            for i, (p_w, lo) in enumerate(zip(walked, evaluate(walked), strict=True)):
                if lo < cmas[i].loss:
                    cmas[i] = Candidate(lo, p_w)

        fits = [(picture(c), c) for c in cmas]
        fitted = [(probs[i], sc, c.loss, c.params) for i, (sc, c) in enumerate(fits)]

        def rank(j: int) -> float:
            return fits[j][0] + opts.structure_prior * math.log(max(probs[j], 1e-12))

        # the closest few again, each descended longer: a short fit of the true
        # structure can score below a wrong one's (the chain not yet in its place)
        order = sorted(range(len(fits)), key=rank, reverse=True)
        geometries = [str(c.params.get("geometry")) for _, c in fits]
        top = pick_finalists(
            order, geometries, opts.finalists, opts.finalist_other_geometry
        )
        half = opts.finalist_seconds / 2
        if use_twin and len(top) > 1 and half > 0 and evaluate.left > 0:
            jobs = [(fits[j][1].params, half, half) for j in top]
            found = refine_many(jobs, twin_target, workers, log)
            for j, p_f, lo in zip(top, found, evaluate(found), strict=True):
                if lo < fits[j][1].loss:
                    c = Candidate(lo, p_f)
                    fits[j] = (picture(c), c)
                    fitted[j] = (probs[j], fits[j][0], lo, p_f)
        chosen = max(top or range(len(fits)), key=rank)
        best = fits[chosen][1]
        # the runner-up, descended beside the chosen one on another worker
        others = sorted((j for j in top if j != chosen), key=rank, reverse=True)
        if alternates and others:
            runner_j = others[0]
            runner_up = fits[runner_j][1]
        pool += [c for _, c in fits]
        done("structures", best)

    # 2b. screening of the inverse model's discrete choices: its guess and the
    # alternatives it was least sure of, a short CMA-ES run each
    inv_ranked = [(lo, i) for lo, i in ranked if i < n_inv]
    n = min(opts.n_screen, len(inv_ranked))
    per = int(opts.screen_share * budget) // max(1, n)
    if n > 1 and per >= 12 and not by_structure:
        for _lo, i in inv_ranked[:n]:
            sp = SearchSpace.of(starts[i])
            c = cma_search(
                sp, evaluate, sp.encode(starts[i]), opts.sigma_screen, per, seed
            )
            if c.loss < best.loss:
                best = c
        done("screen", best)

    # 3. discrete moves (of what is not structure, once the structure is searched)
    for _ in range(opts.move_rounds if opts.moves else 0):
        moves = discrete_neighbours(best.params, keep_structure=by_structure)
        if evaluate.left < 3 * len(moves):
            break
        before = best.loss
        for p, lo in zip(moves, evaluate(moves), strict=True):
            pool.append(Candidate(lo, p))
            if lo < best.loss:
                best = Candidate(lo, p)
        done("moves", best)
        if best.loss >= before:
            break

    # 4. gradient descent: through the twin (exact gradients of the bundled scene),
    # else through the forward model
    after_gd = None
    twin_s = opts.twin_wide_seconds + opts.twin_seconds
    # the main descent and the last one share what is left before max_seconds
    cut = min(1.0, seconds_left() / max(1e-9, twin_s + opts.final_twin_seconds))
    if cut < 1.0 and twin_s * cut < MIN_TWIN_SECONDS:
        cut = 0.0
    if use_twin and twin_s > 0 and cut < 1.0:
        log(f"  time: the twin's descents cut to {cut:.0%} (max_seconds)")
    if use_twin and twin_s * cut > 0 and evaluate.left > 0:
        wide_s, fine_s = opts.twin_wide_seconds * cut, opts.twin_seconds * cut
        jobs = [(best.params, wide_s, fine_s)]
        if runner_up is not None:
            jobs.append((runner_up.params, wide_s, fine_s))
        found = refine_many(jobs, twin_target, workers, log)
        after_gd = found[0]
        found_losses = evaluate(found)
        if found_losses[0] < best.loss:
            best = Candidate(found_losses[0], found[0])
        if runner_up is not None:
            alt = Candidate(found_losses[1], found[1])
            alt = alt if alt.loss < runner_up.loss else runner_up
            if picture(alt) > picture(best):
                log(
                    f"  the runner-up structure ({alt.params.get('geometry')}) "
                    "draws the target better after its descent: it goes on"
                )
                best = alt
                after_gd = found[1]
                took_over = True
        done("twin-gd", best)
    elif forward is not None and opts.gd_steps > 0 and evaluate.left > 0:
        (p_gd,), _ = gradient_descent(
            forward, evaluate.loss, [best.params], opts.gd_steps, opts.gd_lr
        )
        after_gd = p_gd
        lo = evaluate([p_gd])[0]
        if lo < best.loss:
            best = Candidate(lo, p_gd)
        done("gd", best)

    # 5. polish: evolution with sparse mutations, or CMA-ES
    reserve = (
        (color_renders(opts) + 1 if opts.color_fit else 0)
        + (len(best.params["layers"]) + 3 if opts.layer_color_fit else 0)
        + (len(BRIGHTNESS_FACTORS) if opts.brightness_fit else 0)
        + 1  # the post-pass check
        + (1 if use_twin and opts.final_twin_seconds > 0 else 0)
    )
    if opts.polish == "evolve" and evaluate.left > reserve + 4:
        pool.append(best)
        c = evolve(
            pool if not by_structure else [best],
            evaluate,
            evaluate.left - reserve,
            rng,
            keep_structure=by_structure,
        )
        if c.loss < best.loss:
            best = c
        done("evolve", best)
    elif evaluate.left > reserve + 4:
        sp = SearchSpace.of(best.params)
        c = cma_search(
            sp,
            evaluate,
            sp.encode(best.params),
            opts.sigma_polish,
            evaluate.left - reserve,
            seed + 1,
        )
        if c.loss < best.loss:
            best = c
        done("polish", best)

    # 5b. the twin's descents again from the polished fit (wide, then fine)
    final_s = min(opts.final_twin_seconds, seconds_left())
    if final_s < opts.final_twin_seconds and final_s < MIN_TWIN_SECONDS:
        final_s = 0.0
    if use_twin and final_s > 0 and evaluate.left > 0:
        p_t = twin_refine(
            evaluate.loss, best.params, final_s * 0.6, final_s * 0.4, log, fine_target
        )
        lo = evaluate([p_t])[0]
        if lo < best.loss:
            best = Candidate(lo, p_t)
        done("twin-final", best)

    # 6. post-passes off unless they pay for themselves
    best = without_post_passes(best, evaluate)

    # 7-8. colour, each layer's hue, brightness (color_stages)
    best = color_stages(best, target, evaluate, opts, done)
    return InverseResult(
        best, stages, guess, after_gd, fitted, chosen, runner_j, took_over
    )


def load_models(
    forward_path: str | None = None,
    inverse_path: str | None = None,
    device: str | torch.device | None = None,
) -> tuple[Any, Any, list[str]]:
    """(forward model | None, inverse model | None, lines saying what is in use).

    Paths default to model.py's (checkpoints/forward, checkpoints/inverse). A
    missing checkpoint or model.py means that stage is skipped; a checkpoint that
    does not match this code (checkpoint_io.CheckpointError) is reported and skipped. The
    models go to `device` (default: CUDA when there is one, else the CPU)."""
    notes: list[str] = []
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        from art_explorer.nets import checkpoint_io
    except ImportError as e:
        return None, None, [f"models: model.py cannot be imported ({e}); no models"]
    loaded: list[Any] = []
    if inverse_path is None and not any(
        Path(checkpoint_io.DEFAULT_INVERSE_PATH).with_suffix(s).exists()
        for s in (".json", ".safetensors")
    ):
        inverse_path = str(utils.ROOT / checkpoint_io.BUNDLED_INVERSE_PATH)
        notes.append(
            "inverse model: no round checkpoint; the pretrained one bundled in "
            f"{checkpoint_io.BUNDLED_INVERSE_PATH} (pretrain_inverse.py)"
        )
    for name, path, loader in (
        ("forward", forward_path, checkpoint_io.load_forward),
        ("inverse", inverse_path, checkpoint_io.load_inverse),
    ):
        where = path or f"checkpoints/{name}"
        try:
            m = loader(path)
        except checkpoint_io.CheckpointError as e:
            notes.append(
                f"{name} model: {where} does not match this code ({e}); not used"
            )
            m = None
        else:
            notes.append(
                f"{name} model: {where}"
                if m is not None
                else f"{name} model: none at {where}"
            )
        if m is not None and hasattr(m, "eval"):
            m.eval()
            m.to(dev)
        loaded.append(m)
    if any(m is not None for m in loaded):
        notes.append(f"models run on: {dev}")
    return loaded[0], loaded[1], notes


def device_of(net: Any) -> torch.device:
    """The device a model's parameters are on (the CPU for one without any)."""
    p = next(iter(net.parameters()), None) if hasattr(net, "parameters") else None
    return p.device if p is not None else torch.device("cpu")


# ----------------------------------------------------------------------------------
# Registration: the scene's outer transform (Scene.rotation / scale / position) is a
# similarity transform of the picture about the world origin, so the best one can be
# found on pixels, without rendering, and written back into the params.

VIEW_HALF = 2.5  # the visible world spans [-2.5, 2.5] (docs/scene.md)


def warp(
    images: torch.Tensor, a: torch.Tensor, k: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Images (B, C, R, R) as the renderer would draw them after the world map
    q = t + R(a)·k·p (a radians counter-clockwise, k > 0, t (B, 2) world units;
    +y up). a, k: (B,). Differentiable in a, k, t."""
    c, s = torch.cos(a), torch.sin(a)
    # output normalised coords (x right, y down) → input: D R(-a) D = R(a), / k
    m = (
        torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
        / k[:, None, None]
    )
    tw = torch.stack([t[:, 0], -t[:, 1]], -1) / VIEW_HALF  # world → normalised (y down)
    shift = -(m @ tw[:, :, None])
    theta = torch.cat([m, shift], dim=2)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )


MIN_SCENE_SCALE = 0.05  # registration never shrinks a scene below this


def apply_similarity(
    params: dict[str, Any], a: float, k: float, t: Sequence[float]
) -> dict[str, Any]:
    """Params whose picture is the old one mapped by q = t + R(a)·k·p (see `warp`).

    Scene.rotation turns by a and Scene.scale grows by k (clamped to its range);
    the shift t, which no scene parameter holds (Scene.position moves the base chain
    only, inside the scene's rotation and scale: docs/scene.md), is added to every
    chain's group translation as δ = R(−θ')·t/s' in scene units: Scene.position
    and each layer's position."""
    sp = schema.PARAM["scale"]
    scale = float(min(sp.clamp_hi, max(sp.clamp_lo, params["scale"] * k)))
    rotation = schema.wrap_angle(params["rotation"] + a)
    c, s = math.cos(-rotation), math.sin(-rotation)
    tx, ty = (float(v) for v in t)
    inv = 1.0 / max(scale, 1e-6)
    dx, dy = (c * tx - s * ty) * inv, (s * tx + c * ty) * inv

    def moved(p: dict[str, float]) -> dict[str, float]:
        return {"x": float(p["x"] + dx), "y": float(p["y"] + dy)}

    return {
        **params,
        "position": moved(params["position"]),
        "rotation": rotation,
        "scale": scale,
        "layers": [
            {**la, "position": moved(la["position"])} for la in params["layers"]
        ],
    }


def register(
    images: torch.Tensor,
    target: torch.Tensor,
    k_range: Sequence[tuple[float, float]],
    n_angles: int = 24,
    n_scales: int = 5,
    max_shift: float = 1.5,
    refine_steps: int = 30,
    init: Sequence[tuple[float, float]] | None = None,
    refine_top: int = 8,
) -> list[tuple[float, float, float, float, float]]:
    """Best similarity transform of each image onto the target, found on pixels.

    images: (B, 3, R, R), target: (1, 3, R, R) in [0, 1]; k_range: per image the
    allowed scale factors (Scene.scale must stay in range). Coarse search over
    n_angles × n_scales with the best shift from an FFT cross-correlation of the
    coarse-blurred √grey images (shift ≤ max_shift world units), then Adam on the
    two-scale NCC for the `refine_top` best of the best two per image. `init`: per image one (angle, scale)
    to start from instead of the coarse grid (from `RetrievalBank.nearest`). Returns per image (a, k, tx, ty, ncc);
    the identity (0, 1, 0, 0, ncc) when no transform does better."""
    loss = ImageLoss(target[0].permute(1, 2, 0).numpy())
    n_img, res = images.shape[0], images.shape[-1]
    sig = metrics.scaled_sigma(metrics.COARSE_SIGMA, res)
    tgt = metrics.gaussian_blur_batch(
        torch.sqrt(target.mean(1, keepdim=True) + 1e-6), sig
    )
    tgt = tgt - tgt.mean()
    pad = (2 * res, 2 * res)
    tf = torch.fft.rfft2(tgt, s=pad)
    px = 2 * VIEW_HALF / res  # world units per pixel
    lim = int(max_shift / px)
    angles = np.linspace(-math.pi, math.pi, n_angles, endpoint=False)
    grid: list[tuple[int, float, float]] = []  # (image, angle, scale)
    for b, (lo, hi) in enumerate(k_range):
        if init is not None:
            grid.append((b, init[b][0], min(hi, max(lo, init[b][1]))))
            continue
        ks = np.exp(np.linspace(math.log(lo), math.log(hi), n_scales))
        grid += [(b, float(a), float(k)) for a in angles for k in ks]
    idx = torch.tensor([g[0] for g in grid])
    with torch.no_grad():
        w = warp(
            images[idx],
            torch.tensor([g[1] for g in grid], dtype=torch.float32),
            torch.tensor([g[2] for g in grid], dtype=torch.float32),
            torch.zeros(len(grid), 2),
        )
        g = metrics.gaussian_blur_batch(torch.sqrt(w.mean(1, keepdim=True) + 1e-6), sig)
        g = g - g.mean(dim=(2, 3), keepdim=True)
        norm = g.flatten(1).norm(dim=1) * tgt.norm() + 1e-8
        cc = torch.fft.irfft2(tf * torch.conj(torch.fft.rfft2(g, s=pad)), s=pad)
        # cc[dy, dx] = Σ tgt[y + dy, x + dx] · g[y, x]: g moved by (dy, dx) px
        cc = torch.roll(cc, shifts=(lim, lim), dims=(2, 3))
        best = cc[:, 0, : 2 * lim + 1, : 2 * lim + 1].flatten(1).max(dim=1)
        score = best.values / norm
    f32 = torch.float32
    starts: list[tuple[int, float, float, float, float]] = []
    for b in range(n_img):
        rows = (idx == b).nonzero()[:, 0]
        for j in rows[torch.argsort(score[rows], descending=True)[:2]].tolist():
            dy, dx = divmod(int(best.indices[j]), 2 * lim + 1)
            starts.append(
                (b, grid[j][1], grid[j][2], (dx - lim) * px, -(dy - lim) * px)
            )
    sidx = torch.tensor([s[0] for s in starts])
    a = torch.tensor([s[1] for s in starts], dtype=f32)
    logk = torch.tensor([math.log(s[2]) for s in starts], dtype=f32)
    t = torch.tensor([s[3:] for s in starts], dtype=f32)
    rep = images[sidx]
    with torch.no_grad():
        ncc = loss.ncc(warp(rep, a, logk.exp(), t))
        ncc0 = loss.ncc(images).tolist()
    # refine the most promising ones (gradients through grid_sample are the cost)
    top = torch.argsort(ncc, descending=True)[:refine_top]
    ra, rk, rt = (v[top].clone().requires_grad_(True) for v in (a, logk, t))
    klo = torch.tensor([math.log(k_range[starts[j][0]][0]) for j in top.tolist()])
    khi = torch.tensor([math.log(k_range[starts[j][0]][1]) for j in top.tolist()])
    opt = torch.optim.Adam([ra, rk, rt], lr=0.01)
    for _ in range(refine_steps):
        opt.zero_grad()
        loss(warp(rep[top], ra, rk.exp(), rt)).sum().backward()
        opt.step()
        with torch.no_grad():
            rk.copy_(torch.maximum(torch.minimum(rk, khi), klo))
    with torch.no_grad():
        a[top], logk[top], t[top] = ra, rk, rt
        ncc[top] = loss.ncc(warp(rep[top], ra, rk.exp(), rt))
    ncc, a_, k_, t_ = ncc.tolist(), a.tolist(), logk.exp().tolist(), t.tolist()
    out = [(0.0, 1.0, 0.0, 0.0, n0) for n0 in ncc0]
    for j, s in enumerate(starts):
        if ncc[j] > out[s[0]][4]:
            out[s[0]] = (a_[j], k_[j], t_[j][0], t_[j][1], ncc[j])
    return out
