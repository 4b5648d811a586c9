"""Colour, fitted from the target directly (the loss is on grey): hue, layer hues, brightness."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from art_explorer.predict.budget import Candidate, Evaluator
from art_explorer.predict.options import PipelineOptions
from art_explorer.scene import schema
from art_explorer.scene.tensors import to_tensor
from art_explorer.scoring import metrics

POST_PASSES = ("ditherEnabled", "noiseEnabled", "crtEnabled")  # drawn over the lines


def target_chroma(target: np.ndarray) -> np.ndarray | None:
    """The hue of the target's lines: the mean colour of its lit, unsaturated pixels
    (√grey > metrics.LIT, no channel at 1), divided by its largest channel; None when
    the target has too few lit pixels to say."""
    lit = np.sqrt(target.mean(axis=-1)) > metrics.LIT
    unsat = lit & (target.max(axis=-1) < 0.95)
    m = unsat if unsat.sum() >= 16 else lit
    if m.sum() < 4:
        return None
    mean = target[m].mean(axis=0)
    return mean / max(float(mean.max()), 1e-6)


CHROMA_BRIGHTNESS = (0.15, 0.3, 0.45)  # gradient brightnesses a line mostly shows


def shown_chroma(color: np.ndarray) -> np.ndarray:
    """The hue a base chain of this colour (sRGB in [0, 1]) shows: its drawn colour
    (the colour², tone-mapped, sRGB-encoded, as renderer/scene.py draws it) averaged
    over CHROMA_BRIGHTNESS and divided by its largest channel."""
    from renderer.progressions import tone_map
    from renderer.scene import linear_to_srgb, srgb_to_linear

    lin = srgb_to_linear(np.clip(color, 0.0, 1.0)) ** 2
    shown = np.mean([linear_to_srgb(tone_map(lin * b)) for b in CHROMA_BRIGHTNESS], 0)
    return shown / max(float(shown.max()), 1e-6)


def color_for_chroma(chroma: np.ndarray, steps: int = 30) -> np.ndarray:
    """A colour (sRGB, largest channel 1) whose drawn hue (`shown_chroma`) is
    `chroma`: the drawing squares the colour and the tone mapping deepens saturated
    hues, so the target's hue itself would come out too deep. Damped multiplicative
    steps, keeping the colour that came nearest (a hue out of reach, e.g. a channel
    the tone mapping always lifts, ends as near as the steps get)."""
    want = np.clip(np.asarray(chroma, np.float64), 1e-3, 1.0)
    c = want.copy()
    best, best_err = c, math.inf
    for _ in range(steps):
        shown = shown_chroma(c)
        err = float(np.abs(shown - want).max())
        if err < best_err:
            best, best_err = c, err
        c = np.clip(c * (want / np.maximum(shown, 1e-3)) ** 0.3, 1e-3, None)
        c = c / c.max()
    return best


def fit_color(params: dict[str, Any], target: np.ndarray) -> dict[str, Any]:
    """Params with the element colour given the target's hue (`target_chroma`) at the
    colour's current brightness (its largest channel, which the search fitted); layer
    colour overrides are shifted by the same per-channel ratio."""
    chroma = target_chroma(target)
    if chroma is None:
        return params
    old = np.array(schema.color_to_rgb(params["color"]))
    new = color_for_chroma(chroma) * max(float(old.max()), 0.05)
    ratio = new / np.maximum(old, 1e-3)

    def shift(c: str) -> str:
        return schema.rgb_to_color((np.array(schema.color_to_rgb(c)) * ratio).tolist())

    out = {**params, "color": schema.rgb_to_color(new.tolist())}
    out["layers"] = [
        {**la, "color": shift(la["color"])} if "color" in la else la
        for la in params["layers"]
    ]
    return out


def scale_brightness(params: dict[str, Any], factor: float) -> dict[str, Any]:
    """Params with the element colour and every layer colour override multiplied by
    `factor` (channels clipped to [0, 1]): the lines' gain under additive blending."""

    def scale(c: str) -> str:
        rgb = np.clip(np.array(schema.color_to_rgb(c)) * factor, 0.0, 1.0)
        return schema.rgb_to_color(rgb.tolist())

    out = {**params, "color": scale(params["color"])}
    out["layers"] = [
        {**la, "color": scale(la["color"])} if "color" in la else la
        for la in params["layers"]
    ]
    return out


