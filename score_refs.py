"""Aesthetic scoring of the references → references/refs-scored.jsonl (pipeline step 3).

    python score_refs.py                      # auto scorer, cached
    python score_refs.py --fresh              # ignore the cache
    python score_refs.py --scorer heuristic   # the weight-free scorer

Each ref of references/refs.jsonl is rendered through the renderer's HTTP API
(`rendering.RendererClient`, the bundled renderer is started when nothing answers on
this machine), scored in [0, 1] (higher = more striking), and the refs are written
to references/refs-scored.jsonl sorted by score, highest first, one line each:
``{"params": <the refs line as written>, "score": s, "scorer": "<name>", "line": N}``
(read back by `refs_io.load_scored_refs`): the original pipeline's layout (its
score_refs.py stores the prefixed ref line under "params" and keys its score map on
it; it reads "params" and "score" and ignores the rest). The top and bottom five
are printed, and a contact sheet of all refs in score order (the score under each
tile) is written to references/refs-scored.png. Scores are cached in
references/.score-cache.json by scorer (and render size) +
`schema.canonical_json(params)`, so a second run only scores refs that are new or
changed; `--fresh` ignores the cache.

Scorers (`create_scorer`):

- ``qwen2-vl``: Qwen2-VL-2B-Instruct (transformers) looks at the render (448² by
  default) and answers one number in [0, 1]: how striking the image is as
  generative art. Greedy decoding of a few tokens; the first number of the reply
  is the score ("85%" → 0.85, "8/10" → 0.8, a bare 7 → 0.7 on a 0–10 scale, 85 →
  0.85 on a 0–100 one; clamped). A reply with no number gets a warning and the
  heuristic's score of the same render instead; its line says so
  (``"scorer": "heuristic", "fallback_from": "qwen2-vl", "reply": ...``). Weights
  come from the local Hugging Face cache (``HF_HUB_CACHE``, default
  ~/.cache/huggingface/hub) or a local folder (``--vlm-model DIR``); they are only
  downloaded with ``--allow-download``. fp16 on CUDA, fp32 on CPU.
- ``heuristic`` (weight-free, the default whenever the VLM's weights are not on
  this machine): computational-aesthetics measures of the render, see below.
- ``auto`` (default): ``qwen2-vl`` when its weights are found locally, else
  ``heuristic``; says once which one and why.

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

Exit codes: 0 ok; 1 with a one-line message for an unreadable refs line (file +
line), a renderer that cannot be reached, or VLM weights that cannot be found.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from art_explorer import atomic, utils
from art_explorer.data import refs_io
from art_explorer.scene import rendering, schema

DEFAULT_VLM = "Qwen/Qwen2-VL-2B-Instruct"
SCORERS = ("auto", "qwen2-vl", "heuristic")
CACHE_VERSION = 1
HEURISTIC_SIZE = 256  # px: the heuristic measures every render at this size
VLM_PROMPT = (
    "This picture is a piece of generative art: thin glowing lines on black. "
    "How striking is it as generative art? Answer with one number between 0 and 1 "
    "(0 = dull or empty, 1 = stunning). Reply with the number only."
)
SHEET_CELL = 128  # px per contact-sheet tile
SHEET_COLS = 10

Log = Callable[[str], None]


class ScorerError(RuntimeError):
    """A scorer that cannot be set up (unknown name, weights not found)."""


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


# ----------------------------------------------------------------------------------
# The weight-free scorer


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
    """The heuristic's measures (see the module docstring) of a render.

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


# ----------------------------------------------------------------------------------
# The VLM scorer

_NUMBER_RE = re.compile(r"(-?(?:\d+(?:\.\d*)?|\.\d+))\s*(%|/\s*(\d+(?:\.\d+)?))?")


def parse_score(reply: str) -> float | None:
    """The first number of a VLM reply → a score in [0, 1], or None when there is none.

    "0.85" → 0.85; "85%" → 0.85; "8/10" → 0.8; a bare number above 1 is read on a
    0–10 scale up to 10 and a 0–100 one above (7 → 0.7, 85 → 0.85); then clamped."""
    m = _NUMBER_RE.search(reply)
    if m is None:
        return None
    x = float(m.group(1))
    if m.group(2) == "%":
        x /= 100.0
    elif m.group(3) is not None:
        den = float(m.group(3))
        x = x / den if den > 0 else x
    elif x > 10.0:
        x /= 100.0
    elif x > 1.0:
        x /= 10.0
    return min(1.0, max(0.0, x))


