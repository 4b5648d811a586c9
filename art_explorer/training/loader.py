"""Training pairs in memory: pair folders and shard folders decoded once through an
npz cache, the seeded validation split, and batches of them on a device."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_explorer import atomic
from art_explorer.data import dataset, shards
from art_explorer.nets.inputs import ENCODED_KEYS
from art_explorer.progress import progress
from art_explorer.scene import encoding, schema


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
        for i in progress(todo, f"decode {folder}", unit="img"):
            s = stems[i]
            try:
                params = dataset.load_params(layout.params / f"{s}.json")
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
        buf = io.BytesIO()
        np.savez(buf, **out)  # type: ignore[arg-type]
        atomic.atomic_write_bytes(cache, buf.getvalue())
    return out


def load_shards(folder: Path, size: int, log: Any = print) -> dict[str, np.ndarray]:
    """All samples of a shard folder as arrays, like load_folder (the same keys),
    through FOLDER/.cache/train-SIZE.npz, which is rebuilt whenever index.json or a
    shard changed. Every sample is decoded into memory: uint8 R²·3 bytes each."""
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
        progress(samples, f"decode {folder}", total=n, unit="img")
    ):
        if i >= n:
            break
        names.append(key)
        try:
            e = encoding.encode_params(dataset.params_from_json(js, key)).as_dict()
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
    enc = {k: torch.from_numpy(cat[k]) for k in ENCODED_KEYS}
    images = torch.from_numpy(cat["images"]).permute(0, 3, 1, 2).contiguous()
    return Pairs(images, enc, cat["names"].tolist())


def split(n: int, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle → (train indices, validation indices); at least 1 in each."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * val_frac)), n - 1) if n > 1 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


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
