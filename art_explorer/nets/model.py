"""The networks: the forward model (params → image), the inverse model (image →
params) and its backbones (`create_backbone`). Perceptual distances are in
perceptual_distance.py, checkpoint files in checkpoint_io.py.

ForwardModel mirrors the scene's structure (docs/scene.md) so that the network only
has to learn what is hard: one *chain* (a progression of outlines) at a time, in its
own frame, with the placement of its first instances given.

    encoded params ─┬─ chain embeddings (base + one per layer, overrides mixed in
                    │   by the presence flags, Fourier features of the values)
                    ├─ layout: the first k instances of each chain placed by the
                    │   documented progressions (scale, rotation, opacity, offset,
                    │   origin) and splatted with outline templates → hint (1, h, h)
                    ├─ decoder: MLP → 8×8 → transposed convs up (FiLM, the hint
                    │   added at every stage), self-attention at ≤ attn_res² →
                    │   canonical chain intensity (1, S, S) + gain × hint
                    ├─ Scene · Group affine of each chain → differentiable warp
                    │   (grid_sample) into the view, × the chain's colour
                    └─ additive sum of the chains → soft clip at 1 → post-net
                        (dither: FiLM + learned maps; noise: a learned per-pixel
                        pick threshold and sign) → image (B, 3, R, R) in [0, 1]

Everything is differentiable w.r.t. the continuous values (`cont`, `layer_cont`), the
booleans and presence flags as floats, soft categoricals (`cat_probs`) and a soft
layer mask (`layer_mask`), which predict.py relies on. `composite=False` is the plain
MLP → decoder → 3-channel image of pipeline.md, kept for comparison;
bench/results/models.md has the measurements behind each piece.

InverseModel: a timm backbone (`create_backbone`) → pooled features → heads for every
part of the encoding.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from art_explorer.config import ForwardConfig
from art_explorer.scene import encoding, sampling, schema
from renderer.geometry import outline_points
from renderer.progressions import (
    alpha_progression,
    offset_progression,
    rotation_progression,
    scale_progression,
)

DINOV2 = "vit_small_patch14_dinov2.lvd142m"
DINOV2_REPO = "timm/vit_small_patch14_dinov2.lvd142m"
DEFAULT_FREE_BACKBONE = "resnet10t"
VIEW_HALF = 2.5  # the view spans world x, y in [-2.5, 2.5] (docs/scene.md)
MIN_LAYER_SCALE = 0.05  # |layer scale| below this is treated as this in the warp

ENCODED_KEYS = (
    "cont",
    "cat",
    "bools",
    "n_layers",
    "layer_cont",
    "layer_opt",
    "layer_geom",
)
NUM_GEOMETRIES = len(schema.GEOMETRIES)
# Chain-intrinsic continuous values (base units); the layer-overridable ones among them
# are mixed with the layer's value by its presence flag.
CHAIN_KEYS = (
    "repetitions",
    "alphaFactor",
    "scaleFactor",
    "rotationFactor",
    "stepFactor",
    "xStep",
    "yStep",
    "geoWidth",
    "gradientAngle",
    "startAngle",
    "gradientRange.0",
    "gradientRange.1",
)
CHAIN_CATS = (
    "scaleProgression",
    "rotationProgression",
    "alphaProgression",
    "positionProgression",
    "origin",
)
POST_CONT = (
    "noiseDensity",
    "noiseOpacity",
    "noiseSize",
    "ditherColors",
    "ditherStrength",
    "ditherScale",
    "ditherBias",
    "crtBleed",
    "crtBloom",
    "crtBrightness",
    "crtMaskStrength",
    "crtScale",
    "crtScanlines",
    "crtWarp",
)
POST_CATS = ("ditherType", "ditherMatrix", "crtMask")


def _cont_index(name: str) -> int:
    return schema.CONT_NAMES.index(name)


def _param(name: str) -> schema.Param:
    """The schema entry of a CONT_NAMES name ('gradientRange.0' → gradientRange)."""
    return schema.PARAM[name.split(".")[0]]


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] → linear (renderer/scene.py's, in torch)."""
    c = c.clamp(0.0, 1.0)
    return torch.where(
        c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).clamp(min=1e-12) ** 2.4
    )


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """Linear values → sRGB-encoded, clipped to [0, 1]."""
    c = c.clamp(0.0, 1.0)
    return torch.where(
        c <= 0.0031308, c * 12.92, 1.055 * c.clamp(min=1e-12) ** (1 / 2.4) - 0.055
    )


def _layer_index(key: str, comp: int = 0) -> int:
    return schema.LAYER_CONT_COMPONENTS.index((key, comp))


def _unit_affine(p_from: schema.Param, p_to: schema.Param) -> tuple[float, float]:
    """(a, b) with u_to = a·u_from + b, for [0, 1] encodings of the same quantity."""
    lo_f, hi_f, lo_t, hi_t = (
        p_from.clamp_lo,
        p_from.clamp_hi,
        p_to.clamp_lo,
        p_to.clamp_hi,
    )
    a = (hi_f - lo_f) / (hi_t - lo_t)
    return a, (lo_f - lo_t) / (hi_t - lo_t)


def _denorm(u: torch.Tensor, p: schema.Param) -> torch.Tensor:
    """[0, 1] encoding → the value in the parameter's own units (no clipping)."""
    return p.clamp_lo + u * (p.clamp_hi - p.clamp_lo)


# ----------------------------------------------------------------------------------
# Encoding a batch


