"""Pretraining of the inverse model on renders made on the fly (no data on disk): the
render stream, the replay buffer, the structure loss and accuracy, and the run."""

from __future__ import annotations

import random
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer.nets import checkpoint_io
from art_explorer.nets.backbones import SCENE_CNN
from art_explorer.nets.config import InverseConfig
from art_explorer.nets.inputs import batch_encode
from art_explorer.nets.inverse import InverseModel
from art_explorer.scene import encoding, sampling, schema
from art_explorer.scene.structure import STRUCTURE_KEYS
from art_explorer.training.losses import inverse_param_loss
from art_explorer.training.schedule import clock_lr

DEFAULT_OUT = "models/inverse-pretrained"
LIT_LEVEL = 8  # a pixel whose brightest channel reaches this (of 255) is lit
MIN_LIT, MAX_LIT = 0.003, 0.7  # a drawn target shows something and is not a wash
VAL_SEED = 1_000_000_007  # the held-out refs-like draws (training draws other seeds)


@dataclass
class PretrainArgs:
    """Pretrain the inverse model on renders made on the fly (no data on disk)."""

    out: str = DEFAULT_OUT
    """checkpoint stem to write"""
    init: str | None = None
    """start from this inverse checkpoint's weights"""
    init_other_version: bool = False
    """let --init be a checkpoint of an older schema version with the same params (its
    pictures differ: a warm start, then trained on new renders)"""
    minutes: float = 60.0
    """training time budget"""
    save_every: float = 5.0
    """minutes between checkpoints"""
    seed: int = 0
    """seed of the training draws"""
    threads: int = 1
    """torch threads (trainer)"""
    evaluate: str | None = None
    """only measure this inverse checkpoint (a stem) on the held-out draws (--val):
    each structure head as trained, and the geometry as predict guesses it
    (predict.starts.predict_one: averaged over the picture's mirror images); no training"""
    size: int = 64
    """render side in px"""
    refs_like: float = 0.8
    """share of refs-like draws (the rest of those not curated-like: coverage draws)"""
    curated_like: float = 0.0
    """share of curated-like draws (sampling.sample_curated_like: several layers
    placed by their own transforms), taken before the refs-like share"""
    workers: int = 1
    """render worker processes"""
    fresh: int = 24
    """new renders per step"""
    batch: int = 64
    """batch size (fresh + replay)"""
    buffer: int = 8000
    """replay buffer capacity"""
    val: int = 300
    """held-out refs-like draws"""
    backbone: str = SCENE_CNN
    """see backbones.create_backbone"""
    hidden: int = 256
    """head MLP width"""
    lr: float = 2e-3
    """peak learning rate"""
    structure_weight: float = 1.0
    """extra weight of the structure cross-entropies"""
    argv: list[str] = field(default_factory=list, init=False)
    """the command line, recorded in the sidecar"""


def lit_fraction(img: np.ndarray) -> float:
    """Share of lit pixels of a uint8 (R, R, 3) picture."""
    return float((img.max(-1) >= LIT_LEVEL).mean())


DRAWS = {
    "refs": sampling.sample_refs_like,
    "curated": sampling.sample_curated_like,
    "any": sampling.sample_params,
}


def draw_target(
    rng: random.Random, size: int, refs_like: bool = True, kind: str | None = None
) -> tuple[dict[str, Any], np.ndarray]:
    """A random scene that shows something → (complete flat params, uint8 (R, R, 3)
    render). kind: "refs" (sampling.sample_refs_like), "curated"
    (sample_curated_like) or "any" (sample_params); None: "refs" when refs_like.
    Refs- and curated-like draws are redrawn while nearly empty or washed out (lit
    share outside [MIN_LIT, MAX_LIT]), as nobody curates those; coverage draws are
    taken as they come."""
    from renderer.scene import render

    kind = kind or ("refs" if refs_like else "any")
    while True:
        params = schema.validate_params(DRAWS[kind](rng))
        img = render(params, size)
        if kind == "any" or MIN_LIT <= lit_fraction(img) <= MAX_LIT:
            return params, img


def refs_like_targets(n: int, size: int, seed: int = VAL_SEED) -> list[Any]:
    """The held-out refs-like draws: n (params, uint8 render) pairs, draw i from
    random.Random(seed + i), so any prefix is the same set."""
    return [draw_target(random.Random(seed + i), size) for i in range(n)]


