"""A labelled contact sheet of the scene: every geometry × a few progressions and
effects, rendered in-process (no server). For eyeballing the renderer.

    python -m renderer.gallery --out docs/gallery.png [--tile 160]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from art_explorer import atomic
from art_explorer.progress import progress
from art_explorer.scene import schema
from renderer.png import encode_png
from renderer.scene import render

# Under every column but "default": one centred chain, no layers, thin lines.
NEUTRAL: dict[str, Any] = {
    "layers": [],
    "position": {"x": 0.0, "y": 0.0},
    "scale": 0.85,
    "rotationFactor": 0.0,
    "geoWidth": 0.012,
}
# Column name → params overrides (flat spelling) applied on top of the defaults and
# NEUTRAL; "default" is the original's defaults as they are (the mirrored layer g0).
VARIANTS: dict[str, dict[str, Any]] = {
    "single outline": {
        "repetitions": 1,
        "origin": "center",
        "scale": 1.5,
        "color": "#FFFFFF",
        "alphaFactor": 1.0,
    },
    "default": {},
    "golden-angle": {
        "repetitions": 120,
        "scaleFactor": 0.985,
        "rotationFactor": 0.1,
        "rotationProgression": "golden-angle",
        "origin": "center",
        "xStep": 0.0,
        "scale": 1.3,
        "alphaFactor": 0.97,
        "color": "#9FD8FF",
    },
    "sine / scale pos": {
        "repetitions": 80,
        "scaleProgression": "sine",
        "scaleFactor": 1.03,
        "rotationProgression": "sine",
        "rotationFactor": 0.3,
        "positionProgression": "scale",
        "xStep": 1.0,
        "yStep": -0.6,
        "stepFactor": 0.6,
        "origin": "top-left",
        "alphaProgression": "linear",
        "alphaFactor": 0.2,
        "color": "#FFB38A",
    },
    "2 layers, mirror": {
        "repetitions": 40,
        "scaleFactor": 1.04,
        "rotationFactor": 0.02,
        "xStep": 1.2,
        "stepFactor": 0.05,
        "origin": "center",
        "alphaFactor": 0.9,
        "layers": [
            {
                "rotation": 0.0,
                "position": {"x": 0.6, "y": 0.0},
                "scale": {"x": 1.0, "y": 1.0},
            },
            {
                "rotation": 0.0,
                "position": {"x": -0.6, "y": 0.0},
                "scale": {"x": -1.0, "y": 1.0},
                "color": "#FF5A8C",
            },
        ],
    },
    "gradient 90°": {
        "repetitions": 30,
        "gradientAngle": math.pi / 2,
        "origin": "center",
        "xStep": 0.0,
        "scaleFactor": 1.06,
        "alphaFactor": 0.95,
        "geoWidth": 0.03,
    },
    "dither bayer": {
        "repetitions": 60,
        "origin": "center",
        "xStep": 0.3,
        "stepFactor": 0.1,
        "ditherEnabled": True,
        "ditherType": "bayer",
        "ditherColors": 3,
        "ditherStrength": 1.0,
        "ditherScale": 4.0,
        "color": "#FFD27F",
    },
    "dither halftone": {
        "repetitions": 60,
        "origin": "center",
        "xStep": 0.3,
        "stepFactor": 0.1,
        "geoWidth": 0.03,
        "ditherEnabled": True,
        "ditherType": "halftone",
        "ditherColors": 2,
        "ditherStrength": 1.0,
        "ditherScale": 3.0,
        "ditherGrayscale": True,
    },
    "ign dither + noise": {
        "repetitions": 60,
        "origin": "center",
        "xStep": -0.3,
        "stepFactor": 0.1,
        "ditherEnabled": True,
        "ditherType": "noise",
        "ditherColors": 4,
        "ditherStrength": 0.9,
        "noiseEnabled": True,
        "noiseDensity": 0.3,
        "noiseOpacity": 0.4,
        "color": "#A0FFB0",
    },
}


def gallery_params(geometry: str, variant: dict[str, Any]) -> dict[str, Any]:
    """Complete flat params for one tile."""
    neutral = NEUTRAL if variant else {}
    return schema.validate_params(
        {**schema.default_params(), **neutral, "geometry": geometry, **variant}
    )


def contact_sheet(tile: int = 160, label: int = 18) -> np.ndarray:
    """uint8 (H, W, 3): a row per geometry, a column per VARIANTS entry, labelled."""
    cols, rows = list(VARIANTS), list(schema.GEOMETRIES)
    left = 90
    sheet = Image.new(
        "RGB", (left + tile * len(cols), label + tile * len(rows)), (24, 24, 24)
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for c, name in enumerate(cols):
        draw.text((left + c * tile + 4, 3), name, fill=(220, 220, 220), font=font)
    cells = [(r, c) for r in range(len(rows)) for c in range(len(cols))]
    for r, c in progress(cells, "gallery", unit="tile"):
        img = render(gallery_params(rows[r], VARIANTS[cols[c]]), tile)
        sheet.paste(Image.fromarray(img), (left + c * tile, label + r * tile))
        if c == 0:
            y = label + r * tile + tile // 2 - 6
            draw.text((6, y), rows[r], fill=(220, 220, 220), font=font)
    for c in range(1, len(cols)):
        x = left + c * tile
        draw.line([(x, label), (x, sheet.height)], fill=(24, 24, 24))
    for r in range(1, len(rows)):
        y = label + r * tile
        draw.line([(left, y), (sheet.width, y)], fill=(24, 24, 24))
    return np.asarray(sheet)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Contact sheet of the bundled renderer.")
    g = ap.add_argument_group("output")
    g.add_argument("--out", default="docs/gallery.png", help="PNG to write")
    g.add_argument(
        "--tile", type=int, default=160, help="tile size in pixels (32-1024)"
    )
    return ap.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    if not 32 <= args.tile <= 1024:
        raise SystemExit(f"--tile must be in 32-1024, got {args.tile}")
    sheet = contact_sheet(args.tile)
    atomic.atomic_write_bytes(args.out, encode_png(sheet, compress_level=9))
    print(
        f"wrote {args.out} ({sheet.shape[1]}×{sheet.shape[0]}, {Path(args.out).stat().st_size // 1024} KiB)"
    )


if __name__ == "__main__":
    main(parse_args())
