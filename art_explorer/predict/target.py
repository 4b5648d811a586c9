"""The target: any picture a person drops in, read as a letterboxed RGB square."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from art_explorer.predict.errors import UserError

MAX_TARGET_PIXELS = 40_000_000  # a bigger picture is refused before it is decoded


def load_target(path: str | Path, side: int | None = None) -> Any:
    """Any PNG/JPEG/WebP/... → a square RGB PIL image: transparency composited on
    black, greyscale and palette expanded, 16-bit scaled, EXIF rotation applied, the
    picture letterboxed onto black. The square's side is the picture's longest side,
    or `side` (px, the largest size the caller works at) when that is smaller: the
    picture is scaled down before letterboxing, so a 20000×8 strip costs no more
    than its own pixels. A picture of more than MAX_TARGET_PIXELS pixels is refused
    from its header, before decoding (a decompression bomb is one clear line).
    Raises UserError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"cannot read {path}: no such file")
    too_big = (
        f"cannot read {path}: over the {MAX_TARGET_PIXELS:,}-pixel limit for a "
        "target (scale it down first)"
    )
    try:
        with warnings.catch_warnings():
            # PIL warns from 89 Mpx; the limit below is lower and says more
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        with im:
            w, h = im.size
            if w * h > MAX_TARGET_PIXELS:
                raise UserError(f"{too_big}: it is {w}x{h}")
            if side is not None:
                im.draft(im.mode, (side, side))  # JPEG: decode at a smaller scale
            im.load()
            im = ImageOps.exif_transpose(im) or im
            if im.mode == "1":
                im = im.convert("L")
            if im.mode in ("L", "LA", "RGB", "RGBA"):
                im = _shrink(im, side)  # resize premultiplies alpha
            rgb = _shrink(_to_rgb(im), side)
    except Image.DecompressionBombError:  # PIL's own guard, at far more pixels
        raise UserError(too_big) from None
    except UnidentifiedImageError:
        raise UserError(
            f"cannot read {path}: not an image (PNG, JPEG, WebP, ... expected)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    w, h = rgb.size
    if w < 1 or h < 1:
        raise UserError(f"cannot read {path}: empty image")
    longest = max(w, h)
    canvas = Image.new("RGB", (longest, longest), (0, 0, 0))
    canvas.paste(rgb, ((longest - w) // 2, (longest - h) // 2))
    return canvas


def _shrink(im: Any, side: int | None) -> Any:
    """Scale a PIL image down (Lanczos) so that its longest side is at most `side`
    (None: as it is); neither side goes below 1 px."""
    from PIL import Image

    w, h = im.size
    if side is None or max(w, h) <= side:
        return im
    k = side / max(w, h)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _to_rgb(im: Any) -> Any:
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, np.float32)
        top = 65535.0 if im.mode.startswith("I") and a.max() > 255 else 255.0
        a = np.clip(a / top * 255, 0, 255).astype(np.uint8)
        return Image.fromarray(a).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(im.convert("RGBA"), np.float32) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:]
        return Image.fromarray((rgb * 255 + 0.5).astype(np.uint8))
    return im.convert("RGB")


def image_at(square: Any, size: int) -> np.ndarray:
    """Square PIL image → (size, size, 3) float32 in [0, 1] (Lanczos resampling)."""
    from PIL import Image

    im = (
        square
        if square.size == (size, size)
        else square.resize((size, size), Image.Resampling.LANCZOS)
    )
    return np.asarray(im, np.float32) / 255.0