class RenderStream(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """Endless (uint8 (3, R, R) image, encoding) pairs rendered in-process; each
    worker draws from its own seed."""

    def __init__(
        self, size: int, refs_like: float, seed: int, curated_like: float = 0.0
    ) -> None:
        self.size, self.refs_like, self.seed = size, refs_like, seed
        self.curated_like = curated_like

    def __iter__(self) -> Iterator[tuple[torch.Tensor, dict[str, np.ndarray]]]:
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rng = random.Random(self.seed * 1000 + wid + 1)
        while True:
            u = rng.random()
            kind = "curated" if u < self.curated_like else "refs"
            if kind == "refs" and rng.random() >= self.refs_like:
                kind = "any"
            params, img = draw_target(rng, self.size, kind=kind)
            enc = encoding.encode_params(params).as_dict()
            yield torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), enc


class Replay:
    """A ring buffer of rendered pairs: put fresh batches in, sample old ones."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.n, self.pos = capacity, 0, 0
        self.images: torch.Tensor | None = None
        self.enc: dict[str, torch.Tensor] = {}

    def put(self, images: torch.Tensor, enc: dict[str, torch.Tensor]) -> None:
        if self.images is None:
            self.images = images.new_zeros((self.capacity, *images.shape[1:]))
            self.enc = {
                k: v.new_zeros((self.capacity, *v.shape[1:])) for k, v in enc.items()
            }
        idx = (self.pos + torch.arange(images.shape[0])) % self.capacity
        self.images[idx] = images
        for k, v in enc.items():
            self.enc[k][idx] = v
        self.pos = int(idx[-1] + 1) % self.capacity
        self.n = min(self.capacity, self.n + images.shape[0])

    def sample(self, k: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert self.images is not None
        idx = torch.randint(0, self.n, (k,))
        return self.images[idx], {key: v[idx] for key, v in self.enc.items()}


def structure_loss(out: dict[str, Any], enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of the structure categoricals and the layer count."""
    terms = [
        F.cross_entropy(out["cat"][schema.CAT_KEYS.index(k)], enc["cat"][:, i])
        for i, k in ((schema.CAT_KEYS.index(k), k) for k in STRUCTURE_KEYS)
    ]
    terms.append(F.cross_entropy(out["n_layers"], enc["n_layers"]))
    return torch.stack(terms).mean()