def _has_weights(folder: Path) -> bool:
    """A model folder with config.json and complete safetensors weights."""
    if not (folder / "config.json").is_file():
        return False
    if (folder / "model.safetensors").is_file():
        return True
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return False
    try:
        shards = set(json.loads(index.read_text())["weight_map"].values())
    except (OSError, ValueError, KeyError, AttributeError):
        return False
    return all((folder / s).is_file() for s in shards)


def find_local_vlm(model: str, cache_dir: str | None = None) -> Path | None:
    """A folder holding `model`'s weights on this machine, or None.

    model: a local folder, or a hub id looked up in the Hugging Face cache the way
    transformers does offline (HF_HUB_CACHE / HF_HOME, default
    ~/.cache/huggingface/hub; the revision that refs/main points to)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder if _has_weights(folder) else None
    try:
        from huggingface_hub import snapshot_download

        found = Path(
            snapshot_download(model, cache_dir=cache_dir, local_files_only=True)
        )
    except Exception:  # not cached, or not a valid repo id: not found either way
        return None
    return found if _has_weights(found) else None


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "~/.cache/huggingface/hub"


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Qwen2VLScorer:
    """Qwen2-VL (transformers `Qwen2VLForConditionalGeneration` + `AutoProcessor`)
    asked for one number in [0, 1]; weights load on the first score() call.

    model: hub id or local folder. source: where the weights are (a local folder,
    or the hub id when downloads are allowed). fp16 on CUDA, fp32 on CPU."""

    name = "qwen2-vl"
    default_size = 448

    def __init__(
        self,
        model: str,
        source: str,
        device: str | None = None,
        allow_download: bool = False,
        max_new_tokens: int = 8,
    ) -> None:
        self.model_id = model
        self.source = source
        self.device = device
        self.allow_download = allow_download
        self.max_new_tokens = max_new_tokens
        self.cache_id = f"qwen2-vl:{model}"
        self._fallback = HeuristicScorer()
        self._model: Any = None
        self._processor: Any = None

    def load(self) -> None:
        """Load processor and weights (once)."""
        if self._model is not None:
            return
        import torch
        import transformers
        from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

        self.device = self.device or _default_device()
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        # transformers ≥ 4.56 names it `dtype`; older ones `torch_dtype`.
        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
        local_only = not self.allow_download
        load_kw: dict[str, Any] = {dtype_kw: dtype, "local_files_only": local_only}
        self._processor = AutoProcessor.from_pretrained(
            self.source, local_files_only=local_only
        )
        model: Any = Qwen2VLForConditionalGeneration.from_pretrained(
            self.source, **load_kw
        )
        self._model = model.to(self.device).eval()

    def ask(self, img: np.ndarray) -> str:
        """The model's raw reply to VLM_PROMPT about img (float (H, W, 3) in [0, 1])."""
        import torch
        from PIL import Image

        self.load()
        proc, model = self._processor, self._model
        pil = Image.fromarray((np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
        messages = [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": VLM_PROMPT}],
            }
        ]
        text = proc.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        inputs = proc(text=[text], images=[pil], return_tensors="pt").to(model.device)
        tok = proc.tokenizer
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sampling knobs unused by greedy decoding
            out = model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id
                if tok.pad_token_id is not None
                else tok.eos_token_id,
            )
        new = out[:, inputs["input_ids"].shape[1] :]  # (1, new tokens)
        return proc.batch_decode(new, skip_special_tokens=True)[0].strip()

    def score(self, img: np.ndarray) -> Scored:
        reply = self.ask(img)
        value = parse_score(reply)
        if value is not None:
            return Scored(value, self.name, reply=reply)
        fallback = self._fallback.score(img)
        return Scored(fallback.score, fallback.scorer, self.name, reply or "(empty)")


def create_scorer(
    name: str,
    model: str = DEFAULT_VLM,
    device: str | None = None,
    allow_download: bool = False,
    log: Log = print,
) -> HeuristicScorer | Qwen2VLScorer:
    """The scorer called `name`:

    - "qwen2-vl": Qwen2VLScorer on `model` (hub id or local folder; found in the
      local HF cache, or downloaded when allow_download); ScorerError when its
      weights are not on this machine and downloads are not allowed.
    - "heuristic": HeuristicScorer, weight-free.
    - "auto": "qwen2-vl" when `model`'s weights are on this machine (or downloads
      are allowed), else "heuristic"; logs once which one it uses and why.
    """
    if name == "heuristic":
        return HeuristicScorer()
    if name not in ("qwen2-vl", "auto"):
        raise ScorerError(f"unknown scorer {name!r} (one of {', '.join(SCORERS)})")
    local = find_local_vlm(model)
    if local is not None or allow_download:
        source = str(local) if local is not None else model
        where = f"weights in {local}" if local is not None else "downloads allowed"
        if name == "auto":
            log(f"scorer: qwen2-vl ({model}; {where})")
        return Qwen2VLScorer(model, source, device, allow_download)
    if Path(model).expanduser().is_dir():
        missing = f"{model} has no config.json with complete safetensors weights"
    elif model.startswith(("/", ".", "~")):
        missing = f"{model}: no such folder"
    else:
        missing = f"{model} is not in the local Hugging Face cache ({_hf_cache_dir()})"
    if name == "auto":
        log(f"scorer: heuristic (weight-free): {missing}")
        return HeuristicScorer()
    raise ScorerError(
        f"Qwen2-VL weights not found: {missing}. Fetch them on a connected machine "
        f"(`huggingface-cli download {DEFAULT_VLM}`), pass --vlm-model DIR, add "
        "--allow-download, or use --scorer heuristic."
    )