def batch_encode(
    params_list: list[dict[str, Any]], device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """Flat params (any spelling) → the models' batch: a dict of stacked tensors.

    cont (B, NC) float in [0, 1], cat (B, NK) long, bools (B, NB) float 0/1,
    n_layers (B,) long in 0..5, layer_cont (B, 5, NLC) float in [0, 1],
    layer_opt (B, 5, NLO) float 0/1, layer_geom (B, 5) long (see encoding.Encoded).
    """
    encs = [encoding.encode_params(p).as_dict() for p in params_list]
    out: dict[str, torch.Tensor] = {}
    for k in ENCODED_KEYS:
        arr = np.stack([e[k] for e in encs]) if encs else np.zeros((0,))
        out[k] = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    return out


def fourier(x: torch.Tensor, n_freq: int) -> torch.Tensor:
    """(..., D) values in [0, 1] → (..., D·(1 + 2·n_freq)): x, sin and cos of
    π·2^k·x for k < n_freq (periodic angles get an exact period at k = 1)."""
    if n_freq <= 0:
        return x
    k = torch.pi * 2.0 ** torch.arange(n_freq, device=x.device, dtype=x.dtype)
    ang = x[..., None] * k  # (..., D, F)
    return torch.cat([x, ang.sin().flatten(-2), ang.cos().flatten(-2)], dim=-1)


# ----------------------------------------------------------------------------------
# Decoder pieces


class FiLM(nn.Module):
    """Per-channel scale and shift from a conditioning vector (zero-initialised)."""

    def __init__(self, cond: int, ch: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond, 2 * ch)
        _zero(self.proj)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(c)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift


def _zero(m: nn.Linear | nn.Conv2d) -> None:
    """Zero-initialise a layer (a residual branch that starts as the identity)."""
    nn.init.zeros_(m.weight)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class UpBlock(nn.Module):
    """(B, cin, s, s) → (B, cout, 2s, 2s): 2×2 stride-2 transposed conv, FiLM,
    residual 3×3 conv."""

    def __init__(self, cin: int, cout: int, cond: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.norm1 = nn.GroupNorm(_groups(cout), cout)
        self.film = FiLM(cond, cout)
        self.conv = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.film(self.norm1(self.up(x)), c))
        return h + self.conv(F.gelu(self.norm2(h)))


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a (B, C, s, s) map (residual)."""

    def __init__(self, ch: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads if ch % heads == 0 else 1
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        _zero(self.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (
            self.qkv(self.norm(x))
            .reshape(b, 3, self.heads, c // self.heads, h * w)
            .unbind(1)
        )
        # (B, heads, HW, C/heads)
        o = F.scaled_dot_product_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
        )
        return x + self.proj(o.transpose(-1, -2).reshape(b, c, h, w))


class Decoder(nn.Module):
    """Conditioning vector (B, D) [+ hint maps (B, hint_ch, h, h)] → image
    (B, out_ch, size, size), unbounded.

    MLP → a b×b grid (b = size / 2^k ≈ 8) → k transposed-conv blocks (FiLM on the
    vector at each), self-attention at the largest stage ≤ attn_res² (0: none) → 3×3
    conv head. Channels: width at full size, doubling per halving, at most 8·width.
    Hint maps (the instance layout) are resized and added at every stage (1×1 conv)
    and given to the head."""

    def __init__(
        self,
        cond: int,
        size: int,
        width: int,
        out_ch: int,
        attn_res: int = 32,
        hint_ch: int = 0,
    ) -> None:
        super().__init__()
        k = max(1, math.floor(math.log2(size / 8)))
        if size % (2**k):
            raise ValueError(f"decoder size {size} must be divisible by {2**k}")
        self.base = size // 2**k
        chans = [width * min(8, 2 ** (k - j)) for j in range(k + 1)]
        self.lin_ch = min(chans[0], 64)
        self.fc = nn.Linear(cond, self.lin_ch * self.base * self.base)
        self.stem = nn.Conv2d(self.lin_ch, chans[0], 3, padding=1)
        self.blocks = nn.ModuleList(
            UpBlock(chans[j], chans[j + 1], cond) for j in range(k)
        )
        self.sizes = [self.base * 2 ** (j + 1) for j in range(k)]
        fits = [j for j, s in enumerate(self.sizes) if s <= attn_res]
        self.attn_at = fits[-1] if fits else -1
        self.attn = (
            SelfAttention2d(chans[self.attn_at + 1]) if self.attn_at >= 0 else None
        )
        self.hint_ch = hint_ch
        self.hint_proj = nn.ModuleList(
            nn.Conv2d(hint_ch, chans[j + 1], 1) for j in range(k if hint_ch else 0)
        )
        self.head_norm = nn.GroupNorm(_groups(chans[-1]), chans[-1])
        self.head = nn.Conv2d(chans[-1] + hint_ch, out_ch, 3, padding=1)

    @staticmethod
    def _resize(h: torch.Tensor, size: int) -> torch.Tensor:
        if h.shape[-1] == size:
            return h
        if h.shape[-1] > size and h.shape[-1] % size == 0:
            return F.avg_pool2d(h, h.shape[-1] // size)
        return F.interpolate(h, size=(size, size), mode="bilinear", align_corners=False)

    def forward(
        self, c: torch.Tensor, hint: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.fc(c).reshape(-1, self.lin_ch, self.base, self.base)
        x = self.stem(F.gelu(x))
        for j, blk in enumerate(self.blocks):
            x = blk(x, c)
            if hint is not None and self.hint_ch:
                x = x + self.hint_proj[j](self._resize(hint, self.sizes[j]))
            if j == self.attn_at and self.attn is not None:
                x = self.attn(x)
        x = F.gelu(self.head_norm(x))
        if hint is not None and self.hint_ch:
            x = torch.cat([x, self._resize(hint, x.shape[-1])], 1)
        return self.head(x)


def mlp(din: int, hidden: int, dout: int, depth: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = din
    for _ in range(depth - 1):
        layers += [nn.Linear(d, hidden), nn.GELU()]
        d = hidden
    layers.append(nn.Linear(d, dout))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------
# The instance layout: docs/scene.md's progressions, differentiable, splatted


def _outline_points(name: str, n: int = 400) -> torch.Tensor:
    """(n, 2) points evenly spaced along a geometry's outline in element-local units:
    the renderer's own outline (renderer/geometry.py), resampled by arc length."""
    pts = outline_points(name)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    t = np.linspace(0.0, arc[-1], n)
    xy = np.stack([np.interp(t, arc, pts[:, 0]), np.interp(t, arc, pts[:, 1])], -1)
    return torch.tensor(xy, dtype=torch.float64)


def outline_templates(size: int = 32, width_px: float = 0.8) -> torch.Tensor:
    """(10, 1, size, size) pictures of the geometries' outlines over local
    [-1, 1]² (+y up, row 0 at the top), Gaussian lines of `width_px` σ, peak ≈ 1."""
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1
    ys, xs = -c[:, None].expand(size, size), c[None, :].expand(size, size)
    px = 2 / size
    out = []
    for name in schema.GEOMETRIES:
        p = _outline_points(name)
        d2 = (xs[None] - p[:, 0, None, None]) ** 2 + (
            ys[None] - p[:, 1, None, None]
        ) ** 2
        d = d2.min(0).values.sqrt() / px
        out.append(torch.exp(-0.5 * (d / width_px) ** 2))
    return torch.stack(out)[:, None].float()


MAX_INSTANCE_SCALE = 20.0


def instance_layout(
    v: dict[str, torch.Tensor], probs: dict[str, torch.Tensor], k: int
) -> dict[str, torch.Tensor]:
    """The first k instances of M chains from docs/scene.md's progressions.

    v: (M,) tensors in the parameters' own units: repetitions, scaleFactor,
    rotationFactor, alphaFactor, stepFactor, xStep, yStep, positionCoupled (0-1).
    probs: (M, K) option probabilities of scaleProgression, rotationProgression,
    alphaProgression, positionProgression, origin (one-hot for hard choices; soft ones
    mix the progressions). Returns s, r (radians), x, y, w (opacity × presence),
    each (M, k)."""
    dev = v["scaleFactor"].device
    i = torch.arange(k, device=dev, dtype=torch.float32)[None]  # (1, k)
    n = v["repetitions"][:, None]
    # renderer/progressions.py's formulas, on torch; scale in float64 (sf^i), then
    # clamped to what the canvas can show
    sf = v["scaleFactor"][:, None].double().clamp(min=1e-4)
    s = sum(
        probs["scaleProgression"][:, j, None]
        * scale_progression(o, sf, k).clamp(max=MAX_INSTANCE_SCALE).float()
        for j, o in enumerate(schema.SCALE_PROGRESSIONS)
    )
    s = s.clamp(-MAX_INSTANCE_SCALE, MAX_INSTANCE_SCALE)  # type: ignore[union-attr]
    rf = v["rotationFactor"][:, None]
    r = sum(
        probs["rotationProgression"][:, j, None] * rotation_progression(o, rf, k)
        for j, o in enumerate(schema.ROTATION_PROGRESSIONS)
    )
    af = v["alphaFactor"][:, None]
    a = sum(
        probs["alphaProgression"][:, j, None]
        * alpha_progression(o, af, n.clamp(min=1), count=k)
        for j, o in enumerate(schema.ALPHA_PROGRESSIONS)
    )
    # offsets: every (kind, coupled, origin) mixed by its probability
    coupled = v["positionCoupled"][:, None]
    xs, ys, step = v["xStep"][:, None], v["yStep"][:, None], v["stepFactor"][:, None]
    xy = torch.zeros(*s.shape, 2, device=dev)  # type: ignore[union-attr]
    for j, kind in enumerate(schema.POSITION_PROGRESSIONS):
        for c, wc in ((True, coupled), (False, 1 - coupled)):
            if kind == "scale" and not c:
                continue  # the scale kind ignores coupling
            w_kind = probs["positionProgression"][:, j, None] * (
                wc if kind == "index" else 1.0
            )
            for o, origin in enumerate(schema.ORIGINS):
                w = (w_kind * probs["origin"][:, o, None])[..., None]
                xy = xy + w * offset_progression(kind, s, xs, ys, c, origin, step)
    x, y = xy[..., 0], xy[..., 1]
    present = torch.sigmoid(4 * (n - i - 0.5))
    return {"s": s, "r": torch.deg2rad(r), "x": x, "y": y, "w": a * present}  # type: ignore[arg-type]


def gradient_templates(
    templates: torch.Tensor,
    angle: torch.Tensor,
    lo: torch.Tensor | float = 0.2,
    hi: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """(M, 1, T, T) outline templates over local [-1, 1]² × the gradient's brightness
    (docs/scene.md): sRGB(1 − smoothstep(lo, hi, 0.5 + 0.5·|g|)), g = q·(sin θ,
    cos θ), θ (M,) rad, (lo, hi) = gradientRange, (M,) each or numbers (sRGB of the
    brightness: the renderer encodes colour × brightness, ≈ sRGB(colour) × this)."""
    T = templates.shape[-1]
    dev = templates.device
    c = (torch.arange(T, device=dev, dtype=torch.float32) + 0.5) / T * 2 - 1
    qx, qy = c[None, None, None, :], -c[None, None, :, None]
    th = angle[:, None, None, None]
    g = qx * th.sin() + qy * th.cos()
    lo_t = torch.as_tensor(lo, device=dev, dtype=torch.float32).reshape(-1, 1, 1, 1)
    hi_t = torch.as_tensor(hi, device=dev, dtype=torch.float32).reshape(-1, 1, 1, 1)
    span = hi_t - lo_t
    span = torch.where(span.abs() < 1e-4, torch.full_like(span, 1e-4), span)
    t = ((0.5 + 0.5 * g.abs() - lo_t) / span).clamp(0, 1)
    return templates * linear_to_srgb(1 - t * t * (3 - 2 * t))


def splat_layout(
    inst: dict[str, torch.Tensor], templates: torch.Tensor, size: int, extent: float
) -> torch.Tensor:
    """Draw every instance's outline template into its chain's canvas.

    inst: instance_layout's (M, k) tensors; templates: (M, 1, T, T), one per chain
    (see gradient_templates); the canvas covers [-extent, extent]² world units at
    size² px. Returns (M, 1, size, size) ≥ 0, the sum of the instances."""
    M, k = inst["s"].shape
    s = inst["s"]
    s = torch.where(s >= 0, s.clamp(min=1e-3), s.clamp(max=-1e-3))
    cr, sr = (
        (inst["r"].cos() / s)[..., None, None],
        (inst["r"].sin() / s)[..., None, None],
    )
    x, y = inst["x"][..., None, None], inst["y"][..., None, None]
    # canvas normalised (xn, yn) → template normalised (tx, ty) = (lx, −ly) with
    # local = R(−r)(q − p) / s and q = E·(xn, −yn); each sum broadcasts (M, k, 1, W)
    # against (M, k, H, 1), so only one full-size tensor per coordinate is made
    c = (torch.arange(size, device=s.device, dtype=torch.float32) + 0.5) / size * 2 - 1
    xn, yn = c[None, None, None, :] * extent, c[None, None, :, None] * extent
    tx = (cr * xn - cr * x - sr * y) + (-sr * yn)
    ty = (sr * xn + cr * y - sr * x) + (cr * yn)
    grid = torch.stack([tx, ty], -1).reshape(M, k * size, size, 2)
    val = F.grid_sample(
        templates, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    ).reshape(M, k, size, size)
    # a template line magnified beyond a canvas pixel is dimmed to keep its energy
    line_px = 2.0 * 2 / templates.shape[-1] * inst["s"].abs() / (2 * extent / size)
    w = inst["w"] / line_px.clamp(min=1)
    return torch.einsum("mkhw,mk->mhw", val, w)[:, None]


# ----------------------------------------------------------------------------------
# Forward model


@dataclass
class ChainInputs:
    """The chains' intrinsic values and transforms (ForwardModel.chain_inputs); chain
    0 is the base chain, 1..5 the layers (6 = 1 + schema.MAX_LAYERS)."""

    cont: torch.Tensor
    """(B, 6, 9) the chain-intrinsic continuous values (CHAIN_KEYS) in base units"""
    cats: torch.Tensor
    """(B, 6, (5 + 1)·E) categorical embeddings: the shared ones, then the geometry"""
    coupled: torch.Tensor
    """(B, 6, 1) positionCoupled as a float"""
    color: torch.Tensor
    """(B, 6, 3) the chain's sRGB colour (base × own, as the renderer draws it)"""
    mask: torch.Tensor
    """(B, 6) 1 for a chain that is drawn (soft for predicted layers)"""
    rot: torch.Tensor
    """(B, 6) layer rotation in radians (0 for the base chain)"""
    sx: torch.Tensor
    """(B, 6) layer scale x (1 for the base chain)"""
    sy: torch.Tensor
    """(B, 6) layer scale y"""
    lt: torch.Tensor
    """(B, 6, 2) group translation: Scene.position for the base chain, the layer's own
    position for a layer"""
    scene: torch.Tensor
    """(B, 4) Scene scale, rotation, position x, y"""
    probs: dict[str, torch.Tensor]
    """per chain categorical (CHAIN_CATS and geometry) → (B, 6, options) probabilities"""

    def float(self) -> ChainInputs:
        """The tensors as float32 (probs as they are)."""
        return ChainInputs(
            self.cont.float(),
            self.cats.float(),
            self.coupled.float(),
            self.color.float(),
            self.mask.float(),
            self.rot.float(),
            self.sx.float(),
            self.sy.float(),
            self.lt.float(),
            self.scene.float(),
            self.probs,
        )


class ForwardModel(nn.Module):
    """Encoded params (batch_encode's dict) → image (B, 3, R, R) in [0, 1].

    Optional soft inputs: `cat_probs` (list of (B, K) per CAT_KEYS, replaces `cat`),
    `layer_geom_probs` (B, 5, 10), `layer_mask` (B, 5) float (replaces `n_layers`).
    """

    def __init__(self, cfg: ForwardConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.embed
        self.cat_emb = nn.ModuleList(nn.Embedding(k, e) for k in encoding.CAT_SIZES)
        nf = 1 + 2 * cfg.n_freq
        self.register_buffer(
            "chain_idx",
            torch.tensor([_cont_index(k) for k in CHAIN_KEYS]),
            persistent=False,
        )
        self.register_buffer(
            "post_idx",
            torch.tensor([_cont_index(k) for k in POST_CONT]),
            persistent=False,
        )
        # layer overrides → base units, for the chain keys they override
        over = [k for k in CHAIN_KEYS if k in schema.LAYER_OPTIONAL]
        self.over_chain = [CHAIN_KEYS.index(k) for k in over]
        self.over_layer = [_layer_index(k) for k in over]
        self.over_opt = [schema.LAYER_OPTIONAL.index(k) for k in over]
        ab = [_unit_affine(schema.LAYER_PARAM[k], schema.PARAM[k]) for k in over]
        self.register_buffer(
            "over_a", torch.tensor([a for a, _ in ab]), persistent=False
        )
        self.register_buffer(
            "over_b", torch.tensor([b for _, b in ab]), persistent=False
        )
        chain_in = len(CHAIN_KEYS) * nf + (len(CHAIN_CATS) + 1) * e + 1 + 2
        self.chain_mlp = mlp(chain_in, cfg.hidden, cfg.hidden, depth=3)
        post_in = len(POST_CONT) * nf + len(POST_CATS) * e + len(schema.BOOL_KEYS)
        self.post_mlp = mlp(post_in, cfg.hidden // 2, cfg.hidden // 2, depth=2)
        if cfg.composite:
            self.decoder = Decoder(
                cfg.hidden,
                cfg.canvas_size,
                cfg.width,
                1,
                cfg.attn_res,
                hint_ch=1 if cfg.layout_k else 0,
            )
            if cfg.layout_k:
                self.templates = nn.Parameter(outline_templates(cfg.template))
                self.hint_gain = nn.Linear(cfg.hidden, 1)
                with torch.no_grad():
                    self.hint_gain.weight.zero_()
                    self.hint_gain.bias.fill_(-2.0)
            with torch.no_grad():  # the canonical chain starts dark, not grey
                head_bias = self.decoder.head.bias
                assert head_bias is not None
                head_bias.fill_(-4.0)
        else:
            xf_in = (
                7 * nf
            )  # layer transform: rotation, position x/y, scale x/y + mask, colour
            self.layer_mlp = mlp(cfg.hidden + xf_in + 3, cfg.hidden, cfg.hidden)
            scene_in = 3 * nf + 3 + cfg.hidden // 2 + 6
            self.global_mlp = mlp(
                cfg.hidden + scene_in + cfg.hidden, cfg.hidden, cfg.hidden
            )
            self.decoder = Decoder(cfg.hidden, cfg.size, cfg.width, 3, cfg.attn_res)
        pc = max(8, cfg.width)
        self.pattern = nn.Parameter(torch.zeros(1, cfg.pattern_ch, cfg.size, cfg.size))
        # The noise pass (docs/scene.md): a fixed per-pixel pick threshold u and sign s
        # (1-px cells below 2048 px), learned: picked where noiseDensity > u.
        u0 = torch.rand(1, 1, cfg.size, cfg.size).clamp(0.02, 0.98)
        self.noise_u = nn.Parameter(torch.logit(u0))
        self.noise_s = nn.Parameter(torch.zeros(1, 1, cfg.size, cfg.size))
        self.post_in = nn.Conv2d(3 + cfg.pattern_ch, pc, 3, padding=1)
        self.post_film = FiLM(cfg.hidden // 2, pc)
        self.post_mid = nn.Conv2d(pc, pc, 3, padding=1)
        self.post_out = nn.Conv2d(pc, 3, 3, padding=1)
        _zero(self.post_out)

    # -- pieces of the encoding ------------------------------------------------
    def _cat_embeddings(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """One (B, E) embedding per CAT_KEYS entry (soft when cat_probs is given)."""
        probs = batch.get("cat_probs")
        out = []
        for i, emb in enumerate(self.cat_emb):
            if probs is not None:
                out.append(probs[i].to(emb.weight.dtype) @ emb.weight)
            else:
                out.append(emb(batch["cat"][:, i]))
        return out

    def _cat_probs(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """One (B, K) probability vector per CAT_KEYS entry (one-hot when hard)."""
        if batch.get("cat_probs") is not None:
            return [p.float() for p in batch["cat_probs"]]
        return [
            F.one_hot(batch["cat"][:, i], k).float()
            for i, k in enumerate(encoding.CAT_SIZES)
        ]

    def _layer_mask(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, 5) float: 1 for real layers (or the given soft mask)."""
        if batch.get("layer_mask") is not None:
            return batch["layer_mask"].float()
        n = batch["n_layers"]
        return (
            torch.arange(schema.MAX_LAYERS, device=n.device)[None] < n[:, None]
        ).float()

    def chain_inputs(self, batch: dict[str, Any]) -> ChainInputs:
        """The chains' intrinsic values and transforms (ChainInputs has the shapes)."""
        cont, lc, lo = (
            batch["cont"].float(),
            batch["layer_cont"].float(),
            batch["layer_opt"].float(),
        )
        B, L = cont.shape[0], schema.MAX_LAYERS
        base = cont[:, self.chain_idx]  # (B, 9)
        chain = base[:, None].repeat(1, L + 1, 1)  # (B, 6, 9)
        layer_vals = lc[:, :, self.over_layer] * self.over_a + self.over_b  # (B, 5, k)
        opt = lo[:, :, self.over_opt]
        mixed = base[:, None, self.over_chain] + opt * (
            layer_vals - base[:, None, self.over_chain]
        )
        chain = torch.cat(
            [
                chain[:, :1],
                chain[:, 1:].index_copy(
                    2, torch.tensor(self.over_chain, device=cont.device), mixed
                ),
            ],
            dim=1,
        )
        embs = self._cat_embeddings(batch)
        names = list(schema.CAT_KEYS)
        shared = torch.cat(
            [embs[names.index(k)] for k in CHAIN_CATS], dim=-1
        )  # (B, 5E)
        geo_base = embs[names.index("geometry")]  # (B, E)
        geo_emb = self.cat_emb[names.index("geometry")]
        assert isinstance(geo_emb, nn.Embedding)
        geo_w = geo_emb.weight
        if batch.get("layer_geom_probs") is not None:
            geo_layer = batch["layer_geom_probs"].to(geo_w.dtype) @ geo_w
        else:
            geo_layer = geo_w[batch["layer_geom"]]  # (B, 5, E)
        g_opt = lo[:, :, schema.LAYER_OPTIONAL.index("geometry"), None]
        geo = torch.cat(
            [
                geo_base[:, None],
                geo_base[:, None] + g_opt * (geo_layer - geo_base[:, None]),
            ],
            1,
        )
        cats = torch.cat([shared[:, None].expand(-1, L + 1, -1), geo], dim=-1)
        cp = self._cat_probs(batch)
        probs = {
            k: cp[names.index(k)][:, None].expand(-1, L + 1, -1) for k in CHAIN_CATS
        }
        if batch.get("layer_geom_probs") is not None:
            lg = batch["layer_geom_probs"].float()
        else:
            lg = F.one_hot(batch["layer_geom"], NUM_GEOMETRIES).float()
        gb = cp[names.index("geometry")][:, None]
        probs["geometry"] = torch.cat([gb, gb + g_opt * (lg - gb)], 1)
        bools = batch["bools"].float()
        coupled = bools[
            :, schema.BOOL_KEYS.index("positionCoupled"), None, None
        ].expand(-1, L + 1, 1)
        ci = [_cont_index(f"color.{c}") for c in "rgb"]
        base_col = cont[:, ci]
        lcol = lc[:, :, [_layer_index("color", j) for j in range(3)]]
        c_opt = lo[:, :, schema.LAYER_OPTIONAL.index("color"), None]
        own = torch.cat(
            [base_col[:, None], base_col[:, None] + c_opt * (lcol - base_col[:, None])],
            1,
        )
        # the renderer's chain colour: base × own, both linear, sRGB-encoded
        color = linear_to_srgb(srgb_to_linear(base_col[:, None]) * srgb_to_linear(own))
        mask = torch.cat(
            [torch.ones(B, 1, device=cont.device), self._layer_mask(batch)], 1
        )
        lp = schema.LAYER_PARAM
        zeros = torch.zeros(B, 1, device=cont.device)
        rot = torch.cat(
            [zeros, _denorm(lc[:, :, _layer_index("rotation")], lp["rotation"])], 1
        )
        sx = torch.cat(
            [zeros + 1, _denorm(lc[:, :, _layer_index("scale", 0)], lp["scale"])], 1
        )
        sy = torch.cat(
            [zeros + 1, _denorm(lc[:, :, _layer_index("scale", 1)], lp["scale"])], 1
        )
        P = schema.PARAM
        # group translations: Scene.position for the base chain (it moves the base
        # only), each layer's own position for a layer
        lt = torch.stack(
            [
                torch.cat(
                    [
                        _denorm(
                            cont[:, _cont_index(f"position.{'xy'[j]}")], P["position"]
                        )[:, None],
                        _denorm(lc[:, :, _layer_index("position", j)], lp["position"]),
                    ],
                    1,
                )
                for j in range(2)
            ],
            -1,
        )
        scene = torch.stack(
            [
                _denorm(cont[:, _cont_index("scale")], P["scale"]),
                _denorm(cont[:, _cont_index("rotation")], P["rotation"]),
                _denorm(cont[:, _cont_index("position.x")], P["position"]),
                _denorm(cont[:, _cont_index("position.y")], P["position"]),
            ],
            -1,
        )
        return ChainInputs(
            cont=chain,
            cats=cats,
            coupled=coupled,
            color=color,
            mask=mask,
            rot=rot,
            sx=sx,
            sy=sy,
            lt=lt,
            scene=scene,
            probs=probs,
        )

    def post_embedding(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, hidden/2) embedding of the post-pass params (dither, noise, bools)."""
        embs = self._cat_embeddings(batch)
        names = list(schema.CAT_KEYS)
        x = torch.cat(
            [fourier(batch["cont"].float()[:, self.post_idx], self.cfg.n_freq)]
            + [embs[names.index(k)] for k in POST_CATS]
            + [batch["bools"].float()],
            -1,
        )
        return self.post_mlp(x)

    def warp_theta(self, ch: ChainInputs) -> torch.Tensor:
        """(B, 6, 2, 3) affine_grid matrices: output (view) normalised coordinates →
        the canonical canvas' normalised coordinates, for Scene · Group of each chain
        (Scene = R(θ)·S(s); Scene.position sits in the base chain's Group)."""
        s, th, _, _ = ch.scene.unbind(-1)  # (B,)
        s = s.clamp(min=1e-3)

        def safe(v: torch.Tensor) -> torch.Tensor:
            return torch.where(
                v >= 0, v.clamp(min=MIN_LAYER_SCALE), v.clamp(max=-MIN_LAYER_SCALE)
            )

        sx, sy, rot = safe(ch.sx), safe(ch.sy), ch.rot  # (B, 6)
        # A⁻¹ = diag(1/sx, 1/sy) · R(−rot) · R(−θ) / s ; total rotation φ = rot + θ
        phi = rot + th[:, None]
        c, si = phi.cos(), phi.sin()
        inv_s = 1 / s[:, None]
        a00, a01 = c / sx * inv_s, si / sx * inv_s
        a10, a11 = -si / sy * inv_s, c / sy * inv_s
        # translation t = A_s · t_g, with A_s = s·R(θ)
        ct, st = th.cos()[:, None], th.sin()[:, None]
        gx, gy = ch.lt[..., 0], ch.lt[..., 1]
        tx = s[:, None] * (ct * gx - st * gy)
        ty = s[:, None] * (st * gx + ct * gy)
        # c_n = (1/canvas) F A⁻¹ F n − (1/E) F A⁻¹ t, F = diag(1, −1)
        k = 1.0 / self.cfg.canvas
        E = VIEW_HALF * self.cfg.canvas
        l00, l01, l10, l11 = a00 * k, -a01 * k, -a10 * k, a11 * k
        b0 = -(a00 * tx + a01 * ty) / E
        b1 = (a10 * tx + a11 * ty) / E
        return torch.stack(
            [torch.stack([l00, l01, b0], -1), torch.stack([l10, l11, b1], -1)], -2
        )

    def chain_embedding(self, ch: ChainInputs) -> torch.Tensor:
        """(B, 6, hidden): the intrinsic look of each chain plus its log magnification."""
        mag = ch.scene[:, None, :1].clamp(min=1e-3).log() + torch.stack(
            [
                ch.sx.abs().clamp(min=MIN_LAYER_SCALE).log(),
                ch.sy.abs().clamp(min=MIN_LAYER_SCALE).log(),
            ],
            -1,
        )
        x = torch.cat([fourier(ch.cont, self.cfg.n_freq), ch.cats, ch.coupled, mag], -1)
        return self.chain_mlp(x)

    # -- the image -------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        ch = self.chain_inputs(batch)
        emb = self.chain_embedding(ch)  # (B, 6, H)
        B, C, R = emb.shape[0], emb.shape[1], self.cfg.size
        if self.cfg.composite:
            light = self.composite(ch, emb)  # (B, 3, R, R) ≥ 0
            img = 1 - F.softplus(12.0 * (1 - light)) / 12.0  # soft min(light, 1)
        else:
            img = torch.sigmoid(self.single(batch, ch, emb))
        post = self.post_embedding(batch)
        x = torch.cat([img, self.pattern.expand(B, -1, -1, -1).to(img.dtype)], 1)
        h = F.gelu(self.post_film(self.post_in(x), post))
        h = F.gelu(self.post_mid(h))
        out = img + self.post_out(h) + self.noise(batch)
        del C, R
        return out.clamp(0.0, 1.0)  # (B, 3, R, R) in [0, 1]

    def noise(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, 1, R, R): ±0.5·noiseOpacity where a pixel is picked, when enabled."""
        cont, bools = batch["cont"].float(), batch["bools"].float()
        on = bools[:, schema.BOOL_KEYS.index("noiseEnabled"), None, None, None]
        density = cont[:, _cont_index("noiseDensity"), None, None, None]
        opacity = _denorm(
            cont[:, _cont_index("noiseOpacity")], schema.PARAM["noiseOpacity"]
        )
        pick = torch.sigmoid((density - torch.sigmoid(self.noise_u)) / 0.05)
        return on * 0.5 * opacity[:, None, None, None] * torch.tanh(self.noise_s) * pick

    def composite(self, ch: ChainInputs, emb: torch.Tensor) -> torch.Tensor:
        """Decode the chains that are present, warp each into the view, × colour, sum."""
        B, C = emb.shape[:2]
        R, S = self.cfg.size, self.cfg.canvas_size
        mask = ch.mask.reshape(-1)  # (B·6,)
        # chains that exist (a soft mask's negligible ones are skipped)
        idx = torch.nonzero(mask > 1e-3, as_tuple=True)[0]  # (M,)
        hint = self.layout_hint(ch, idx) if self.cfg.layout_k else None
        e = emb.reshape(B * C, -1)[idx]
        canon = F.softplus(self.decoder(e, hint))  # (M, 1, S, S)
        if hint is not None and self.cfg.hint_direct:
            # the hint itself, at a learned per-chain gain, plus the decoder's part
            gain = F.softplus(self.hint_gain(e))[:, :, None, None]
            canon = canon + gain * Decoder._resize(hint, S)
        theta = self.warp_theta(ch).reshape(B * C, 2, 3)[idx]
        grid = F.affine_grid(
            theta.to(canon.dtype), [idx.numel(), 1, R, R], align_corners=False
        )
        warped = F.grid_sample(
            canon, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        col = (ch.color.reshape(B * C, 3)[idx] * mask[idx, None]).to(warped.dtype)
        light = torch.zeros(B * C, 3, R, R, device=emb.device, dtype=warped.dtype)
        light = light.index_copy(0, idx, warped * col[:, :, None, None])
        return light.reshape(B, C, 3, R, R).sum(1)

    @torch.autocast("cuda", enabled=False)
    def layout_hint(self, ch: ChainInputs, idx: torch.Tensor) -> torch.Tensor:
        """(M, 1, h, h): the first layout_k instances of the chosen chains (flat
        indices into B·6) splatted on the canonical canvas (h = min(layout_res,
        canvas side)), softly saturated at 4. Always float32: coordinates need it."""
        ch = ch.float()
        vals = ch.cont.reshape(-1, len(CHAIN_KEYS))[idx]
        v = {k: _denorm(vals[:, j], _param(k)) for j, k in enumerate(CHAIN_KEYS)}
        v["positionCoupled"] = ch.coupled.reshape(-1)[idx]
        probs = {k: p.reshape(-1, p.shape[-1])[idx] for k, p in ch.probs.items()}
        inst = instance_layout(v, probs, self.cfg.layout_k)
        T = self.cfg.template
        tmpl = (probs["geometry"] @ self.templates.reshape(NUM_GEOMETRIES, -1)).reshape(
            -1, 1, T, T
        )
        # the outline turned by startAngle: its instances turn by as much more, and
        # the gradient (taken on the turned outline) by as much less on the template
        inst["r"] = inst["r"] + v["startAngle"][:, None]
        tmpl = gradient_templates(
            tmpl,
            v["gradientAngle"] + v["startAngle"],
            v["gradientRange.0"],
            v["gradientRange.1"],
        )
        hint = splat_layout(
            inst,
            tmpl,
            min(self.cfg.layout_res, self.cfg.canvas_size),
            VIEW_HALF * self.cfg.canvas,
        )
        return 4 * torch.tanh(hint / 4)

    def single(
        self, batch: dict[str, Any], ch: ChainInputs, emb: torch.Tensor
    ) -> torch.Tensor:
        """Baseline: one decoder for the whole picture from a pooled embedding."""
        nf = self.cfg.n_freq
        lp = schema.LAYER_PARAM
        xf = torch.stack(
            [
                (ch.rot - lp["rotation"].clamp_lo)
                / (lp["rotation"].clamp_hi - lp["rotation"].clamp_lo),
                (ch.lt[..., 0] + 2) / 4,
                (ch.lt[..., 1] + 2) / 4,
                (ch.sx + 2) / 4,
                (ch.sy + 2) / 4,
                ch.mask,
                torch.zeros_like(ch.mask),
            ],
            -1,
        )
        layer = self.layer_mlp(
            torch.cat([emb, fourier(xf, nf), ch.color], -1)
        )  # (B, 6, H)
        pooled = (layer[:, 1:] * ch.mask[:, 1:, None]).sum(1)
        cont = batch["cont"].float()
        scene = cont[:, [_cont_index(k) for k in ("scale", "rotation", "position.x")]]
        n_oh = F.one_hot(ch.mask[:, 1:].sum(1).round().long().clamp(0, 5), 6).float()
        g = torch.cat(
            [
                emb[:, 0],
                fourier(scene, nf),
                ch.color[:, 0],
                self.post_embedding(batch),
                n_oh,
                pooled,
            ],
            -1,
        )
        return self.decoder(self.global_mlp(g))


def compile_hot_paths(net: nn.Module) -> nn.Module:
    """torch.compile the convolutional hot path of a model in place (CUDA training):
    the forward model's decoder (dynamic batch: the number of chains varies), the
    inverse model's backbone. The state_dict keys stay as they are, and the
    data-dependent parts (which chains exist, the layout splat) stay eager."""
    if isinstance(net, ForwardModel):
        dec = net.decoder
        dec.forward = compiled_or_eager(dec.forward, "decoder", dynamic=True)  # type: ignore[method-assign]
    elif isinstance(net, InverseModel):
        bb = net.backbone
        bb.forward = compiled_or_eager(bb.forward, "backbone")  # type: ignore[method-assign]
    return net


def compiled_or_eager(fn: Any, name: str, **compile_kw: Any) -> Any:
    """torch.compile(fn), falling back to fn itself for good, with one warning, when
    the first compiled call fails (inductor needs Triton and a working C compiler,
    which not every GPU machine has). An error of fn itself is raised again by the
    eager call."""
    import warnings

    compiled = torch.compile(fn, **compile_kw)
    ok = [True]

    def call(*args: Any, **kw: Any) -> Any:
        if ok[0]:
            try:
                return compiled(*args, **kw)
            except Exception as e:
                ok[0] = False
                first = (str(e).strip().splitlines() or [""])[-1][:200]
                warnings.warn(
                    f"torch.compile of the {name} failed ({type(e).__name__}: "
                    f"{first}); it runs without compilation",
                    stacklevel=2,
                )
        return fn(*args, **kw)

    return call


# ----------------------------------------------------------------------------------
# Backbones


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


# ----------------------------------------------------------------------------------
# Inverse model


@dataclass
class InverseConfig:
    """backbone: timm name (see create_backbone); input_size: the backbone's input
    side in px (0 = the image's own size); hidden: head MLP width; features: the
    backbone's pooled feature size (filled in from the backbone); sqrt_input: the
    backbone sees √image, which lifts thin dim lines out of the black."""

    backbone: str = DEFAULT_FREE_BACKBONE
    input_size: int = 0
    hidden: int = 512
    features: int = 512
    sqrt_input: bool = True


class InverseModel(nn.Module):
    """Image (B, 3, H, W) in [0, 1] → head outputs for every part of the encoding.

    forward() returns logits / raw values: cont (B, NC) in [0, 1] (sigmoid), cat
    (list of (B, K) logits), bools (B, NB) logits, n_layers (B, 6) logits,
    layer_cont (B, 5, NLC) in [0, 1], layer_opt (B, 5, NLO) logits, layer_geom
    (B, 5, 10) logits. Build it with `InverseModel.build` to get pretrained weights."""

    mean: torch.Tensor  # (1, 3, 1, 1) buffers: the backbone's input normalisation
    std: torch.Tensor

    def __init__(
        self,
        cfg: InverseConfig,
        backbone: nn.Module | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if backbone is None:
            backbone, info = create_backbone(cfg.backbone, pretrained=False)
        assert info is not None
        self.cfg = cfg
        self.backbone_info = info
        self.backbone = backbone
        cfg.features = int(info["features"])
        self.register_buffer(
            "mean", torch.tensor(info["mean"]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(info["std"]).view(1, 3, 1, 1), persistent=False
        )
        L, H = schema.MAX_LAYERS, cfg.hidden
        self.trunk = nn.Sequential(
            nn.LayerNorm(cfg.features),
            nn.Linear(cfg.features, H),
            nn.GELU(),
            nn.Linear(H, H),
            nn.GELU(),
        )
        self.cont = nn.Linear(H, encoding.NUM_CONT)
        self.cat = nn.ModuleList(nn.Linear(H, k) for k in encoding.CAT_SIZES)
        self.bools = nn.Linear(H, len(schema.BOOL_KEYS))
        self.n_layers = nn.Linear(H, L + 1)
        self.layer_cont = nn.Linear(H, L * encoding.NUM_LAYER_CONT)
        self.layer_opt = nn.Linear(H, L * encoding.NUM_LAYER_OPT)
        self.layer_geom = nn.Linear(H, L * NUM_GEOMETRIES)

    @classmethod
    def build(cls, cfg: InverseConfig, weights: str | None = None) -> InverseModel:
        """A fresh model with the backbone's pretrained weights where it has any."""
        backbone, info = create_backbone(cfg.backbone, weights=weights, pretrained=True)
        if info["input_size"] and not cfg.input_size:
            cfg.input_size = int(info["input_size"])
        return cls(cfg, backbone, info)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → pooled backbone embedding (B, D)."""
        x = images
        if self.cfg.input_size and x.shape[-1] != self.cfg.input_size:
            x = F.interpolate(
                x,
                size=(self.cfg.input_size,) * 2,
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        if self.cfg.sqrt_input:
            x = x.clamp(min=0).sqrt()
        return self.backbone((x - self.mean) / self.std)

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        B, L = images.shape[0], schema.MAX_LAYERS
        h = self.trunk(self.features(images).float())
        return {
            "cont": torch.sigmoid(self.cont(h)),
            "cat": [head(h) for head in self.cat],
            "bools": self.bools(h),
            "n_layers": self.n_layers(h),
            "layer_cont": torch.sigmoid(self.layer_cont(h)).view(B, L, -1),
            "layer_opt": self.layer_opt(h).view(B, L, -1),
            "layer_geom": self.layer_geom(h).view(B, L, -1),
        }

    @staticmethod
    def to_encoded(out: dict[str, Any]) -> dict[str, Any]:
        """Head outputs → a batch_encode-style dict (argmax categoricals) plus the
        soft versions: cat_probs (list of (B, K)), n_layers_probs (B, 6),
        layer_geom_probs (B, 5, 10), bools_probs, layer_opt_probs, and layer_mask
        (B, 5) = P(n_layers > i), which the forward model accepts as soft inputs."""
        cat_probs = [c.softmax(-1) for c in out["cat"]]
        n_probs = out["n_layers"].softmax(-1)
        # P(n > i) for i = 0..4
        layer_mask = 1 - n_probs.cumsum(-1)[:, :-1]
        bools_p, opt_p = torch.sigmoid(out["bools"]), torch.sigmoid(out["layer_opt"])
        return {
            "cont": out["cont"],
            "cat": torch.stack([p.argmax(-1) for p in cat_probs], -1),
            "bools": (bools_p > 0.5).float(),
            "n_layers": n_probs.argmax(-1),
            "layer_cont": out["layer_cont"],
            "layer_opt": (opt_p > 0.5).float(),
            "layer_geom": out["layer_geom"].argmax(-1),
            "cat_probs": cat_probs,
            "n_layers_probs": n_probs,
            "layer_geom_probs": out["layer_geom"].softmax(-1),
            "bools_probs": bools_p,
            "layer_opt_probs": opt_p,
            "layer_mask": layer_mask,
        }

    @torch.no_grad()
    def predict_encoded(self, images: torch.Tensor) -> dict[str, Any]:
        """(B, 3, H, W) in [0, 1] → the batch_encode-style dict with continuous values
        in [0, 1], argmax categoricals, and the probabilities (see to_encoded)."""
        was = self.training
        self.eval()
        out = self.to_encoded(self(images))
        self.train(was)
        return out

    @torch.no_grad()
    def predict_params(self, images: torch.Tensor) -> list[dict[str, Any]]:
        """(B, 3, H, W) in [0, 1] → flat params, one dict per image."""
        enc = self.predict_encoded(images)
        return [
            sampling.apply_guard(
                encoding.decode_params({k: enc[k][i] for k in ENCODED_KEYS})
            )
            for i in range(images.shape[0])
        ]