def as_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, R, R) → float (B, 3, R, R) in [0, 1]."""
    return images.float() / 255


@torch.no_grad()
def structure_accuracy(
    net: InverseModel, images: torch.Tensor, params: list[dict[str, Any]]
) -> dict[str, float]:
    """Plain accuracy (no equivalences; bench/inverse.py counts those) of every
    structure categorical, geometry top-3 and the layer count on a held-out set."""
    net.eval()
    out = net(as_input(images))
    enc = batch_encode(params)
    res: dict[str, float] = {}
    for k in STRUCTURE_KEYS:
        j = schema.CAT_KEYS.index(k)
        res[k] = float((out["cat"][j].argmax(-1) == enc["cat"][:, j]).float().mean())
    j = schema.CAT_KEYS.index("geometry")
    top3 = out["cat"][j].topk(3, -1).indices
    res["geometry_top3"] = float(
        (top3 == enc["cat"][:, j, None]).any(-1).float().mean()
    )
    res["layers"] = float(
        (out["n_layers"].argmax(-1) == enc["n_layers"]).float().mean()
    )
    net.train()
    return res


def evaluate(stem: str, n: int, size: int) -> dict[str, float]:
    """structure_accuracy of the checkpoint at `stem` on the first n held-out
    refs-like draws, plus geometry / geometry_top3 "as predict guesses", by
    predict.starts.predict_one (the geometry averaged over the picture's mirror images)."""
    from art_explorer.predict.starts import predict_one

    if not checkpoint_io.checkpoint_exists(stem):
        raise SystemExit(f"--evaluate {stem}: no such checkpoint")
    try:
        net = checkpoint_io.load_checkpoint(stem, "inverse")
    except checkpoint_io.CheckpointError as e:
        raise SystemExit(f"--evaluate: {e}") from None
    assert isinstance(net, InverseModel)
    val = refs_like_targets(n, size)
    images = torch.from_numpy(np.stack([img for _, img in val])).permute(0, 3, 1, 2)
    res = structure_accuracy(net, images, [p for p, _ in val])
    j = schema.CAT_KEYS.index("geometry")
    options = list(schema.PARAM["geometry"].options)
    top1 = top3 = 0
    for params, img in val:
        enc = predict_one(net, img.astype(np.float32) / 255)
        truth = options.index(params["geometry"])
        top1 += int(enc["cat"][0, j]) == truth
        top3 += truth in enc["cat_probs"][j][0].topk(3).indices.tolist()
    res["geometry_predict"] = top1 / n
    res["geometry_top3_predict"] = top3 / n
    return {k: round(v, 4) for k, v in res.items()}


def lineage(net: InverseModel) -> list[dict[str, Any]]:
    """The pretraining runs the --init checkpoint came from, newest first (empty
    for a model trained from scratch): its own record, then its lineage."""
    meta = getattr(net, "meta", None) or {}
    own = meta.get("pretrain") if isinstance(meta, dict) else None
    if not isinstance(own, dict):
        return []
    before = own.get("lineage", [])
    record = {k: v for k, v in own.items() if k != "lineage"}
    record["schema_version"] = meta.get("schema_version")
    return [record] + (before if isinstance(before, list) else [])


def build(args: PretrainArgs) -> InverseModel:
    if args.init:
        if not checkpoint_io.checkpoint_exists(args.init):
            raise SystemExit(f"--init {args.init}: no such checkpoint")
        try:
            net = checkpoint_io.load_checkpoint(
                args.init, "inverse", other_schema_version=args.init_other_version
            )
        except checkpoint_io.CheckpointError as e:
            hint = (
                "" if args.init_other_version else " (--init-other-version: warm start)"
            )
            raise SystemExit(f"--init: {e}{hint}") from None
        assert isinstance(net, InverseModel)
        return net
    cfg = InverseConfig(
        backbone=args.backbone, input_size=args.size, hidden=args.hidden
    )
    return InverseModel.build(cfg)


def pretrain(args: PretrainArgs) -> dict[str, Any]:
    """Train on renders made on the fly for args.minutes, writing the checkpoint
    every args.save_every minutes; returns the last sidecar's `pretrain` record."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    command = shlex.join(["python", "pretrain_inverse.py", *args.argv])
    t0 = time.time()
    val = refs_like_targets(args.val, args.size)
    val_images = torch.from_numpy(np.stack([img for _, img in val])).permute(0, 3, 1, 2)
    val_params = [p for p, _ in val]
    print(
        f"held-out: {len(val)} refs-like draws at {args.size}² ({time.time() - t0:.0f} s)"
    )
    net = build(args).train()
    history = lineage(net)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    loader = torch.utils.data.DataLoader(
        RenderStream(args.size, args.refs_like, args.seed, args.curated_like),
        batch_size=args.fresh,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        prefetch_factor=4 if args.workers > 0 else None,
    )
    replay = Replay(args.buffer)
    budget = args.minutes * 60
    start = time.time()
    last_save, rendered, seen = start, 0, 0
    smooth: dict[str, float] = {}
    res: dict[str, Any] = {}
    for step, (images, enc) in enumerate(loader, 1):
        enc = {k: v for k, v in enc.items()}
        replay.put(images, enc)
        rendered += images.shape[0]
        extra = args.batch - images.shape[0]
        if extra > 0 and replay.n > args.batch:
            old_images, old_enc = replay.sample(extra)
            images = torch.cat([images, old_images])
            enc = {k: torch.cat([v, old_enc[k]]) for k, v in enc.items()}
        frac = (time.time() - start) / budget
        for g in opt.param_groups:
            g["lr"] = clock_lr(frac, args.lr)
        out = net(as_input(images))
        loss, parts = inverse_param_loss(out, enc)
        s_loss = structure_loss(out, enc)
        total = loss + args.structure_weight * s_loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        seen += images.shape[0]
        parts["structure"] = float(s_loss.detach())
        for k, v in parts.items():
            smooth[k] = 0.98 * smooth.get(k, v) + 0.02 * v
        if step % 50 == 0 or step in (5, 10, 20):
            print(
                f"step {step} min {(time.time() - start) / 60:.1f} rendered {rendered} "
                f"seen {seen} lr {clock_lr(frac, args.lr):.2e} "
                + " ".join(f"{k} {v:.3f}" for k, v in smooth.items()),
                flush=True,
            )
        done = frac >= 1
        if done or time.time() - last_save >= args.save_every * 60:
            acc = structure_accuracy(net, val_images, val_params)
            res = dict(
                command=command,
                steps=step,
                rendered=rendered,
                seen=seen,
                minutes=round((time.time() - start) / 60, 1),
                size=args.size,
                refs_like_share=args.refs_like,
                curated_like_share=args.curated_like,
                init=args.init,
                val_refs_like=len(val),
                val_seed=VAL_SEED,
                accuracy={k: round(v, 4) for k, v in acc.items()},
                lineage=history,
            )
            checkpoint_io.save_checkpoint(net.eval(), args.out, meta={"pretrain": res})
            net.train()
            print("checkpoint", args.out, res["accuracy"], flush=True)
            last_save = time.time()
        if done:
            break
    return res
