"""Pictures of the archive: the map of its cells, the sheets of its elites, and the
pick of its best distinct elites. All work from `Archive.summary()` (JSON), so the
gallery and the round report draw the same thing from the same data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

SHEET_RE = re.compile(r"^explore-([0-9]{3,9})\.png$")
CELL_PX = 18  # px per cell in the map
EMPTY = (28, 28, 28)


def _viridis(t: float) -> tuple[int, int, int]:
    """A score in [0, 1] → an RGB colour (viridis, five stops linearly blended)."""
    stops = np.array(
        [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
        np.float64,
    )
    x = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    c = stops[i] + (stops[i + 1] - stops[i]) * (x - i)
    return int(c[0]), int(c[1]), int(c[2])


def draw_map(summary: dict[str, Any]) -> Any:
    """The archive as a PIL image: one panel per cell of the last axis (colour), each
    a grid of the first axis (x, lit share) × the second (y, symmetry) with every
    filled cell coloured by its elite's score (viridis, 0 → 1) and empty cells dark.
    A title line gives the cells filled, the QD-score and the renders so far."""
    from PIL import Image, ImageDraw, ImageFont

    ax = summary["axes"]
    nx, ny = ax[0]["bins"], ax[1]["bins"]
    nz = ax[2]["bins"] if len(ax) > 2 else 1
    pw, ph = nx * CELL_PX, ny * CELL_PX
    gap, top, label = 10, 30, 14
    img = Image.new(
        "RGB", (gap + nz * (pw + gap), top + ph + label + gap), (12, 12, 12)
    )
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.text(
        (gap, 4),
        f"{summary['cells_filled']}/{summary['cells_total']} cells, QD-score "
        f"{summary['qd_score']:.1f}, {summary['renders']} renders. x: "
        f"{ax[0]['name']}, y: {ax[1]['name']} (up)",
        fill=(230, 230, 230),
        font=font,
    )
    score = {tuple(c["cell"]): c["score"] for c in summary.get("cells", [])}
    for z in range(nz):
        x0 = gap + z * (pw + gap)
        for i in range(nx):
            for j in range(ny):
                s = score.get((i, j, z) if nz > 1 else (i, j))
                x, y = x0 + i * CELL_PX, top + (ny - 1 - j) * CELL_PX
                fill = EMPTY if s is None else _viridis(s)
                draw.rectangle([x, y, x + CELL_PX - 2, y + CELL_PX - 2], fill=fill)
        name = ax[2]["ticks"][z] if nz > 1 else ""
        draw.text((x0, top + ph + 2), name, fill=(200, 200, 200), font=font)
    return img


def draw_growth(summary: dict[str, Any], width: int = 360, height: int = 140) -> Any:
    """How the archive grew: cells filled (white) and QD-score (yellow, own scale)
    against renders, one point per save (summary["growth"]), as a PIL image."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), (12, 12, 12))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    g = np.asarray(summary.get("growth") or [[0, 0, 0.0]], np.float64).reshape(-1, 3)
    pad, top = 8, 18
    w, h = width - 2 * pad, height - top - pad
    r_max = max(float(g[:, 0].max()), 1.0)
    for col, scale, colour in (
        (1, float(summary["cells_total"]), (230, 230, 230)),
        (2, max(float(g[:, 2].max()), 1e-9), (240, 200, 40)),
    ):
        pts = [
            (pad + w * r / r_max, top + h * (1 - v / scale))
            for r, v in zip(g[:, 0], g[:, col], strict=True)
        ]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
    draw.text(
        (pad, 3),
        f"cells {int(g[-1, 1])}/{summary['cells_total']} (white), QD-score "
        f"{g[-1, 2]:.1f} (yellow), over {int(g[-1, 0])} renders",
        fill=(220, 220, 220),
        font=font,
    )
    return img


NEAR_NCC = 0.7  # grey-shape correlation of two thumbnails above which they read alike


