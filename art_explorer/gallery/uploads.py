"""Pictures people upload for predict: refused when not a picture or too large, kept
under output/uploads while their job needs them."""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

from art_explorer.gallery.errors import ApiError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # an upload larger than this is refused (413)
MAX_UPLOAD_PIXELS = 40_000_000  # width × height above this is refused (413)
KEPT_SUFFIXES = (".png", ".jpg")  # uploads the page can show back as the target


def check_upload(data: bytes) -> None:
    """Refuse what is not a picture, or is too large in bytes or pixels (ApiError
    with the message the page shows)."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(
            413,
            f"the file is {len(data) / 2**20:.1f} MB; the limit is "
            f"{MAX_UPLOAD_BYTES // 2**20} MB",
        )
    if not data:
        raise ApiError(400, "the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError(
            400, "not a picture: PNG, JPEG, WebP, GIF or BMP expected"
        ) from None
    except Image.DecompressionBombError:
        raise ApiError(413, "the picture has far too many pixels") from None
    if w * h > MAX_UPLOAD_PIXELS:
        raise ApiError(
            413,
            f"the picture is {w}×{h} = {w * h / 1e6:.0f} MP; the limit is "
            f"{MAX_UPLOAD_PIXELS / 1e6:.0f} MP",
        )


def keep_upload(output: Path, data: bytes, filename: str) -> Path:
    """Write a checked upload to output/uploads/upload-XXXX.SUFFIX; returns its path."""
    uploads = output / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    suffix = Path(filename).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".img"
    fd, target = tempfile.mkstemp(dir=uploads, prefix="upload-", suffix=suffix)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(target)