def mix_colors(a: dict[str, Any], b: dict[str, Any], t: float) -> dict[str, Any]:
    """Params `b` with its element colour, and each layer colour override both
    have, mixed (1 − t)·a's + t·b's (sRGB channels)."""

    def mix(x: str, y: str) -> str:
        ca, cb = np.array(schema.color_to_rgb(x)), np.array(schema.color_to_rgb(y))
        return schema.rgb_to_color((ca * (1 - t) + cb * t).tolist())

    out = {**b, "color": mix(a["color"], b["color"])}
    out["layers"] = [
        {**lb, "color": mix(la["color"], lb["color"])}
        if "color" in la and "color" in lb
        else lb
        for la, lb in zip(a["layers"], b["layers"], strict=False)
    ] + b["layers"][len(a["layers"]) :]
    return out


def chain_footprints(
    params: dict[str, Any], evaluate: Evaluator
) -> list[np.ndarray] | None:
    """How bright each chain (the base, then each layer) draws, (S, S) each, from
    1 + layers renders: everything in white with every other layer's own colour
    black (under additive blending a black chain adds nothing), post-passes off, the
    base alone subtracted from each layer's. None when the budget runs out."""
    plain = {**params, **dict.fromkeys(POST_PASSES, False), "color": "#FFFFFF"}
    layers = params["layers"]
    variants = [
        {
            **plain,
            "layers": [
                {**la, "color": "#FFFFFF" if j == k else "#000000"}
                for j, la in enumerate(layers)
            ],
        }
        for k in range(-1, len(layers))
    ]
    images = evaluate.render_only(variants)
    if len(images) < len(variants):
        return None
    grey = [np.asarray(img, np.float32).mean(-1) for img in images]
    return [grey[0]] + [np.clip(g - grey[0], 0.0, None) for g in grey[1:]]


LAYER_HUE_GAP = 0.2  # chains whose parts of the target differ in hue by more than
# this (largest channel of the chroma) get their own colours

# this (largest channel of the chroma) get their own colours
LAYER_OWN_SHARE = 0.6  # a pixel belongs to a chain drawing this share of its light
LAYER_HUE_GAIN = 0.05  # the share of the hue error the layers' hues must take off


