"""Descriptors: where a picture sits in the archive's grid, from measured features.

Three axes a person names at a glance (docs/explore.md says why these):

- ``coverage``: log10 of the share of lit pixels (luma > 0.03, the aesthetic
  scorer's own measure), 1%–60% (below 1% the scorer's gate leaves little score;
  above 60% explore's coverage guard): a few thin lines ↔ a filled picture;
- ``symmetry``: the scorer's symmetry, the best Pearson correlation of the picture
  with its mirrors, its 180° turn and its transpose: a swirl ↔ a mandala;
- ``colour``: grey when the light's mean colour is unsaturated, else one of six hue
  sectors (red, yellow, green, cyan, blue, magenta) of that colour.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

GREY_SATURATION = (
    0.15  # HSV saturation of the light's mean colour below which it is grey
)
HUES = ("red", "yellow", "green", "cyan", "blue", "magenta")
LUMA = np.array([0.2126, 0.7152, 0.0722])
LIT_LUMA = 0.03  # the scorer's lit threshold (art_explorer.scoring.aesthetic.aesthetic_features)


@dataclass(frozen=True)
class Axis:
    """One descriptor: its range (values outside land in the end cells) and cells."""

    name: str
    label: str  # what the axis runs from and to, for plots and sheets
    lo: float
    hi: float
    bins: int

    def tick(self, cell: int) -> str:
        """A short name for one cell of this axis."""
        if self.name == "colour":
            return ("grey", *HUES)[cell]
        lo = self.lo + (self.hi - self.lo) * cell / self.bins
        hi = self.lo + (self.hi - self.lo) * (cell + 1) / self.bins
        if self.name == "coverage":
            return f"{100 * 10**lo:.2g}-{100 * 10**hi:.2g}%"
        return f"{lo:.2f}-{hi:.2f}"  # ASCII: the sheets' default font has no en dash


AXES: tuple[Axis, ...] = (
    Axis("coverage", "lit share (log): thin lines → filled", -2.0, -0.2218, 10),
    Axis("symmetry", "symmetry: swirl → mandala", 0.0, 1.0, 8),
    Axis("colour", "colour: grey, then the hue of the light", 0.0, 7.0, 7),
)


def axes_json(axes: tuple[Axis, ...] = AXES) -> list[dict[str, object]]:
    """The axes as JSON (stored with the archive; a different set is refused)."""
    return [
        {"name": a.name, "label": a.label, "lo": a.lo, "hi": a.hi, "bins": a.bins}
        for a in axes
    ]


def colour_value(img: np.ndarray) -> float:
    """img (H, W, 3) in [0, 1] → the colour axis's value in [0, 7): 0.5 for grey
    (or nothing lit), else 1 + 6 × the hue, with red centred in the first sector."""
    lum = img @ LUMA
    lit = lum > LIT_LUMA
    if not lit.any():
        return 0.5
    w = lum[lit][:, None]
    mean = (img[lit] * w).sum(axis=0) / w.sum()
    h, s, _ = colorsys.rgb_to_hsv(*(float(c) for c in mean))
    if s < GREY_SATURATION:
        return 0.5
    return 1.0 + 6.0 * ((h + 1.0 / 12.0) % 1.0)


def measure(features: dict[str, float], img: np.ndarray) -> np.ndarray:
    """The descriptors (len(AXES),) of one picture.

    features: aesthetic.aesthetic_features of it (coverage, symmetry);
    img: float (H, W, 3) in [0, 1]."""
    return np.array(
        [
            np.log10(max(features["coverage"], 1e-6)),
            max(features["symmetry"], 0.0),
            colour_value(np.asarray(img, np.float64)),
        ]
    )
