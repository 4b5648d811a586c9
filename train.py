"""Train the forward model (params → image) or the inverse model (image → params).

    python train.py --stage forward --data data                  # → checkpoints/forward
    python train.py --stage inverse --data data data/quality     # → checkpoints/inverse
    python train.py --stage forward --data data --resume         # continue a run
    torchrun --nproc_per_node 8 train.py --stage forward --data data-shards   # DDP

Data: DIR/images/NNNNNN.png + DIR/params/NNNNNN.json pairs from generate.py, or a
shard folder (generate.py --shards, shards.py), decoded
once into DIR/.cache/train-SIZE.npz (images resized to --size). 10% validation
(seeded); the best epoch by validation is kept at --out, the latest (with optimizer
state, for --resume) at OUT-last. Each epoch writes OUT-curves.png and OUT-val.png
(a validation sheet to look at). Settings default to the profile (config.py: cpu on
a CPU, gpu with CUDA; `--help` shows its values); flags win.

Forward loss (evaluation.md: plain L1/L2 and SSIM reward black on this scene): L1 on
√image with pixels near lit target pixels weighted up, + L1 of 4×-pooled √image (a
coarse target), + 0.5 × perceptual (LPIPS where its weights exist, else the
weight-free multi-scale √L1), + (1 − NCC) of blurred √image.
Inverse loss: MSE / cross-entropy / BCE per head (layers masked to real ones) + the
perceptual distance between the frozen forward model's renders of the predicted and
the true params, ramped in over the first half of the epochs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer import atomic, config, utils
from art_explorer.data import dataset, shards
from art_explorer.nets import checkpoint_io, perceptual_distance
from art_explorer.nets import model as M
from art_explorer.scene import encoding, rendering, schema
from art_explorer.scoring import metrics
from art_explorer.training import cluster

SHEET_ROWS = 4
FORWARD_FLAGS = (  # the config.ForwardConfig fields with a flag: (field, help)
    ("width", "decoder width"),
    ("hidden", "MLP width"),
    ("attn_res", "self-attention at the decoder stage of at most this² px, 0 = none"),
    ("density", "chain canvas px per view px"),
    ("layout_k", "instances per chain in the layout hint, 0 = none"),
    ("layout_res", "the layout hint's side in px"),
)
Log = Callable[[str], None]


def _profile_and_stage(argv: list[str] | None) -> tuple[config.Profile, str]:
    """--profile and --stage read ahead of the full parse, so that the flags' defaults
    (and --help) are the profile's values for that stage."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile", choices=sorted(config.PROFILES), default=None)
    pre.add_argument("--stage", default="forward")
    known, _ = pre.parse_known_args(argv)
    stage = known.stage if known.stage in ("forward", "inverse") else "forward"
    return config.get_profile(known.profile), stage


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; those left out take the profile's values (config.PROFILES) for the
    stage, and --help shows them."""
    prof, stage = _profile_and_stage(argv)
    st: config.ForwardTraining | config.InverseTraining = getattr(prof, stage)
    fm, inv = prof.forward.model, prof.inverse
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Defaults shown: profile {prof.name}, stage {stage} (--profile and "
        "--stage change them).",
    )
    g = ap.add_argument_group("what to train")
    g.add_argument(
        "--stage",
        choices=("forward", "inverse"),
        required=True,
        help="forward: params → image; inverse: image → params",
    )
    g.add_argument(
        "--profile",
        choices=sorted(config.PROFILES),
        default=prof.name,
        help="settings profile: the defaults below (default: gpu with CUDA, else "
        "cpu; here %(default)s)",
    )
    d = ap.add_argument_group("data")
    d.add_argument(
        "--data",
        nargs="+",
        default=["data"],
        help="one or more folders with images/ and params/, or shard folders "
        "(missing ones are skipped) (default: %(default)s)",
    )
    d.add_argument(
        "--size",
        type=int,
        default=prof.size,
        help="training resolution in px (%(default)s)",
    )
    d.add_argument(
        "--max-samples",
        type=int,
        default=0,
        help="use at most this many pairs, 0 = all (%(default)s)",
    )
    d.add_argument(
        "--val-frac", type=float, default=0.1, help="validation share (%(default)s)"
    )
    d.add_argument(
        "--seed", type=int, default=0, help="split/shuffle/init seed (%(default)s)"
    )
    o = ap.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=st.epochs, help="epochs (%(default)s)")
    o.add_argument(
        "--batch-size",
        type=int,
        default=prof.batch_size,
        help="global batch size (%(default)s)",
    )
    o.add_argument(
        "--lr",
        type=float,
        default=st.lr,
        help="AdamW learning rate (%(default)s; spec: forward 2e-4, inverse 1e-4)",
    )
    o.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT-last (model, optimizer, epoch)",
    )
    o.add_argument(
        "--init",
        default=None,
        help="inverse stage: start from this checkpoint's weights and config (e.g. "
        "the bundled models/inverse-pretrained) instead of a fresh backbone",
    )
    m = ap.add_argument_group("models")
    m.add_argument(
        "--out",
        default=str(
            checkpoint_io.DEFAULT_FORWARD_PATH
            if stage == "forward"
            else checkpoint_io.DEFAULT_INVERSE_PATH
        ),
        help="checkpoint path without extension (%(default)s)",
    )
    m.add_argument(
        "--perceptual",
        default="auto",
        help="perceptual distance: auto | lpips | sqrt-ms-l1 (auto: lpips when "
        "its weights exist) (%(default)s)",
    )
    f = ap.add_argument_group("forward model (config.ForwardConfig)")
    for name, what in FORWARD_FLAGS:
        f.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(getattr(fm, name)),
            default=getattr(fm, name),
            help=f"{what} (%(default)s)",
        )
    i = ap.add_argument_group("inverse model")
    i.add_argument(
        "--forward",
        default=checkpoint_io.DEFAULT_FORWARD_PATH,
        help="the frozen forward model for the perceptual loss (%(default)s; "
        "skipped when absent)",
    )
    i.add_argument(
        "--backbone",
        default=None,
        help=f"dinov2 | resnet10t | any timm name (default: the profile's, here "
        f"{inv.backbone}; the profile's dinov2 without weights falls back to "
        "resnet10t, an explicit one is an error)",
    )
    i.add_argument(
        "--backbone-weights",
        default=None,
        help="DINOv2 weights file (.safetensors/.pth) instead of the HF hub cache",
    )
    i.add_argument(
        "--freeze-epochs",
        type=int,
        default=None,
        help="epochs with the backbone frozen before it trains at 0.1× the LR "
        f"(default: the profile's, here {inv.freeze_epochs}, for a pretrained "
        "backbone; 0 from scratch)",
    )
    i.add_argument(
        "--perceptual-weight",
        type=float,
        default=inv.perceptual_weight,
        help="weight of the perceptual loss through the forward model, 0 = off "
        "(%(default)s)",
    )
    i.add_argument(
        "--perceptual-batch",
        type=int,
        default=inv.perceptual_batch,
        help="samples of each batch put through the forward model (%(default)s)",
    )
    i.add_argument(
        "--sqrt-input",
        action=argparse.BooleanOptionalAction,
        default=inv.sqrt_input,
        help="feed the backbone √image (%(default)s)",
    )
    r = ap.add_argument_group("validation sheet (inverse)")
    r.add_argument(
        "--renderer-url",
        default=None,
        help="renderer for the inverse sheet (default: $RENDERER_URL or "
        "localhost:3000; the bundled one is started when nothing answers)",
    )
    r.add_argument(
        "--no-renderer",
        action="store_true",
        help="draw the inverse sheet with the forward model instead",
    )
    h = ap.add_argument_group("hardware")
    h.add_argument(
        "--device",
        default=None,
        help="torch device (default: cuda when available, else cpu)",
    )
    h.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch, 0 = torch's default (%(default)s)",
    )
    h.add_argument(
        "--no-compile",
        action="store_true",
        help="skip torch.compile on CUDA",
    )
    args = ap.parse_args(argv)
    for name in ("epochs", "batch_size", "size", "width", "hidden"):
        v = getattr(args, name)
        if v < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.lr <= 0:
        ap.error("--lr must be > 0")
    if not 0.0 < args.val_frac < 1.0:
        ap.error("--val-frac must be in (0, 1)")
    for name in ("max_samples", "freeze_epochs", "perceptual_batch", "attn_res"):
        if (getattr(args, name) or 0) < 0:
            ap.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.perceptual_weight < 0:
        ap.error("--perceptual-weight must be >= 0")
    return args


# ----------------------------------------------------------------------------------
# Data


@dataclass
class Pairs:
    """Training pairs in memory. images: uint8 (N, 3, R, R); enc: batch_encode-style
    tensors (N, ...); names: "DIR/NNNNNN"."""

    images: torch.Tensor
    enc: dict[str, torch.Tensor]
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx: list[int] | np.ndarray) -> Pairs:
        t = torch.as_tensor(np.asarray(idx, np.int64))
        return Pairs(
            self.images[t],
            {k: v[t] for k, v in self.enc.items()},
            [self.names[i] for i in idx],
        )


def _decode_png(path: Path, size: int) -> np.ndarray:
    """PNG → uint8 (size, size, 3), resized with a box filter when it differs."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BOX)
        return np.asarray(im, np.uint8)


