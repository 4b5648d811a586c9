"""A differentiable twin of the bundled scene: params → picture in torch, with exact
gradients with respect to every continuous value (transforms, factors, steps, alpha,
colour, width, start angle, gradient).

The discrete choices of a scene (geometries, progressions, origin, repetitions, the
number of layers and which values each layer overrides) are fixed in a `Structure`;
the continuous values are (B,) tensors in the parameters' own units, so B variants of
one structure render as one batch. Outlines come from renderer/geometry.py and the
progression formulas from renderer/progressions.py, the very functions the skia
renderer draws with (they work on torch tensors too).

How a picture is made: each instance's outline is taken at the coarsest level of
detail whose chords stay ≤ PIECE_PX (2 px) long and ≤ 0.1 px off the curve, its
segments cut into pieces ≤ PIECE_PX long and its band into strips ≤ STRIP_PX wide;
each piece is a Gaussian splat centred on it, weighted by its area in pixels ×
the instance's opacity × its colour (below), with the variance along x and y
of the piece's box (×3, so that neighbours merge), an anti-aliasing floor and the
requested blur σ². Axis-aligned Gaussians are separable: a splat is the outer
product of a row and a column profile, each integrated over the pixel (erf) as
anti-aliasing does, added through a small pixel window (4 to 10 px by σ; all of a
picture's splats in one index_add, a canvas per chain) or, for wide ones, as one
matrix product (H × K)·(K × W). The chains add up in their colours and clip at 1,
as the renderer's additive blending does. Noise, dither and CRT are not drawn.

Colour, as the renderer's gradient shader holds it (`gradient_stops`): at
GRADIENT_STOPS even stops along the gradient, sRGB(tone_map(rgb × brightness)),
tone_map the three.js ACES filmic curve (renderer/progressions.py, shared), each
stop rounded to 8 bits; a splat takes the colour interpolated between the two stops
around it. ACES mixes the channels and has a toe and a shoulder, so a colour is not
its hue × a grey (bright light turns white, dim light keeps its hue). By default
each chain is splatted on a grey canvas, each splat weighted by its own colour's
channel mean (grey, and so √grey, what NCC compares, is exact up to the clip at 1);
a chain whose gradient one hue fits within HUE_TOL takes that hue (its
light-weighted mean colour over its mean grey: each channel's total light exact),
any other adds a second canvas, the chroma along the one direction in which its
colours vary most (exact for colours on one hue line, as ACES's from a hue towards
white nearly are; it matters where the picture clips). `exact_color` splats a
canvas per channel instead (every splat's own colour).

Modules: `values` (Structure, values ↔ params), `transforms` (where each instance
lands), `colour` (gradient, stops, canvases), `detail` (levels of detail), `splats`
(outlines → splats), `canvas` (splats → pictures: `render`, `render_params`),
`descent` (Adam through the twin), `probe` (does a renderer service draw the bundled
scene). This package re-exports their public names: `from art_explorer.scene import
twin; twin.render(...)`.
"""

from __future__ import annotations

from art_explorer.scene.twin.canvas import (
    MAX_BYTES,
    TooBig,
    picture,
    render,
    render_params,
)
from art_explorer.scene.twin.colour import (
    HUE_TOL,
    _grey_and_hue,
    brightness,
    chain_color,
    gradient_coord,
    gradient_stops,
    stop_color,
)
from art_explorer.scene.twin.descent import (
    COARSE_TO_FINE,
    NCC_LR,
    NCC_LR_DECAY,
    NCC_SCHEDULE,
    WIDE_LR,
    WIDE_SCHEDULE,
    Descent,
    descend,
    ncc_features,
    value_bounds,
    value_span,
)
from art_explorer.scene.twin.detail import LEVEL_DEV_PX, LEVELS, _levels, _outline
from art_explorer.scene.twin.probe import speaks_bundled_schema
from art_explorer.scene.twin.splats import (
    AA_SIGMA,
    PIECE_PX,
    STRIP_PX,
    Splats,
    chain_splats,
)
from art_explorer.scene.twin.transforms import (
    chain_matrix,
    instance_linear,
    stroke_radius,
)
from art_explorer.scene.twin.values import (
    SCENE_KEYS,
    Structure,
    params_of,
    structure_of,
    value_names,
    values_of,
)

__all__ = [
    "AA_SIGMA",
    "COARSE_TO_FINE",
    "HUE_TOL",
    "LEVELS",
    "LEVEL_DEV_PX",
    "MAX_BYTES",
    "NCC_LR",
    "NCC_LR_DECAY",
    "NCC_SCHEDULE",
    "PIECE_PX",
    "SCENE_KEYS",
    "STRIP_PX",
    "WIDE_LR",
    "WIDE_SCHEDULE",
    "Descent",
    "Splats",
    "Structure",
    "TooBig",
    "_grey_and_hue",
    "_levels",
    "_outline",
    "brightness",
    "chain_color",
    "chain_matrix",
    "chain_splats",
    "descend",
    "gradient_coord",
    "gradient_stops",
    "instance_linear",
    "ncc_features",
    "params_of",
    "picture",
    "render",
    "render_params",
    "speaks_bundled_schema",
    "stop_color",
    "stroke_radius",
    "structure_of",
    "value_bounds",
    "value_names",
    "value_span",
    "values_of",
]