# ----------------------------------------------------------------------------------
# The cache


class ScoreCache:
    """Scores by key in a JSON file {"version": 1, "scores": {key: record}}, written
    atomically. An unreadable file is ignored with a warning (it only holds scores
    that can be made again) and replaced on the next save."""

    def __init__(self, path: str | Path, log: Log = print) -> None:
        self.path = Path(path)
        self.scores: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return
        try:
            obj = json.loads(self.path.read_text(encoding="utf-8"))
            if obj.get("version") != CACHE_VERSION:
                raise ValueError(f"version {obj.get('version')!r}")
            self.scores = {
                str(k): dict(v)
                for k, v in obj["scores"].items()
                if isinstance(v, dict) and isinstance(v.get("score"), (int, float))
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log(f"warning: ignoring unreadable score cache {self.path} ({e})")

    @staticmethod
    def key(scorer: Scorer, size: int, params: dict[str, Any]) -> str:
        return f"{scorer.cache_id}@{size}|{schema.canonical_json(params)}"

    def save(self) -> None:
        atomic.write_json(self.path, {"version": CACHE_VERSION, "scores": self.scores})


# ----------------------------------------------------------------------------------
# The script


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f = ap.add_argument_group("files")
    f.add_argument(
        "--refs",
        default="references/refs.jsonl",
        help="refs to score, one Leva-prefixed JSON object a line "
        "(references/refs.jsonl)",
    )
    f.add_argument(
        "--out",
        default="references/refs-scored.jsonl",
        help="scored refs, highest score first (references/refs-scored.jsonl)",
    )
    f.add_argument(
        "--cache",
        default="references/.score-cache.json",
        help="score cache (references/.score-cache.json)",
    )
    f.add_argument(
        "--fresh",
        action="store_true",
        help="ignore the cache: score every ref again (and store the new scores)",
    )
    f.add_argument(
        "--sheet",
        default=None,
        help="contact sheet of the refs in score order; '' for none "
        "(default: --out with .png, references/refs-scored.png)",
    )
    s = ap.add_argument_group("scorer")
    s.add_argument(
        "--scorer",
        choices=SCORERS,
        default="auto",
        help="auto: qwen2-vl when its weights are on this machine, else heuristic "
        "(auto)",
    )
    s.add_argument(
        "--vlm-model",
        default=DEFAULT_VLM,
        help=f"Qwen2-VL hub id or local folder ({DEFAULT_VLM})",
    )
    s.add_argument(
        "--allow-download",
        action="store_true",
        help="let transformers download the VLM weights when they are not cached "
        "(needs the internet; off by default)",
    )
    s.add_argument(
        "--device",
        default=None,
        help="torch device for the VLM, e.g. cuda or cpu (cuda when available)",
    )
    s.add_argument(
        "--size",
        type=int,
        default=None,
        help="render size in px (default: the scorer's, 256 heuristic, 448 qwen2-vl)",
    )
    r = ap.add_argument_group("renderer")
    r.add_argument(
        "--renderer-url",
        default=None,
        help="POST /api/raster URL (default $RENDERER_URL or "
        "http://localhost:3000/api/raster; started here when nothing answers)",
    )
    r.add_argument(
        "--no-autostart",
        action="store_true",
        help="do not start the bundled renderer when nothing answers locally",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=4,
        help="renders in flight at once (4)",
    )
    args = ap.parse_args(argv)
    if args.sheet is None:
        args.sheet = str(Path(args.out).with_suffix(".png"))
    return args


def _thumbnail(img: np.ndarray) -> Any:
    """float (H, W, 3) in [0, 1] → PIL tile of at most SHEET_CELL px."""
    from PIL import Image

    u8 = (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(u8)
    if im.width > SHEET_CELL:
        im = im.resize((SHEET_CELL, SHEET_CELL), Image.Resampling.LANCZOS)
    return im


def main(args: argparse.Namespace) -> list[tuple[dict[str, Any], float]]:
    """Score every ref; returns [(flat params, score)] highest first.

    Raises refs_io.RefsError (unreadable refs line), rendering.RendererError (renderer
    unreachable or refusing) and ScorerError (VLM weights not found); on Ctrl-C,
    KeyboardInterrupt after saving the scores made so far to the cache."""
    from tqdm import tqdm

    log: Log = print
    if not Path(args.refs).exists():
        # A mistyped path must not wipe the ranking that quality breeding uses.
        raise refs_io.RefsError(f"{args.refs}: no such refs file")
    refs = refs_io.load_refs_numbered(args.refs)
    out_path = Path(args.out)
    if not refs:
        log(f"no refs in {args.refs}: nothing to score (add some with make save-ref)")
        atomic.atomic_write_text(out_path, "")
        return []
    scorer = create_scorer(
        args.scorer, args.vlm_model, args.device, args.allow_download, log
    )
    size = args.size or scorer.default_size
    cache = ScoreCache(args.cache, log)
    keys = [ScoreCache.key(scorer, size, p) for _, p in refs]
    todo: list[int] = []  # indices to score: new or changed refs (once per key)
    seen: set[str] = set()
    for i, k in enumerate(keys):
        if (args.fresh or k not in cache.scores) and k not in seen:
            todo.append(i)
        seen.add(k)
    to_render = list(range(len(refs))) if args.sheet else todo
    thumbs: dict[int, Any] = {}
    if to_render:
        renderer = (
            nullcontext(rendering.renderer_url(args.renderer_url))
            if args.no_autostart
            else rendering.ensure_renderer(args.renderer_url, log=log)
        )
        with renderer as url:
            client = rendering.RendererClient(url=url, pool=max(8, args.workers))
            new = 0
            try:
                renders = rendering.render_in_order(
                    client.render, [refs[i][1] for i in to_render], size, args.workers
                )
                bar = tqdm(
                    zip(to_render, renders, strict=True),
                    total=len(to_render),
                    desc=f"scoring ({scorer.name}, {size}px)",
                    unit="ref",
                )
                todo_set = set(todo)
                for i, img in bar:
                    if i in todo_set:
                        result = scorer.score(img)
                        if result.fallback_from:
                            tqdm.write(
                                f"warning: {args.refs} line {refs[i][0]}: "
                                f"{result.fallback_from} replied {result.reply!r}, "
                                f"no number in it; using the heuristic's "
                                f"{result.score:.3f}",
                                file=sys.stderr,
                            )
                        cache.scores[keys[i]] = result.record()
                        new += 1
                        if new % 10 == 0:
                            cache.save()
                    if args.sheet:
                        thumbs[i] = _thumbnail(img)
            except KeyboardInterrupt:
                log(
                    f"stopped: the {new} new scores are kept in {cache.path}; run "
                    "again to score the rest"
                )
                raise
            finally:
                client.close()
                if new:
                    cache.save()
    order = sorted(range(len(refs)), key=lambda i: (-cache.scores[keys[i]]["score"], i))
    records = [cache.scores[keys[i]] for i in order]
    written = refs_io.read_refs_lines(args.refs)
    lines = [
        json.dumps({"params": written[refs[i][0]], **rec, "line": refs[i][0]})
        for i, rec in zip(order, records, strict=True)
    ]
    atomic.atomic_write_text(out_path, "".join(x + "\n" for x in lines))
    log(
        f"scored {len(todo)} refs, {len(refs) - len(todo)} from the cache "
        f"({scorer.name}, {size}px) → {out_path}"
    )
    shown = order if len(order) <= 10 else order[:5] + order[-5:]
    for k, i in enumerate(shown):
        if k == 5 and len(order) > 10:
            log("  ...")
        rec = cache.scores[keys[i]]
        tag = f"  ({rec['scorer']})" if rec["scorer"] != scorer.name else ""
        log(
            f"  {rec['score']:.3f}  line {refs[i][0]:>3}  "
            f"{schema.describe(refs[i][1])}{tag}"
        )
    if args.sheet:
        labels = [
            f"#{refs[i][0]} {rec['score']:.2f}"
            for i, rec in zip(order, records, strict=True)
        ]
        tiles = [thumbs[i] for i in order]
        sheet = utils.contact_sheet(tiles, labels, cols=SHEET_COLS, cell=SHEET_CELL)
        atomic.write_png(args.sheet, sheet)
        log(f"contact sheet → {args.sheet}")
    return [
        (refs[i][1], float(rec["score"])) for i, rec in zip(order, records, strict=True)
    ]


if __name__ == "__main__":
    try:
        main(parse_args())
    except (refs_io.RefsError, rendering.RendererError, ScorerError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)  # what was scored is in the cache (main said so)