def load_folder(folder: Path, size: int, log: Any = print) -> dict[str, np.ndarray]:
    """All pairs of one folder as arrays, through FOLDER/.cache/train-SIZE-HASH.npz
    (HASH: the schema's, so that encodings of another schema are never reused).

    Only pairs that are new or changed since the cache was written are decoded.
    Returns names (N,) str, images uint8 (N, R, R, 3), and the Encoded arrays."""
    from tqdm import tqdm

    layout = dataset.Layout(folder)
    stems = layout.pair_stems()
    stamps = np.array(
        [
            max(
                (layout.images / f"{s}.png").stat().st_mtime_ns,
                (layout.params / f"{s}.json").stat().st_mtime_ns,
            )
            for s in stems
        ],
        np.int64,
    )
    cache = folder / ".cache" / f"train-{size}-{schema.schema_hash()}.npz"
    old: dict[str, int] = {}
    arrays: dict[str, np.ndarray] = {}
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            old = {n: i for i, n in enumerate(arrays["names"].tolist())}
        except (OSError, ValueError, KeyError) as e:
            log(f"data: ignoring unreadable cache {cache} ({e})")
            arrays, old = {}, {}
    keep = [
        old[s]
        if s in old and arrays["stamps"][old[s]] == stamps[i] and size > 0
        else -1
        for i, s in enumerate(stems)
    ]
    todo = [i for i, k in enumerate(keep) if k < 0]
    images = np.zeros((len(stems), size, size, 3), np.uint8)
    enc: dict[str, np.ndarray] = {}
    probe = encoding.encode_params(schema.default_params()).as_dict()
    for k, v in probe.items():
        enc[k] = np.zeros((len(stems), *v.shape), v.dtype)
    for i, k in enumerate(keep):
        if k >= 0:
            images[i] = arrays["images"][k]
            for key in enc:
                enc[key][i] = arrays[key][k]
    bad: dict[int, str] = {}
    if todo:
        for i in tqdm(todo, desc=f"decode {folder}", unit="img", dynamic_ncols=True):
            s = stems[i]
            try:
                params = json.loads((layout.params / f"{s}.json").read_text())
                e = encoding.encode_params(params).as_dict()
                images[i] = _decode_png(layout.images / f"{s}.png", size)
            except (OSError, ValueError, schema.ParamError) as err:
                bad[i] = f"{s} ({err})"
                continue
            for key in enc:
                enc[key][i] = e[key]
    ok = np.array([i not in bad for i in range(len(stems))], bool)
    if bad:
        first = next(iter(bad.values()))
        log(f"data: skipped {len(bad)} unreadable pair(s) in {folder}, e.g. {first}")
    out = {"names": np.array(stems), "stamps": stamps, "images": images, **enc}
    out = {k: v[ok] for k, v in out.items()}
    if todo:
        import io

        buf = io.BytesIO()
        np.savez(buf, **out)  # type: ignore[arg-type]
        atomic.atomic_write_bytes(cache, buf.getvalue())
    return out


