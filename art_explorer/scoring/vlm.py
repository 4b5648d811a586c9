"""A vision-language model as an aesthetic scorer: Qwen2-VL asked how striking a
render is, its reply read as one number in [0, 1]; its weights found on this machine.

Greedy decoding of a few tokens; the first number of the reply is the score ("85%" →
0.85, "8/10" → 0.8, a bare 7 → 0.7 on a 0–10 scale, 85 → 0.85 on a 0–100 one;
clamped). A reply with no number gets the heuristic's score of the same render
instead, marked so (``fallback_from``). Weights come from the local Hugging Face
cache (``HF_HUB_CACHE``) or a local folder; they are only downloaded when allowed.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from art_explorer.scoring.aesthetic import HeuristicScorer, Scored

DEFAULT_VLM = "Qwen/Qwen2-VL-2B-Instruct"
VLM_PROMPT = (
    "This picture is a piece of generative art: thin glowing lines on black. "
    "How striking is it as generative art? Answer with one number between 0 and 1 "
    "(0 = dull or empty, 1 = stunning). Reply with the number only."
)


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


def hf_cache_dir() -> str:
    """Where the Hugging Face hub cache is on this machine."""
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
