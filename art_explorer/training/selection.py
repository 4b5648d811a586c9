"""The round gate: which inverse model predict uses after a round, the bundled one or
the round's fine-tuned candidate, judged on held-out curated-like draws.

A round fine-tunes the inverse model on its own data; on pictures people curate that
can make it worse (issue 30: geometry 72.3% → 64.7% after `make iterate`). So the
candidate replaces the bundled model only when it scores better on N held-out
curated-like draws (sampling.sample_curated_like, seeds CURATED_VAL_SEED + i): the
mean of its geometry and layer-count accuracy (training.pretrain.structure_accuracy,
plain argmax, no equivalences). A tie keeps the bundled one.

    sel = selection.keep_better_inverse("checkpoints/inverse")
    print(sel.reason)

`keep_better_inverse` moves a losing candidate aside (NAME-rejected.*), so predict,
which loads checkpoints/inverse when it is there and the bundled model otherwise,
uses the winner without a new option."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_explorer import atomic, utils
from art_explorer.nets import checkpoint_io
from art_explorer.nets import model as M
from art_explorer.scene import sampling, schema

CURATED_VAL_SEED = 2_000_000_011  # held-out curated-like draws (training uses others)
HELD_OUT = 200  # draws the gate scores each model on
EVAL_SIZE = 64  # px; a model whose input_size is 0 sees pictures at this side
# A drawn target shows something and is not a wash: lit share of pixels whose
# brightest channel reaches LIT_LEVEL (as training.pretrain.draw_target).
LIT_LEVEL, MIN_LIT, MAX_LIT = 8, 0.003, 0.7


@dataclass
class Selection:
    """The gate's verdict: `use` is the stem predict should load ("candidate" or
    "bundled" says which), `reason` one line for the round's report, and each
    model's accuracy ({} when it could not be loaded)."""

    use: str
    chosen: str
    reason: str
    bundled: dict[str, float] = field(default_factory=dict)
    candidate: dict[str, float] = field(default_factory=dict)
    held_out: int = 0


def curated_like_targets(n: int, size: int, seed: int = CURATED_VAL_SEED) -> list[Any]:
    """n held-out (complete flat params, uint8 (size, size, 3) render) curated-like
    draws, draw i from random.Random(seed + i) redrawn while nearly empty or washed
    out, so any prefix is the same set."""
    from renderer.scene import render

    out = []
    for i in range(n):
        rng = random.Random(seed + i)
        while True:
            params = schema.validate_params(sampling.sample_curated_like(rng))
            img = render(params, size)
            lit = float((img.max(-1) >= LIT_LEVEL).mean())
            if MIN_LIT <= lit <= MAX_LIT:
                out.append((params, img))
                break
    return out


def score_inverse(net: M.InverseModel, n: int = HELD_OUT) -> dict[str, float]:
    """The model's structure accuracy on the first n held-out curated-like draws at
    its own input size, plus "score" = mean(geometry, layers) in [0, 1]."""
    from art_explorer.training import pretrain  # not at the top: loads the trainer

    size = net.cfg.input_size or EVAL_SIZE
    val = curated_like_targets(n, size)
    images = torch.from_numpy(np.stack([img for _, img in val])).permute(0, 3, 1, 2)
    res = pretrain.structure_accuracy(net, images, [p for p, _ in val])
    res["score"] = (res["geometry"] + res["layers"]) / 2
    return {k: round(v, 4) for k, v in res.items()}


def _load(stem: str | Path) -> tuple[M.InverseModel | None, str]:
    """(model, "") or (None, why it cannot be used)."""
    if not checkpoint_io.checkpoint_exists(stem):
        return None, f"no checkpoint at {stem}"
    try:
        net = checkpoint_io.load_checkpoint(stem, "inverse")
    except checkpoint_io.CheckpointError as e:
        return None, f"{stem} does not match this code ({e})"
    assert isinstance(net, M.InverseModel)
    return net, ""


def _summary(acc: dict[str, float]) -> str:
    return (
        f"geometry {acc['geometry']:.1%}, layers {acc['layers']:.1%}, "
        f"score {acc['score']:.3f}"
    )


def choose_inverse(
    candidate: str | Path,
    bundled: str | Path | None = None,
    n: int = HELD_OUT,
) -> Selection:
    """Score the bundled inverse model (default models/inverse-pretrained) and the
    round's candidate on n held-out curated-like draws; the candidate wins only with
    a strictly higher score. Either one missing or not matching this code loses."""
    bundled = bundled or utils.ROOT / checkpoint_io.BUNDLED_INVERSE_PATH
    nets = {"bundled": _load(bundled), "candidate": _load(candidate)}
    acc = {k: score_inverse(net, n) if net else {} for k, (net, _) in nets.items()}
    stems = {"bundled": str(bundled), "candidate": str(candidate)}
    if not acc["candidate"] or not acc["bundled"]:
        chosen = "bundled" if acc["bundled"] else "candidate"
        other = "candidate" if chosen == "bundled" else "bundled"
        reason = f"{chosen} inverse model: the {other} is unusable ({nets[other][1]})"
    else:
        better = acc["candidate"]["score"] > acc["bundled"]["score"]
        chosen = "candidate" if better else "bundled"
        reason = (
            f"{chosen} inverse model: on {n} held-out curated-like draws the round's "
            f"candidate has {_summary(acc['candidate'])}, the bundled one "
            f"{_summary(acc['bundled'])}"
            + ("" if better else " (the candidate must score higher to replace it)")
        )
    return Selection(stems[chosen], chosen, reason, acc["bundled"], acc["candidate"], n)


def keep_better_inverse(
    candidate: str | Path,
    bundled: str | Path | None = None,
    n: int = HELD_OUT,
) -> Selection:
    """choose_inverse, then act on it: a losing candidate's files are renamed to
    NAME-rejected.* (so predict falls back to the bundled model) and the verdict is
    written beside them as NAME-selection.json."""
    sel = choose_inverse(candidate, bundled, n)
    stem = Path(candidate)
    if sel.chosen == "bundled":
        for suffix in (".json", ".safetensors"):
            f = stem.with_suffix(suffix)
            if f.exists():
                f.replace(stem.with_name(f"{stem.name}-rejected{suffix}"))
    report = stem.with_name(f"{stem.name}-selection.json")
    if report.parent.is_dir():
        atomic.atomic_write_text(report, json.dumps(asdict(sel), indent=1))
    return sel
