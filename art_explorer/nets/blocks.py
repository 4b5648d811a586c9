"""The decoder's building blocks: FiLM conditioning, up-sampling blocks,
self-attention over pixels, the Decoder (vector [+ hint maps] → image) and the MLP."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FiLM(nn.Module):
    """Per-channel scale and shift from a conditioning vector (zero-initialised)."""

    def __init__(self, cond: int, ch: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond, 2 * ch)
        zero_init(self.proj)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(c)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift


def zero_init(m: nn.Linear | nn.Conv2d) -> None:
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
        zero_init(self.proj)

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