def color_error(img: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference of the colour pictures blurred at σ 2 px (each
    channel): what a wrong hue costs, which the grey loss does not see."""
    a = torch.from_numpy(np.asarray(img, np.float64)).permute(2, 0, 1)
    b = torch.from_numpy(np.asarray(target, np.float64)).permute(2, 0, 1)
    return float(metrics.gaussian_blur_batch(a - b, 2.0).abs().mean())


def hue_error(img: np.ndarray, target: np.ndarray) -> float:
    """How far the hue of `img`'s lines is from the target's where both are lit:
    the mean absolute difference of the colour divided by its largest channel,
    over the pixels lit (√grey > metrics.LIT) in both pictures blurred at σ 2 px;
    color_error when fewer than 16 pixels are lit in both. Unlike color_error it
    does not see the shapes: lines in the wrong places cost a plain grey less than
    the target's own hue there, so colour steps judged by color_error alone keep
    grey (docs/decisions.md)."""
    a = torch.from_numpy(np.asarray(img, np.float64)).permute(2, 0, 1)
    b = torch.from_numpy(np.asarray(target, np.float64)).permute(2, 0, 1)
    a, b = metrics.gaussian_blur_batch(torch.stack([a, b]), 2.0)
    lit = (a.mean(0).sqrt() > metrics.LIT) & (b.mean(0).sqrt() > metrics.LIT)
    if int(lit.sum()) < 16:
        return color_error(img, target)
    ca = a / a.amax(0, keepdim=True).clamp_min(1e-6)
    cb = b / b.amax(0, keepdim=True).clamp_min(1e-6)
    return float((ca - cb).abs().mean(0)[lit].mean())


def fit_layer_colors(
    params: dict[str, Any], target: np.ndarray, evaluate: Evaluator
) -> dict[str, Any] | None:
    """Params whose layers take the hues of the target where they draw, when the
    target shows more than one hue: each chain's footprint (`chain_footprints`)
    claims the pixels where it draws most of the light; the base colour follows the
    base chain's part (fit_color's solve), each layer's own colour is the one that,
    times the base colour, draws its part's hue at the chain's present brightness.
    None when the target is one hue, the chains' parts are too small to say, or the
    budget runs out."""
    from renderer.scene import linear_to_srgb, srgb_to_linear

    if not params["layers"] or evaluate.left < len(params["layers"]) + 2:
        return None
    feet = chain_footprints(params, evaluate)
    if feet is None:
        return None
    light = np.stack(feet)
    share = light / np.maximum(light.sum(0), 1e-6)
    lit = np.sqrt(np.asarray(target, np.float32).mean(-1)) > metrics.LIT
    chromas: list[np.ndarray | None] = []
    for k in range(len(feet)):
        m = lit & (share[k] >= LAYER_OWN_SHARE) & (light[k] > 0.02)
        chromas.append(target_chroma(target * m[..., None]) if m.sum() >= 16 else None)
    known = [c for c in chromas if c is not None]
    if (
        len(known) < 2
        or max(float(np.abs(a - b).max()) for a in known for b in known)
        <= LAYER_HUE_GAP
    ):
        return None
    base_old = np.array(schema.color_to_rgb(params["color"]))
    base = base_old
    if chromas[0] is not None:
        base = color_for_chroma(chromas[0]) * max(float(base_old.max()), 0.05)
    b_lin = np.maximum(srgb_to_linear(base), 1e-4)
    old_lin = srgb_to_linear(base_old)
    layers = []
    for la, chroma in zip(params["layers"], chromas[1:], strict=True):
        if chroma is None:
            layers.append(la)
            continue
        own_old = srgb_to_linear(
            np.array(schema.color_to_rgb(la.get("color", params["color"])))
        )
        level = float((old_lin * own_old).max())  # the chain's linear brightness now
        want = srgb_to_linear(color_for_chroma(chroma)) ** 2
        want = want * level / max(float(want.max()), 1e-6)
        own = np.clip(want / b_lin, 0.0, 1.0)
        layers.append(
            {**la, "color": schema.rgb_to_color(linear_to_srgb(own).tolist())}
        )
    return {
        **params,
        "color": schema.rgb_to_color(np.clip(base, 0, 1).tolist()),
        "layers": layers,
    }


def better_in_color(
    best: Candidate,
    cands: list[dict[str, Any]],
    target: np.ndarray,
    evaluate: Evaluator,
    gain: float = 0.0,
) -> Candidate:
    """Of `cands` (a render each; colour changes of `best`, same shapes), those whose
    lines show the target's hue better (hue_error at least `gain`, a share, below
    best's) at a loss at most COLOR_SLACK above best's; of them, the one whose
    colour picture comes nearest the target's (color_error, which also sees the
    brightness; docs/decisions.md); else `best`."""
    key = schema.canonical_json(best.params)
    old = best.image if best.image is not None else evaluate.images.get(key)
    if old is None:
        old = next(iter(evaluate.render_only([best.params])), None)
    if old is None or evaluate.left < len(cands):
        return best
    losses = evaluate(cands)
    bar = (1 - gain) * hue_error(old, target)
    found, err = best, math.inf
    for p, lo in zip(cands, losses, strict=True):
        img = evaluate.last_images.get(schema.canonical_json(p))
        if img is None or lo > best.loss + COLOR_SLACK or hue_error(img, target) >= bar:
            continue
        e = color_error(img, target)
        if e < err:
            found, err = Candidate(lo, p, img), e
    return found


BRIGHTNESS_FACTORS = (0.3, 0.55, 1.8)  # gains fit_brightness tries (a render each)
COLOR_GAINS = (1.0, 1.4, 2.0)  # gains tried with the fitted colour (a render each)
HALF_GAINS = (1.0, 1.4)  # gains tried with it at half strength (color_stages)
# grey loss a colour change may cost: the shapes stay, but their grey dims as the
# hue saturates (the brightness fit follows); docs/decisions.md
COLOR_SLACK = 0.06
# a dimmer version must still light this share of the pixels the target lights, so
# that a blown-out blob over a few dim lines is not "fitted" by drawing it black
BRIGHTNESS_LIT_FLOOR = 0.25


def fit_brightness(
    best: Candidate, evaluate: Evaluator, weight: float = 0.5
) -> Candidate:
    """NCC does not see the overall gain, so a search can end on a blown-out (or too
    dim) version of the right lines. Render the best with its colours scaled by
    BRIGHTNESS_FACTORS and keep the one with the lowest loss + weight × the
    brightness gap to the target (ImageLoss.brightness_gap), each on the loss's
    scale. Costs len(BRIGHTNESS_FACTORS) renders; the best's own render is needed
    (best.image), else the best is returned as it is."""
    if best.image is None:
        return best
    loss = evaluate.loss
    norm = len(loss.sigmas) + loss.f1_weight

    def gap(img: np.ndarray) -> float:
        return float(loss.brightness_gap(to_tensor(img[None]))[0])

    def lit(x: torch.Tensor) -> float:
        return float(metrics.lit_coverage(x)[0])

    floor = BRIGHTNESS_LIT_FLOOR * lit(loss.target)
    score = best.loss + weight * gap(best.image) / norm
    cands = [scale_brightness(best.params, f) for f in BRIGHTNESS_FACTORS]
    losses = evaluate(cands)
    for p, lo in zip(cands, losses, strict=True):
        img = evaluate.last_images.get(schema.canonical_json(p))
        if img is None or not math.isfinite(lo) or lit(to_tensor(img[None])) < floor:
            continue
        s = lo + weight * gap(img) / norm
        if s < score:
            score, best = s, Candidate(lo, p, img)
    return best


def color_renders(opts: PipelineOptions) -> int:
    """Renders the colour step (7) of color_stages takes: one per candidate."""
    return len(COLOR_GAINS) + (len(HALF_GAINS) if opts.color_half else 0)


def color_stages(
    best: Candidate,
    target: np.ndarray,
    evaluate: Evaluator,
    opts: PipelineOptions,
    done: Callable[[str, Candidate], None] | None = None,
) -> Candidate:
    """The pipeline's last stages on the fitted shapes of `best`, each logged by
    `done`: (7) colour: the target's hue (fit_color) at COLOR_GAINS (a saturated
    hue lights fewer channels, so its grey is dimmer than the white's the search
    matched) and, with opts.color_half, at half strength (mixed half and half with
    the colour now) at HALF_GAINS (a paler hue than the fit's, or one whose full
    saturation cannot reach the lines' brightness within COLOR_SLACK); kept by
    better_in_color; (7b) each layer in its own hue when the target shows several
    (kept when its hue error falls LAYER_HUE_GAIN); (8) brightness (fit_brightness).
    """
    log = done or (lambda name, cand: None)
    if opts.color_fit and evaluate.left >= color_renders(opts):
        p_col = fit_color(best.params, target)
        if p_col != best.params:
            cands = [scale_brightness(p_col, g) for g in COLOR_GAINS]
            if opts.color_half:
                half = mix_colors(best.params, p_col, 0.5)
                cands += [scale_brightness(half, g) for g in HALF_GAINS]
            best = better_in_color(best, cands, target, evaluate)
        log("colour", best)
    if opts.layer_color_fit:
        p_lay = fit_layer_colors(best.params, target, evaluate)
        if p_lay is not None:
            best = better_in_color(best, [p_lay], target, evaluate, LAYER_HUE_GAIN)
        log("layer hues", best)
    if opts.brightness_fit and evaluate.left >= len(BRIGHTNESS_FACTORS):
        top = evaluate.best  # the search's best render, with its picture
        key = schema.canonical_json(best.params)
        if best.image is None and top is not None:
            best = top if schema.canonical_json(top.params) == key else best
        best = fit_brightness(best, evaluate)
        log("brightness", best)
    return best
