"""Small shared tools without another home: the repository root, PNG decoding,
contact sheets, a file error as one line, and loading a bench script as a module."""

from __future__ import annotations

import errno
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def png_to_array(data: bytes) -> np.ndarray:
    """PNG bytes → float32 (H, W, 3) in [0, 1]."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


def contact_sheet(
    images: Sequence[Any],
    labels: Sequence[str] | None = None,
    cols: int = 8,
    cell: int | None = None,
) -> Any:
    """A grid of images with an optional caption under each → PIL.Image (RGB).

    images: PIL images or arrays (H, W) / (H, W, 3), float in [0, 1] or uint8.
    cell: side of each tile in px (default: the first image's width); tiles are
    resized to it (nearest when enlarging, so thin lines stay crisp). Tiles sit on a
    dark grey grid, so an all-black image is still visibly a tile. Captions are
    clipped to their tile's width.
    """
    from PIL import Image, ImageDraw, ImageFont

    tiles: list[Image.Image] = []
    for im in images:
        if not isinstance(im, Image.Image):
            a = np.asarray(im)
            if a.dtype != np.uint8:
                a = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
            im = Image.fromarray(a)
        tiles.append(im.convert("RGB"))
    cols = max(1, min(cols, len(tiles))) if tiles else 1
    rows = max(1, math.ceil(len(tiles) / cols))
    side = cell or (tiles[0].width if tiles else 64)
    gap, caption = 2, 12 if labels else 0
    sheet = Image.new(
        "RGB",
        (cols * (side + gap) + gap, rows * (side + caption + gap) + gap),
        (40, 40, 40),
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, tile in enumerate(tiles):
        x = gap + (k % cols) * (side + gap)
        y = gap + (k // cols) * (side + caption + gap)
        if tile.size != (side, side):
            enlarge = tile.width < side
            tile = tile.resize(
                (side, side),
                Image.Resampling.NEAREST if enlarge else Image.Resampling.LANCZOS,
            )
        sheet.paste(tile, (x, y))
        if labels and k < len(labels):
            text = str(labels[k])
            while len(text) > 1 and draw.textlength(text, font=font) > side - 2:
                text = text[:-1]  # clip the caption to its tile
            draw.text((x + 1, y + side), text, fill=(220, 220, 220), font=font)
    return sheet


def aside_path(path: Path, tag: str) -> Path:
    """A free name beside `path` to keep it under: PATH.TAG, else PATH.TAG-2, …"""
    aside, n = path.with_name(f"{path.name}.{tag}"), 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.{tag}-{n}")
    return aside


def os_error_line(e: OSError) -> str:
    """A file error as the one line a script prints instead of a traceback:
    'cannot write data/images/000012.png: No space left on device'."""
    what = e.strerror or str(e)
    if e.filename is None:
        return what
    verb = "cannot write" if e.errno in _WRITE_ERRNOS else "cannot use"
    return f"{verb} {e.filename}: {what}"


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def load_bench(name: str) -> Any:
    """bench/NAME.py imported as the module `bench_NAME` (the benchmarks are scripts, not
    a package); tests and other benches call their pieces through it."""
    import importlib.util

    mod_name = f"bench_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(
        mod_name, ROOT / "bench" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod  # dataclasses look their module up while it loads
    spec.loader.exec_module(mod)
    return mod