def near(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two elites (summary cells) count as near-duplicates when their colours are
    alike (the same cell of the last axis, or neighbouring hue sectors) and they
    share their base geometry, a neighbourhood (at most one cell apart on every
    other axis) or their shape (`shape` vectors correlate above NEAR_NCC, when both
    have a thumbnail): on the sheets, two pink ring chains of different symmetry,
    or two violet square chains either side of the blue/magenta border, read as
    the same picture."""
    ca, cb = a["cell"], b["cell"]
    if not _alike_colour(ca[-1], cb[-1]):
        return False
    if a.get("geometry") is not None and a.get("geometry") == b.get("geometry"):
        return True
    if all(abs(x - y) <= 1 for x, y in zip(ca[:-1], cb[:-1], strict=True)):
        return True
    sa, sb = shape(a), shape(b)
    return sa is not None and sb is not None and float(sa @ sb) > NEAR_NCC


def _alike_colour(i: int, j: int) -> bool:
    """Colour cells (descriptors.AXES[-1]: 0 grey, 1–6 hue sectors, cyclic) that
    read alike: the same one, or neighbouring hues."""
    if i == j:
        return True
    if i == 0 or j == 0:
        return False
    return (i - j) % 6 in (1, 5)


def shape(c: dict[str, Any]) -> np.ndarray | None:
    """The thumbnail's √grey at 32², zero-mean, unit length (None without one)."""
    from PIL import Image

    if not c.get("thumb") or not Path(c["thumb"]).exists():
        return None
    im = Image.open(c["thumb"]).convert("L").resize((32, 32), Image.Resampling.BOX)
    a = np.sqrt(np.asarray(im, np.float64) / 255.0)
    a = (a - a.mean()).ravel()
    return a / max(float(np.linalg.norm(a)), 1e-9)


def best_distinct(
    summary: dict[str, Any], n: int, among: set[int] | None = None
) -> list[dict[str, Any]]:
    """The n best elites (summary["cells"], best first) no two of which are `near`;
    among: only these elite ids."""
    out: list[dict[str, Any]] = []
    for c in summary.get("cells", []):
        if len(out) >= n:
            break
        if among is not None and c["id"] not in among:
            continue
        if not any(near(c, o) for o in out):
            out.append(c)
    return out


def _thumb(c: dict[str, Any]) -> Any:
    from PIL import Image

    if c.get("thumb") and Path(c["thumb"]).exists():
        return Image.open(c["thumb"]).convert("RGB")
    return Image.new("RGB", (64, 64), (60, 0, 0))


def axis_sheet(summary: dict[str, Any], cell: int = 96) -> Any:
    """One row per axis: in each cell of that axis (left to right) the best elite
    whose descriptor lies there, captioned with the cell's name and the score; an
    empty cell is a black tile. Shows what moving along each axis looks like."""
    from PIL import Image

    from art_explorer import utils

    ax = summary["axes"]
    cols = max(a["bins"] for a in ax)
    tiles, labels = [], []
    for k, a in enumerate(ax):
        for b in range(cols):
            best = next((c for c in summary["cells"] if c["cell"][k] == b), None)
            if b >= a["bins"] or best is None:
                tiles.append(Image.new("RGB", (cell, cell)))
                labels.append(f"{a['name']} {a['ticks'][b]}" if b < a["bins"] else "")
                continue
            tiles.append(_thumb(best))
            labels.append(f"{a['ticks'][b]} {best['score']:.2f}")
    return utils.contact_sheet(tiles, labels, cols=cols, cell=cell)


def elites_sheet(cells: list[dict[str, Any]], cols: int = 8, cell: int = 128) -> Any:
    """Thumbnails of some elites (summary cells) with their scores."""
    from art_explorer import utils

    return utils.contact_sheet(
        [_thumb(c) for c in cells],
        [f"#{c['id']} {c['score']:.2f}" for c in cells],
        cols=cols,
        cell=cell,
    )


def next_sheet(out: Path) -> int:
    """The number of the next explore-NNN.png in `out`."""
    top = -1
    if out.is_dir():
        for f in out.iterdir():
            m = SHEET_RE.match(f.name)
            if m:
                top = max(top, int(m.group(1)))
    return top + 1
