"""Aesthetic scorers by name, through one factory: "heuristic" (weight-free),
"qwen2-vl" (a vision-language model) and "auto" (qwen2-vl when its weights are on
this machine, else heuristic)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from art_explorer.scoring.aesthetic import HeuristicScorer
from art_explorer.scoring.vlm import (
    DEFAULT_VLM,
    Qwen2VLScorer,
    find_local_vlm,
    hf_cache_dir,
)

SCORERS = ("auto", "qwen2-vl", "heuristic")

Log = Callable[[str], None]


class ScorerError(RuntimeError):
    """A scorer that cannot be set up (unknown name, weights not found)."""


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
        missing = f"{model} is not in the local Hugging Face cache ({hf_cache_dir()})"
    if name == "auto":
        log(f"scorer: heuristic (weight-free): {missing}")
        return HeuristicScorer()
    raise ScorerError(
        f"Qwen2-VL weights not found: {missing}. Fetch them on a connected machine "
        f"(`huggingface-cli download {DEFAULT_VLM}`), pass --vlm-model DIR, add "
        "--allow-download, or use --scorer heuristic."
    )
