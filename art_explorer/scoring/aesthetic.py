"""The weight-free aesthetic score of a render: computational-aesthetics measures
gated against blank, white-out and noise, in [0, 1] (higher = more striking); also
the Scored record and the Scorer protocol every scorer (scoring.scorers) follows.

The heuristic score. The render is box-resized to 256² (so the score does not
depend on ``--size``); L = Rec. 709 luma in [0, 1], S = √L; r(x; a, b) is a
smoothstep from 0 at x = a to 1 at x = b. Measures:

- coverage c: share of lit pixels (L > 0.03);
- brightness b: 95th percentile of L over lit pixels;
- white-out w: share of pixels with L > 0.92 (w / c: the share of the lit area);
- tonal entropy H: entropy of a 16-bin histogram of L over lit pixels / ln 16;
- structure e_k (k = 2, 4, 8): share of pixels of S average-pooled k × k whose
  gradient magnitude exceeds 0.1 (edges at several scales; noise averages away);
- spectral slope β: least-squares slope of log radial power spectrum of L against
  log frequency, 4–120 cycles per image (structured art ≈ −2, noise ≈ 0);
- centre of light d: distance of the L-weighted centroid from the image centre,
  in half-widths;
- symmetry m: the largest Pearson correlation of S (pooled 4 × 4) with its
  left-right mirror, up-down mirror, 180° rotation and transpose;
- colourfulness M: Hasler & Süsstrunk's √(σ²_rg + σ²_yb) + 0.3 √(μ²_rg + μ²_yb)
  over lit pixels.

score = G · Q, both in [0, 1], with the gate (blank, white-out, invisible and
noise-dominated renders go to 0)

    G = r(c; .002, .03) · (1 − r(c; .9, 1)) · r(b; .03, .15) · r(−β; .35, .9)
        · (1 − r(w; .15, .45)) · (1 − r(w / max(c, .1); .35, .65))

and the quality

    Q = .25 (½ r(b; .05, .5) + ½ H) + .30 mean_k r(e_k; 0, .25)
        + .15 (1 − r(d; .15, .8)) + .15 max(m, 0) + .15 r(M; 0, .2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

HEURISTIC_SIZE = 256  # px: the heuristic measures every render at this size


@dataclass
class Scored:
    """One score in [0, 1] and what produced it.

    scorer: the name of the scorer whose number this is ("heuristic" also when the
        VLM's reply could not be read and the heuristic stood in).
    fallback_from: the scorer that was asked but could not answer, else "".
    reply: the VLM's raw reply, else ""."""

    score: float
    scorer: str
    fallback_from: str = ""
    reply: str = ""

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": round(self.score, 6), "scorer": self.scorer}
        if self.fallback_from:
            out["fallback_from"] = self.fallback_from
        if self.reply:
            out["reply"] = self.reply
        return out


class Scorer(Protocol):
    name: str
    default_size: int  # px: render size the scorer wants unless --size says other
    cache_id: str  # what the cache keys on besides the params (name, model)

    def score(self, img: np.ndarray) -> Scored:
        """img: float (H, W, 3) in [0, 1] → Scored."""
        ...


def _ramp(x: float, a: float, b: float) -> float:
    """Smoothstep from 0 at x = a to 1 at x = b."""
    t = min(1.0, max(0.0, (x - a) / (b - a)))
    return t * t * (3.0 - 2.0 * t)


def _pool(a: np.ndarray, k: int) -> np.ndarray:
    """k × k average pooling of a 2-D array (edges that do not fill a cell dropped)."""
    h, w = a.shape[0] // k * k, a.shape[1] // k * k
    return a[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def _to_size(img: np.ndarray, size: int) -> np.ndarray:
    """float (H, W, 3) in [0, 1] → float64 (size, size, 3), box-resized if needed."""
    a = np.asarray(img, np.float64)
    if a.shape[:2] == (size, size):
        return a
    from PIL import Image

    u8 = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(u8).resize((size, size), Image.Resampling.BOX)
    return np.asarray(im, np.float64) / 255.0


def spectral_slope(lum: np.ndarray, f_lo: int = 4, f_hi: int = 120) -> float:
    """Slope of log radially averaged power spectrum vs log frequency (cycles per
    image, f_lo..f_hi) of a 2-D array; 0 when it has no power there."""
    h, w = lum.shape
    power = np.abs(np.fft.fftshift(np.fft.fft2(lum - lum.mean()))) ** 2
    yy, xx = np.indices(lum.shape)
    r = np.hypot(yy - h // 2, xx - w // 2).astype(int).ravel()
    radial = np.bincount(r, power.ravel()) / np.maximum(np.bincount(r), 1)
    f = np.arange(len(radial))
    sel = (f >= f_lo) & (f <= min(f_hi, min(h, w) // 2 - 1))
    if sel.sum() < 2 or radial[sel].min() <= 0:
        return 0.0
    return float(np.polyfit(np.log(f[sel]), np.log(radial[sel]), 1)[0])


def aesthetic_features(img: np.ndarray) -> dict[str, float]:
    """The heuristic's measures (the module docstring) of a render.

    img: float (H, W, 3) in [0, 1], any size (box-resized to 256²)."""
    a = _to_size(img, HEURISTIC_SIZE)
    lum = a @ np.array([0.2126, 0.7152, 0.0722])
    s = np.sqrt(lum)
    lit = lum > 0.03
    lit_lum = lum[lit]
    out: dict[str, float] = {
        "coverage": float(lit.mean()),
        "whiteout": float((lum > 0.92).mean()),
        "brightness": float(np.percentile(lit_lum, 95)) if lit_lum.size else 0.0,
    }
    if lit_lum.size:
        hist, _ = np.histogram(lit_lum, bins=16, range=(0.03, 1.0))
        p = hist[hist > 0] / hist.sum()
        out["tone_entropy"] = float(-(p * np.log(p)).sum() / math.log(16))
    else:
        out["tone_entropy"] = 0.0
    for k in (2, 4, 8):
        pooled = _pool(s, k)
        grad = np.hypot(
            np.diff(pooled, axis=1)[:-1, :], np.diff(pooled, axis=0)[:, :-1]
        )
        out[f"edges_{k}"] = float((grad > 0.1).mean())
    out["spectral_slope"] = spectral_slope(lum)
    total = float(lum.sum())
    if total > 0:
        h, w = lum.shape
        cy = float((lum.sum(axis=1) * np.linspace(-1, 1, h)).sum()) / total
        cx = float((lum.sum(axis=0) * np.linspace(-1, 1, w)).sum()) / total
        out["centre_distance"] = math.hypot(cx, cy)
    else:
        out["centre_distance"] = math.sqrt(2.0)
    b = _pool(s, 4)
    out["symmetry"] = max(
        _pearson(b, b[:, ::-1]),
        _pearson(b, b[::-1, :]),
        _pearson(b, b[::-1, ::-1]),
        _pearson(b, b.T),
    )
    if lit_lum.size:
        r_, g_, b_ = a[..., 0][lit], a[..., 1][lit], a[..., 2][lit]
        rg, yb = r_ - g_, 0.5 * (r_ + g_) - b_
        out["colourfulness"] = float(
            math.sqrt(rg.var() + yb.var()) + 0.3 * math.hypot(rg.mean(), yb.mean())
        )
    else:
        out["colourfulness"] = 0.0
    return out


def heuristic_score(f: dict[str, float]) -> tuple[float, float, float]:
    """Features (aesthetic_features) → (score, gate G, quality Q), all in [0, 1]."""
    c, b = f["coverage"], f["brightness"]
    gate = (
        _ramp(c, 0.002, 0.03)
        * (1.0 - _ramp(c, 0.9, 1.0))
        * _ramp(b, 0.03, 0.15)
        * (1.0 - _ramp(f["whiteout"], 0.15, 0.45))
        * (1.0 - _ramp(f["whiteout"] / max(c, 0.1), 0.35, 0.65))
        * _ramp(-f["spectral_slope"], 0.35, 0.9)
    )
    tone = 0.5 * _ramp(b, 0.05, 0.5) + 0.5 * f["tone_entropy"]
    structure = sum(_ramp(f[f"edges_{k}"], 0.0, 0.25) for k in (2, 4, 8)) / 3
    quality = (
        0.25 * tone
        + 0.30 * structure
        + 0.15 * (1.0 - _ramp(f["centre_distance"], 0.15, 0.8))
        + 0.15 * max(f["symmetry"], 0.0)
        + 0.15 * _ramp(f["colourfulness"], 0.0, 0.2)
    )
    return gate * quality, gate, quality


class HeuristicScorer:
    """Weight-free computational-aesthetics score (module docstring), in [0, 1]."""

    name = "heuristic"
    default_size = HEURISTIC_SIZE
    cache_id = "heuristic"

    def score(self, img: np.ndarray) -> Scored:
        return Scored(heuristic_score(aesthetic_features(img))[0], self.name)
