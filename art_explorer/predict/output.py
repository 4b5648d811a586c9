"""Where predict and explore write a result: output/params|images/NNNNNN.*"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from art_explorer import atomic
from art_explorer.data import dataset
from art_explorer.scene import schema


def write_result(out: Path, idx: int, params: dict[str, Any], png: bytes) -> Path:
    """out/params/NNNNNN.json (flat) then out/images/NNNNNN.png, each atomic."""
    layout = dataset.Layout(out)
    atomic.write_json(layout.params_path(idx), schema.validate_params(params))
    img = layout.image_path(idx)
    atomic.atomic_write_bytes(img, png)
    return img


def png_bytes(image: Any) -> bytes:
    """A PIL image → PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