def load_shards(folder: Path, size: int, log: Any = print) -> dict[str, np.ndarray]:
    """All samples of a shard folder as arrays, like load_folder (the same keys),
    through FOLDER/.cache/train-SIZE.npz, which is rebuilt whenever index.json or a
    shard changed. Every sample is decoded into memory: uint8 R²·3 bytes each."""
    from tqdm import tqdm

    index = shards.read_index(folder)
    stamp = json.dumps(
        [[s["name"], (folder / s["name"]).stat().st_mtime_ns] for s in index["shards"]]
    )
    cache = folder / ".cache" / f"train-{size}.npz"
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["source"]) == stamp:
                    return {k: z[k] for k in z.files if k != "source"}
        except (OSError, ValueError, KeyError) as e:
            log(f"data: ignoring unreadable cache {cache} ({e})")
    n = int(index["samples"])
    images = np.zeros((n, size, size, 3), np.uint8)
    probe = encoding.encode_params(schema.default_params()).as_dict()
    enc = {k: np.zeros((n, *v.shape), v.dtype) for k, v in probe.items()}
    names, ok = [], np.zeros(n, bool)
    bad: list[str] = []
    samples = shards.Samples(folder)
    for i, (key, js, png) in enumerate(
        tqdm(samples, total=n, desc=f"decode {folder}", unit="img", dynamic_ncols=True)
    ):
        if i >= n:
            break
        names.append(key)
        try:
            e = encoding.encode_params(json.loads(js)).as_dict()
            images[i] = _decode_png(io.BytesIO(png), size)  # type: ignore[arg-type]
        except (OSError, ValueError, schema.ParamError) as err:
            bad.append(f"{key} ({err})")
            continue
        ok[i] = True
        for k in enc:
            enc[k][i] = e[k]
    if bad:
        log(f"data: skipped {len(bad)} unreadable sample(s) in {folder}, e.g. {bad[0]}")
    m = len(names)
    out = {
        "names": np.array(names),
        "stamps": np.zeros(m, np.int64),
        "images": images[:m],
        **{k: v[:m] for k, v in enc.items()},
    }
    out = {k: v[ok[:m]] for k, v in out.items()}
    buf = io.BytesIO()
    np.savez(buf, source=np.array(stamp), **out)  # type: ignore[arg-type]
    atomic.atomic_write_bytes(cache, buf.getvalue())
    return out


def load_pairs(
    dirs: list[str], size: int, max_samples: int = 0, log: Any = print
) -> Pairs:
    """Pairs from all folders that exist (missing ones are noted and skipped).
    Raises SystemExit with a clear message when none holds data."""
    parts: list[dict[str, np.ndarray]] = []
    for d in dirs:
        folder = Path(d)
        sharded = shards.is_shard_folder(folder)
        layout = dataset.Layout(folder)
        if not sharded and not (layout.images.is_dir() and layout.params.is_dir()):
            log(f"data: {folder} has no images/ and params/; skipped")
            continue
        try:
            dataset.check_data_schema(folder)
        except dataset.DataSchemaError as e:
            raise SystemExit(str(e)) from None
        arr = (load_shards if sharded else load_folder)(folder, size, log)
        if len(arr["names"]) == 0:
            log(f"data: {folder} holds no pairs; skipped")
            continue
        arr["names"] = np.array([f"{folder}/{n}" for n in arr["names"]])
        parts.append(arr)
        log(f"data: {len(arr['names'])} pairs from {folder}")
    if not parts:
        raise SystemExit(
            f"no training data in {' '.join(dirs)}: run `make generate` first "
            "(pairs are DIR/images/NNNNNN.png + DIR/params/NNNNNN.json)"
        )
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(cat["names"])
    if max_samples and n > max_samples:
        cat = {k: v[:max_samples] for k, v in cat.items()}
    enc = {k: torch.from_numpy(cat[k]) for k in M.ENCODED_KEYS}
    images = torch.from_numpy(cat["images"]).permute(0, 3, 1, 2).contiguous()
    return Pairs(images, enc, cat["names"].tolist())


def split(n: int, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle → (train indices, validation indices); at least 1 in each."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * val_frac)), n - 1) if n > 1 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


# ----------------------------------------------------------------------------------
# Losses


@dataclass
class ForwardLossWeights:
    """Terms of the forward loss (all on √image, where thin lines are not negligible).

    lit: extra weight of pixels within 1 px of a lit target pixel in the L1 term;
    coarse: L1 of 4×-average-pooled √image; perceptual: the perceptual distance;
    ncc: 1 − NCC of blurred √gray."""

    lit: float = 4.0
    coarse: float = 1.0
    perceptual: float = 0.5
    ncc: float = 0.5


def forward_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    perceptual: torch.nn.Module,
    w: ForwardLossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """pred, target (B, 3, R, R) in [0, 1] → (scalar loss, its parts as floats)."""
    pred, target = pred.float(), target.float()
    sp, st = metrics.sqrt_image(pred), metrics.sqrt_image(target)
    lit = metrics.dilate(metrics.lit_mask(target), 1).float()  # (B, 1, R, R)
    weight = 1 + w.lit * lit
    l1 = (weight * (sp - st).abs()).mean() / weight.mean()
    parts = {"l1": float(l1.detach())}
    loss = l1
    if w.coarse:
        coarse = (F.avg_pool2d(sp, 4) - F.avg_pool2d(st, 4)).abs().mean()
        loss = loss + w.coarse * coarse
        parts["coarse"] = float(coarse.detach())
    if w.perceptual:
        perc = perceptual(pred, target).mean()
        loss = loss + w.perceptual * perc
        parts["perc"] = float(perc.detach())
    if w.ncc:
        ncc = (
            1
            - metrics.ncc_batch(
                pred,
                target,
                max(0.5, metrics.scaled_sigma(metrics.NCC_SIGMA, pred.shape[-1])),
                1e-4,
            ).mean()
        )
        loss = loss + w.ncc * ncc
        parts["1-ncc"] = float(ncc.detach())
    return loss, parts


def _periodic_mask(
    params: tuple[tuple[str, int], ...], table: dict[str, schema.Param]
) -> torch.Tensor:
    return torch.tensor([table[k].periodic for k, _ in params], dtype=torch.bool)


PERIODIC_CONT = _periodic_mask(schema.CONT_COMPONENTS, schema.PARAM)
PERIODIC_LAYER = _periodic_mask(schema.LAYER_CONT_COMPONENTS, schema.LAYER_PARAM)
# which layer_opt flag governs each layer_cont column (-1: always present)
LAYER_COL_OPT = torch.tensor(
    [
        schema.LAYER_OPTIONAL.index(k) if k in schema.LAYER_OPTIONAL else -1
        for k, _ in schema.LAYER_CONT_COMPONENTS
    ]
)


def _cont_error(
    pred: torch.Tensor, true: torch.Tensor, periodic: torch.Tensor
) -> torch.Tensor:
    """Squared error in [0, 1] units; for angles the wrap-around-aware
    (1 − cos 2πd)/(2π²), equal to d² for small d."""
    d = pred - true
    circ = (1 - torch.cos(2 * math.pi * d)) / (2 * math.pi**2)
    return torch.where(periodic.to(d.device), circ, d * d)


def inverse_param_loss(
    out: dict[str, Any], enc: dict[str, torch.Tensor], cont_weight: float = 10.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Head outputs vs the true encoding → (scalar loss, parts). Continuous MSE terms
    are scaled by cont_weight so that they weigh like the cross-entropies."""
    L = schema.MAX_LAYERS
    cont = _cont_error(out["cont"], enc["cont"], PERIODIC_CONT).mean()
    cat = torch.stack(
        [F.cross_entropy(lg, enc["cat"][:, i]) for i, lg in enumerate(out["cat"])]
    ).mean()
    bools = F.binary_cross_entropy_with_logits(out["bools"], enc["bools"])
    n_layers = F.cross_entropy(out["n_layers"], enc["n_layers"])
    real = (
        torch.arange(L, device=enc["n_layers"].device)[None] < enc["n_layers"][:, None]
    ).float()  # (B, 5)
    opt = enc["layer_opt"]
    col_opt = LAYER_COL_OPT.to(opt.device)
    present = torch.where(
        col_opt[None, None] >= 0,
        opt[:, :, col_opt.clamp(min=0)],
        torch.ones_like(opt[:, :, :1]),
    )
    cmask = real[:, :, None] * present  # (B, 5, NLC)
    lc_err = _cont_error(out["layer_cont"], enc["layer_cont"], PERIODIC_LAYER)
    layer_cont = (lc_err * cmask).sum() / cmask.sum().clamp(min=1)
    lo = F.binary_cross_entropy_with_logits(
        out["layer_opt"], opt, reduction="none"
    ).mean(-1)
    layer_opt = (lo * real).sum() / real.sum().clamp(min=1)
    gmask = real * opt[:, :, schema.LAYER_OPTIONAL.index("geometry")]
    ge = F.cross_entropy(
        out["layer_geom"].flatten(0, 1), enc["layer_geom"].flatten(), reduction="none"
    ).view_as(gmask)
    layer_geom = (ge * gmask).sum() / gmask.sum().clamp(min=1)
    parts = dict(
        cont=cont,
        cat=cat,
        bools=bools,
        n_layers=n_layers,
        layer_cont=layer_cont,
        layer_opt=layer_opt,
        layer_geom=layer_geom,
    )
    loss = (
        cont_weight * (cont + layer_cont)
        + cat
        + bools
        + n_layers
        + layer_opt
        + layer_geom
    )
    return loss, {k: float(v.detach()) for k, v in parts.items()}


# ----------------------------------------------------------------------------------
# Schedule, batches, checkpoints of a run


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine from base to 5% of base."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def batches(
    n: int, batch_size: int, gen: torch.Generator | None
) -> Iterator[torch.Tensor]:
    """Index batches over n items, shuffled when a generator is given; the last short
    batch is dropped when shuffling (unless it is the only one)."""
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    stop = n if gen is None or n <= batch_size else n - n % batch_size
    for i in range(0, stop, batch_size):
        yield order[i : i + batch_size]


def to_device(
    enc: dict[str, torch.Tensor], idx: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    return {k: v[idx].to(device, non_blocking=True) for k, v in enc.items()}


def images_at(pairs: Pairs, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, 3, R, R) float in [0, 1] on device."""
    return pairs.images[idx].to(device, non_blocking=True).float() / 255.0


def optimizer_state(
    opt: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as flat tensors (for safetensors) + JSON (no pickles)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], js: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, v in tensors.items():
        pid, k = name.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, st in js.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": js["param_groups"]})


def check_resume_meta(stem: Path, meta: dict[str, Any]) -> None:
    """CheckpointError unless an OUT-last sidecar holds what --resume reads: the
    optimizer state (an object), epoch and step (non-negative integers), history (a
    list) and best (a number or null)."""

    def bad(what: str) -> checkpoint_io.CheckpointError:
        return checkpoint_io.CheckpointError(
            f"{stem}.json: {what}; it cannot be resumed (start without --resume)"
        )

    if not isinstance(meta.get("optimizer"), dict):
        raise bad("no optimizer state")
    for k in ("epoch", "step"):
        v = meta.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(f"{k} is {schema.clip_text(v)}, not a count")
    if not isinstance(meta.get("history", []), list):
        raise bad("history is not a list")
    best = meta.get("best")
    if best is not None and (
        isinstance(best, bool) or not isinstance(best, (int, float))
    ):
        raise bad(f"best is {schema.clip_text(best)}, not a number")


class Run:
    """Bookkeeping of one training run: the history, best/last checkpoints, the curves
    and the resume state. OUT = best, OUT-last = latest with optimizer state."""

    def __init__(
        self,
        out: Path,
        stage: str,
        args: argparse.Namespace,
        higher_is_better: bool,
        key: str,
    ) -> None:
        self.out, self.stage, self.args = out, stage, args
        self.last = out.with_name(out.name + "-last")
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.key, self.higher = key, higher_is_better
        self.start_epoch = 0
        self.step = 0

    def args_json(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in vars(self.args).items()
            if isinstance(v, (str, int, float, bool, list, type(None)))
        }

    def resume(
        self,
        net: torch.nn.Module,
        opt: torch.optim.Optimizer,
        expect: dict[str, Any],
        log: Any,
    ) -> bool:
        """Load OUT-last into net and opt when it exists; False when there is none."""
        if not self.last.with_suffix(".json").exists():
            log(f"resume: no {self.last}.json yet; starting fresh")
            return False
        saved = checkpoint_io.load_checkpoint(self.last, self.stage, expect=expect)
        net.load_state_dict(saved.state_dict())
        meta: dict[str, Any] = getattr(saved, "meta", {})
        check_resume_meta(self.last, meta)
        try:
            load_optimizer_state(
                opt,
                checkpoint_io.load_extra_tensors(self.last, "optim."),
                meta["optimizer"],
            )
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise checkpoint_io.CheckpointError(
                f"{self.last}: its optimizer state does not fit this run ({e!r:.200}); "
                "start without --resume"
            ) from None
        self.history = meta.get("history", [])
        self.best = meta.get("best")
        self.start_epoch = int(meta["epoch"])
        self.step = int(meta["step"])
        log(
            f"resume: {self.last} after epoch {self.start_epoch} (best {self.key} {self.best})"
        )
        return True

    def save(
        self,
        net: torch.nn.Module,
        opt: torch.optim.Optimizer,
        epoch: int,
        scores: dict[str, Any],
    ) -> bool:
        """Write OUT-last (and OUT when this epoch is the best); True if it was."""
        v = scores[self.key]
        better = self.best is None or (v > self.best if self.higher else v < self.best)
        if better:
            self.best = v
        meta = {
            "args": self.args_json(),
            "epoch": epoch,
            "step": self.step,
            "metrics": scores,
            "best": self.best,
            "history": self.history,
        }
        if better:
            checkpoint_io.save_checkpoint(net, self.out, meta)
        tensors, js = optimizer_state(opt)
        checkpoint_io.save_checkpoint(
            net, self.last, {**meta, "optimizer": js}, extra=tensors
        )
        return better

    def curves(self, fields: list[str]) -> None:
        """OUT-curves.png: train/val loss and the given metrics per epoch."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.history:
            return
        ep = [h["epoch"] for h in self.history]
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        axes[0].plot(ep, [h["train_loss"] for h in self.history], "o-", label="train")
        axes[0].plot(ep, [h["val_loss"] for h in self.history], "o-", label="val")
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("loss")
        axes[0].legend()
        for f in fields:
            axes[1].plot(
                ep, [h.get(f, float("nan")) for h in self.history], "o-", label=f
            )
        axes[1].set_xlabel("epoch")
        axes[1].legend()
        axes[1].grid(alpha=0.3)
        fig.suptitle(f"{self.stage} model: {self.out}")
        fig.tight_layout()
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        atomic.atomic_write_bytes(
            self.out.with_name(self.out.name + "-curves.png"), buf.getvalue()
        )

    def sheet(self, image: Any) -> Path:
        path = self.out.with_name(self.out.name + "-val.png")
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        atomic.atomic_write_bytes(path, buf.getvalue())
        return path


# ----------------------------------------------------------------------------------
# The forward stage


def forward_config(args: argparse.Namespace) -> config.ForwardConfig:
    """The profile's forward network shape with the size and the shape flags."""
    return dataclasses.replace(
        config.get_profile(args.profile).forward.model,
        size=args.size,
        **{name: getattr(args, name) for name, _ in FORWARD_FLAGS},
    )


@torch.no_grad()
def evaluate_forward(
    net: torch.nn.Module,
    pairs: Pairs,
    batch_size: int,
    device: torch.device,
    perceptual: torch.nn.Module,
    w: ForwardLossWeights,
    amp: contextlib.AbstractContextManager[Any] | None = None,
) -> dict[str, float]:
    """Validation loss, NCC and line F1 (means over `pairs`)."""
    was = net.training
    net.eval()
    tot = {"val_loss": 0.0, "ncc": 0.0, "f1": 0.0}
    for idx in batches(len(pairs), batch_size, None):
        target = images_at(pairs, idx, device)
        with amp or contextlib.nullcontext():
            pred = net(to_device(pairs.enc, idx, device))
        loss, _ = forward_loss(pred, target, perceptual, w)
        pred = pred.float()
        tot["val_loss"] += float(loss) * len(idx)
        tot["ncc"] += float(metrics.ncc_batch(pred, target).sum())
        tot["f1"] += float(metrics.line_f1_batch(pred, target).sum())
    net.train(was)
    return {k: v / max(1, len(pairs)) for k, v in tot.items()}


@torch.no_grad()
def forward_sheet(
    net: torch.nn.Module, pairs: Pairs, device: torch.device, n: int = 16
) -> Any:
    """Contact sheet of renderer image | forward-model image pairs, 4 pairs a row."""
    idx = torch.arange(min(n, len(pairs)))
    was = net.training
    net.eval()
    target = images_at(pairs, idx, device)
    pred = net(to_device(pairs.enc, idx, device)).float().clamp(0, 1)
    net.train(was)
    nccs = metrics.ncc_batch(pred, target).tolist()
    tiles, labels = [], []
    for i in range(len(idx)):
        tiles += [
            target[i].permute(1, 2, 0).cpu().numpy(),
            pred[i].permute(1, 2, 0).cpu().numpy(),
        ]
        labels += [Path(pairs.names[i]).name, f"model {nccs[i]:.2f}"]
    return utils.contact_sheet(
        tiles, labels, cols=8, cell=max(128, pairs.images.shape[-1])
    )


def train_forward(
    args: argparse.Namespace,
    train: Pairs,
    val: Pairs,
    device: torch.device,
    dist: cluster.Dist,
    log: Any,
) -> dict[str, Any]:
    cfg = forward_config(args)
    net = M.ForwardModel(cfg).to(device)
    n_params = sum(p.numel() for p in net.parameters())
    perceptual = perceptual_distance.create_perceptual(args.perceptual).to(device)
    log(f"forward: {n_params / 1e6:.2f}M params, {cfg}; perceptual: {perceptual.name}")
    w = ForwardLossWeights()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    run = Run(Path(args.out), "forward", args, higher_is_better=True, key="ncc")
    if args.resume:
        run.resume(net, opt, {"size": cfg.size, "width": cfg.width}, log)
    fast = device.type == "cuda"
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if fast
        else contextlib.nullcontext()
    )
    step_net: Any = M.compile_hot_paths(net) if fast and not args.no_compile else net
    train_net = cluster.wrap_ddp(step_net, dist, device)
    stage = Stage(
        net,
        opt,
        amp,
        train_step=lambda enc, target, epoch: forward_loss(
            train_net(enc), target, perceptual, w
        ),
        evaluate=lambda: evaluate_forward(
            step_net, val, args.batch_size, device, perceptual, w, amp
        ),
        sheet=lambda: forward_sheet(net, val, device),
        fields=["ncc", "f1"],
    )
    return fit(run, stage, train, args, dist, device, log)


# ----------------------------------------------------------------------------------
# The shared loop


TrainStep = Callable[
    [dict[str, torch.Tensor], torch.Tensor, int], tuple[torch.Tensor, dict[str, float]]
]
"""(encoded params, images (B, 3, R, R) in [0, 1], epoch) → (loss, its parts)."""


@dataclass
class Stage:
    """One stage as the shared loop sees it: the net whose weights are saved, its
    optimizer and autocast, and the stage's own steps."""

    net: torch.nn.Module
    opt: torch.optim.Optimizer
    amp: contextlib.AbstractContextManager[Any]
    train_step: TrainStep
    evaluate: Callable[[], dict[str, float]]
    """the validation scores of the epoch (rank 0 only)"""
    sheet: Callable[[], Any]
    """the validation sheet of the epoch, a PIL image (rank 0 only)"""
    fields: list[str]
    """the scores the epoch's log line and the curves show"""
    on_epoch: Callable[[int], None] | None = None
    """called with the epoch's index before it starts"""


def fit(
    run: Run,
    stage: Stage,
    train: Pairs,
    args: argparse.Namespace,
    dist: cluster.Dist,
    device: torch.device,
    log: Log,
) -> dict[str, Any]:
    """The explicit training loop: epochs of AdamW steps with the lr_at schedule, a
    validation pass, one log line, checkpoints, curves and the sheet per epoch.
    Ctrl-C saves OUT-last and returns (resume with --resume)."""
    from tqdm import tqdm

    epochs, bs = args.epochs, args.batch_size
    per_epoch = max(1, len(train) // bs if len(train) > bs else 1)
    total = epochs * per_epoch
    warmup = min(200, max(1, total // 20))
    base_lrs = [g["lr"] for g in stage.opt.param_groups]
    gen = torch.Generator().manual_seed(args.seed + run.start_epoch)
    scores: dict[str, Any] = run.history[-1] if run.history else {}
    stage.net.train()
    epoch = run.start_epoch
    try:
        for epoch in range(run.start_epoch, epochs):
            if stage.on_epoch is not None:
                stage.on_epoch(epoch)
            t0, seen, loss_sum = time.time(), 0, 0.0
            bar = tqdm(
                batches(len(train), bs, gen)
                if dist.world == 1
                else cluster.rank_batches(len(train), bs, dist, args.seed, epoch),
                total=per_epoch,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="batch",
                dynamic_ncols=True,
                leave=False,
                disable=not dist.main,
            )
            for idx in bar:
                scale = lr_at(run.step, total, 1.0, warmup)
                for g, base in zip(stage.opt.param_groups, base_lrs, strict=True):
                    g["lr"] = base * scale
                enc = to_device(train.enc, idx, device)
                target = images_at(train, idx, device)
                with stage.amp:
                    loss, parts = stage.train_step(enc, target, epoch)
                stage.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(stage.net.parameters(), 1.0)
                stage.opt.step()
                run.step += 1
                seen += len(idx)
                loss_sum += float(loss.detach()) * len(idx)
                shown = {"loss": f"{float(loss.detach()):.4f}"}
                shown.update({k: f"{v:.3f}" for k, v in list(parts.items())[:3]})
                bar.set_postfix(shown)
            bar.close()
            train_time = time.time() - t0
            seen, loss_sum = cluster.all_sum([seen, loss_sum], dist)  # every rank's
            scores = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(1, seen),
                **(stage.evaluate() if dist.main else {}),
            }
            scores.update(
                lr=stage.opt.param_groups[-1]["lr"],
                seconds=round(time.time() - t0, 1),
                samples_per_s=round(seen / max(train_time, 1e-9), 1),
            )
            if device.type == "cuda":
                scores["gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 1)
            run.history.append(scores)
            if not dist.main:  # rank 0 alone validates, writes and logs
                continue
            best = run.save(stage.net, stage.opt, epoch + 1, scores)
            run.curves(stage.fields)
            run.sheet(stage.sheet())
            shown = "  ".join(f"{f} {scores[f]:.3f}" for f in stage.fields)
            log(
                f"epoch {epoch + 1:3d}/{epochs}  train {scores['train_loss']:.4f}  val {scores['val_loss']:.4f}  "
                f"{shown}  lr {scores['lr']:.1e}  {scores['seconds']:6.1f} s  {scores['samples_per_s']:6.1f} img/s"
                + (f"  {scores['gpu_mem_gb']} GB" if "gpu_mem_gb" in scores else "")
                + ("  *best" if best else "")
            )
    except KeyboardInterrupt:
        if not dist.main:  # rank 0 saves OUT-last
            return {"interrupted": True, "checkpoint": str(run.out), **scores}
        tensors, js = optimizer_state(stage.opt)
        meta = {
            "args": run.args_json(),
            "epoch": epoch,
            "step": run.step,
            "metrics": scores,
            "best": run.best,
            "history": run.history,
            "optimizer": js,
        }
        checkpoint_io.save_checkpoint(stage.net, run.last, meta, extra=tensors)
        log(
            f"interrupted in epoch {epoch + 1}: saved {run.last}; continue with the same command plus --resume"
        )
        return {
            "interrupted": True,
            "checkpoint": str(run.out),
            "history": run.history,
            "best": run.best,
            **scores,
        }
    log(
        f"best {run.key} {run.best:.4f} → {run.out}.safetensors (sheet {run.out}-val.png, curves {run.out}-curves.png)"
        if run.best is not None
        else "no epochs run"
    )
    return {
        "interrupted": False,
        "checkpoint": str(run.out),
        "history": run.history,
        "best": run.best,
        **scores,
    }


# ----------------------------------------------------------------------------------
# The inverse stage


def choose_backbone(
    args: argparse.Namespace, prof: config.Profile, log: Any
) -> tuple[str, str | None]:
    """(backbone name, weights file or None). The profile's DINOv2 without weights
    falls back to the weight-free default with a notice; an explicit --backbone
    dinov2 without weights is an error (BackboneError) naming the file."""
    name = args.backbone or prof.inverse.backbone
    if name in ("dinov2", M.DINOV2):
        if M.dinov2_weights_file(args.backbone_weights) is None:
            if args.backbone:
                M.create_backbone(
                    name, args.backbone_weights
                )  # raises, naming the file
            log(
                f"backbone: DINOv2 weights not found ({M.DINOV2_REPO} in the HF cache); using {M.DEFAULT_FREE_BACKBONE} trained from scratch instead"
            )
            return M.DEFAULT_FREE_BACKBONE, None
        return M.DINOV2, args.backbone_weights
    return name, None


@torch.no_grad()
def evaluate_inverse(
    net: torch.nn.Module,
    pairs: Pairs,
    batch_size: int,
    device: torch.device,
    amp: contextlib.AbstractContextManager[Any],
) -> dict[str, float]:
    """Validation parameter loss, continuous nRMSE (in [0, 1] units), mean
    categorical accuracy and layer-count accuracy."""
    was = net.training
    net.eval()
    n = len(pairs)
    tot = {"val_loss": 0.0, "cont_se": 0.0, "cat_acc": 0.0, "layers_acc": 0.0}
    for idx in batches(n, batch_size, None):
        enc = to_device(pairs.enc, idx, device)
        with amp:
            out = net(images_at(pairs, idx, device))
        out: dict[str, Any] = {
            k: ([t.float() for t in v] if isinstance(v, list) else v.float())
            for k, v in out.items()
        }
        loss, _ = inverse_param_loss(out, enc)
        tot["val_loss"] += float(loss) * len(idx)
        tot["cont_se"] += float(
            _cont_error(out["cont"], enc["cont"], PERIODIC_CONT).mean(1).sum()
        )
        acc = torch.stack(
            [
                (lg.argmax(-1) == enc["cat"][:, i]).float()
                for i, lg in enumerate(out["cat"])
            ],
            1,
        )
        tot["cat_acc"] += float(acc.mean(1).sum())
        tot["layers_acc"] += float(
            (out["n_layers"].argmax(-1) == enc["n_layers"]).float().sum()
        )
    net.train(was)
    res = {k: v / max(1, n) for k, v in tot.items()}
    res["cont_nrmse"] = math.sqrt(res.pop("cont_se"))
    return res


class PredictionRenderer:
    """Renders predicted params for the inverse sheet: the real renderer when one
    answers (or can be started), else the forward model, else nothing."""

    def __init__(
        self,
        args: argparse.Namespace,
        fwd: M.ForwardModel | None,
        size: int,
        stack: contextlib.ExitStack,
        log: Any,
    ) -> None:
        self.fwd, self.size, self.client, self.log = fwd, size, None, log
        self.source = "forward model" if fwd is not None else "none"
        if not args.no_renderer:
            try:
                url = stack.enter_context(
                    rendering.ensure_renderer(args.renderer_url, log)
                )
                self.client = rendering.RendererClient(url=url, retries=1)
                stack.callback(self.client.close)
                self.source = f"renderer {url}"
            except rendering.RendererError as e:
                log(f"sheet: no renderer ({e}); using the {self.source}")

    def render(
        self, params: list[dict[str, Any]], device: torch.device
    ) -> list[np.ndarray] | None:
        if self.client is not None:
            try:
                return [self.client.render(p, self.size) for p in params]
            except rendering.RendererError as e:
                self.log(
                    f"sheet: renderer failed ({e}); using the forward model from now on"
                )
                self.client = None
                self.source = "forward model" if self.fwd is not None else "none"
        if self.fwd is not None:
            with torch.no_grad():
                img = self.fwd(M.batch_encode(params, device)).float()
                if img.shape[-1] != self.size:
                    img = F.interpolate(
                        img,
                        size=(self.size, self.size),
                        mode="bilinear",
                        align_corners=False,
                    )
            return list(img.permute(0, 2, 3, 1).cpu().numpy())
        return None


def inverse_net(
    args: argparse.Namespace, resuming: bool, device: torch.device, log: Log
) -> tuple[M.InverseModel, bool]:
    """The inverse model to train: a fresh one on the chosen backbone, the --init
    checkpoint (its config; its weights unless resuming), or, resuming, an empty one
    that OUT-last fills. Returns (net, whether the backbone is pretrained)."""
    name, weights = choose_backbone(args, config.get_profile(args.profile), log)
    # the model resizes any input to the size it was trained at (224 for DINOv2)
    cfg = M.InverseConfig(
        backbone=name,
        input_size=224 if name == M.DINOV2 else args.size,
        sqrt_input=args.sqrt_input,
    )
    init = checkpoint_io.load_inverse(args.init) if args.init else None
    if init is not None:
        cfg = init.cfg  # fine-tune: the checkpoint's config
        log(f"inverse model: fine-tuning from {args.init}")
        if resuming:
            init = None  # its config only; the weights come from OUT-last
    net = (
        init
        if init is not None
        else M.InverseModel(cfg)
        if resuming
        else M.InverseModel.build(cfg, weights=weights)
    ).to(device)
    info = net.backbone_info
    pretrained = info["weights"] != "none"
    log(
        f"backbone: {info['name']} ({info['features']}-dim features), weights: "
        + (info["weights"] if pretrained else "none (trained from scratch)")
    )
    return net, pretrained


def frozen_forward(
    args: argparse.Namespace, device: torch.device, log: Log
) -> tuple[M.ForwardModel | None, torch.nn.Module | None]:
    """(the frozen forward model, the perceptual distance) for the inverse stage's
    perceptual loss; (model or None, None) when there is no model or its weight is 0."""
    fwd = checkpoint_io.load_forward(args.forward, device) if args.forward else None
    if fwd is None:
        log(f"perceptual loss: off (no forward model at {args.forward})")
        return None, None
    fwd.requires_grad_(False)
    if args.perceptual_weight <= 0:
        log("perceptual loss: off (--perceptual-weight 0)")
        return fwd, None
    perceptual = perceptual_distance.create_perceptual(args.perceptual).to(device)
    log(
        f"perceptual loss: {perceptual.name} through the frozen forward model "
        f"{args.forward} (weight {args.perceptual_weight:g}, ramped in over the first half)"
    )
    return fwd, perceptual


def inverse_optimizer(
    net: M.InverseModel, lr: float, backbone_mult: float
) -> torch.optim.Optimizer:
    """AdamW with the backbone at backbone_mult × lr and the heads at lr."""
    heads = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    return torch.optim.AdamW(
        [
            {"params": list(net.backbone.parameters()), "lr": lr * backbone_mult},
            {"params": heads, "lr": lr},
        ],
        weight_decay=0.01,
    )


class InverseValidation:
    """The inverse stage's validation: the scores of evaluate_inverse plus, when
    something can draw predictions, the NCC of renders of the predicted params; the
    sheet shows the renders of the last evaluation (target | render of prediction)."""

    def __init__(
        self,
        net: M.InverseModel,
        step_net: Any,
        val: Pairs,
        renderer: PredictionRenderer,
        args: argparse.Namespace,
        device: torch.device,
        amp: contextlib.AbstractContextManager[Any],
    ) -> None:
        self.net, self.step_net, self.val, self.renderer = net, step_net, val, renderer
        self.args, self.device, self.amp = args, device, amp
        # (targets, renders of the predictions) of the last evaluation, float (R, R, 3)
        self.last: tuple[np.ndarray, list[np.ndarray]] | None = None

    def evaluate(self) -> dict[str, float]:
        val, device = self.val, self.device
        res = evaluate_inverse(
            self.step_net, val, self.args.batch_size, device, self.amp
        )
        imgs = images_at(val, torch.arange(min(32, len(val))), device)
        rendered = self.renderer.render(self.net.predict_params(imgs), device)
        if rendered is not None:
            target = imgs.permute(0, 2, 3, 1).cpu().numpy()
            res["render_ncc"] = float(
                np.mean(
                    [metrics.ncc(r, t) for r, t in zip(rendered, target, strict=True)]
                )
            )
            self.last = (target, rendered)
        return res

    def sheet(self) -> Any:
        val = self.val
        if self.last is None:
            k = min(16, len(val))
            imgs = images_at(val, torch.arange(k), self.device)
            target = imgs.permute(0, 2, 3, 1).cpu().numpy()
            tiles, labels = list(target), [Path(n).name for n in val.names[:k]]
            return utils.contact_sheet(tiles, labels, cols=8, cell=96)
        target, rendered = self.last
        tiles, labels = [], []
        for i in range(min(16, len(target))):
            tiles += [target[i], rendered[i]]
            labels += [
                Path(val.names[i]).name,
                f"pred {metrics.ncc(rendered[i], target[i]):.2f}",
            ]
        return utils.contact_sheet(tiles, labels, cols=8, cell=max(96, self.args.size))


def train_inverse(
    args: argparse.Namespace,
    train: Pairs,
    val: Pairs,
    device: torch.device,
    dist: cluster.Dist,
    log: Log,
) -> dict[str, Any]:
    """Train the inverse model: cross-entropy/MSE/BCE per head, plus the perceptual
    distance through the frozen forward model ramped in over the first half."""
    out = Path(args.out)
    resuming = (
        args.resume and out.with_name(out.name + "-last").with_suffix(".json").exists()
    )
    net, pretrained = inverse_net(args, resuming, device, log)
    fwd, perceptual = frozen_forward(args, device, log)
    freeze = (
        args.freeze_epochs
        if args.freeze_epochs is not None
        else (
            config.get_profile(args.profile).inverse.freeze_epochs if pretrained else 0
        )
    )
    bb_mult = 0.1 if pretrained else 1.0
    opt = inverse_optimizer(net, args.lr, bb_mult)
    run = Run(out, "inverse", args, higher_is_better=False, key="val_loss")
    if resuming:
        run.resume(net, opt, {"backbone": net.cfg.backbone}, log)
    fast = device.type == "cuda"
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if fast
        else contextlib.nullcontext()
    )
    step_net: Any = M.compile_hot_paths(net) if fast and not args.no_compile else net
    train_net = cluster.wrap_ddp(step_net, dist, device, find_unused=freeze > 0)
    ramp_steps = max(1, args.epochs * max(1, len(train) // args.batch_size) // 2)

    def set_frozen(epoch: int) -> None:
        frozen = epoch < freeze
        net.backbone.requires_grad_(not frozen)
        if frozen and epoch == run.start_epoch:
            log(
                f"backbone frozen for epochs 1-{freeze}, then trained at {bb_mult}× the LR"
            )

    def train_step(
        enc: dict[str, torch.Tensor], images: torch.Tensor, epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        out = train_net(images)
        loss, parts = inverse_param_loss(out, enc)
        if fwd is not None and perceptual is not None:
            ramp = min(1.0, run.step / ramp_steps)
            k = min(args.perceptual_batch or len(images), len(images))
            soft = M.InverseModel.to_encoded(
                {
                    kk: (v[:k] if torch.is_tensor(v) else [t[:k] for t in v])
                    for kk, v in out.items()
                }
            )
            soft_in = {
                **soft,
                "bools": soft["bools_probs"],
                "layer_opt": soft["layer_opt_probs"],
            }
            with torch.no_grad():
                true_img = fwd({kk: v[:k] for kk, v in enc.items()})
            dist = perceptual(fwd(soft_in), true_img).mean()
            loss = loss + args.perceptual_weight * ramp * dist
            parts["perc"] = float(dist.detach())
        return loss, parts

    with contextlib.ExitStack() as stack:
        renderer = PredictionRenderer(args, fwd, args.size, stack, log)
        log(f"sheet renders: {renderer.source}")
        check = InverseValidation(net, step_net, val, renderer, args, device, amp)
        fields = ["cont_nrmse", "cat_acc", "layers_acc"] + (
            ["render_ncc"] if renderer.source != "none" else []
        )
        stage = Stage(
            net,
            opt,
            amp,
            train_step,
            check.evaluate,
            check.sheet,
            fields,
            on_epoch=set_frozen,
        )
        return fit(run, stage, train, args, dist, device, log)


# ----------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train one stage; returns the final metrics, the history and the checkpoint."""
    stage = args.stage
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dist = cluster.init_distributed(args.device)  # torchrun: WORLD_SIZE > 1
    if not dist.main:
        args.no_renderer = True  # rank 0 draws the sheets
    device = torch.device(
        cluster.device_for(dist, args.device)
        or ("cuda" if torch.cuda.is_available() else "cpu")
    )

    def log(msg: str) -> None:
        if dist.main:
            print(msg, flush=True)

    log(
        f"train {stage}: profile {args.profile}, size {args.size}, epochs {args.epochs}, "
        f"batch {args.batch_size}, lr {args.lr:g}, device {device}"
        + (
            " (bf16 autocast" + (", compiled)" if not args.no_compile else ")")
            if device.type == "cuda"
            else ""
        )
    )
    if dist.world > 1:
        log(
            f"distributed: {dist.world} processes (DDP, "
            f"{'NCCL' if device.type == 'cuda' else 'gloo'}), global batch "
            f"{args.batch_size} = {dist.world} × "
            f"{max(1, args.batch_size // dist.world)}"
        )
    if not dist.main:
        cluster.barrier(dist)  # rank 0 decodes and caches the data first
    pairs = load_pairs(args.data, args.size, args.max_samples, log)
    if dist.main:
        cluster.barrier(dist)
    if len(pairs) < 2:
        raise SystemExit(f"need at least 2 pairs to train, found {len(pairs)}")
    tr, va = split(len(pairs), args.val_frac, args.seed)
    train, val = pairs.subset(tr), pairs.subset(va)
    log(f"data: {len(train)} train / {len(val)} validation pairs at {args.size} px")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    try:
        if stage == "forward":
            res = train_forward(args, train, val, device, dist, log)
        else:
            res = train_inverse(args, train, val, device, dist, log)
        # the ranks leave together: one that tears down gloo while rank 0 still
        # validates and writes its last epoch can abort ("terminate called…")
        cluster.barrier(dist)
        return res
    finally:
        cluster.finish_distributed(dist)


def _stop(signum: int, _frame: Any) -> None:
    """SIGTERM → KeyboardInterrupt, so a stopped run saves OUT-last like Ctrl-C."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    try:
        res = main(parse_args())
    except (checkpoint_io.CheckpointError, M.BackboneError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    sys.exit(130 if res.get("interrupted") else 0)
