"""Unit tests of the bundled renderer's pieces (renderer/scene.py, renderer/postfx.py),
rendered in-process. The HTTP service has its own tests (test_renderer_server.py)."""

from __future__ import annotations

import io
import math
import random
from typing import Any

import numpy as np
import pytest
from PIL import Image

from art_explorer.scene import sampling, schema
from art_explorer.scoring import metrics
from renderer import geometry, png, postfx, progressions, scene

SIZE = 96


def params(**kw: Any) -> dict[str, Any]:
    """Complete flat params: the defaults with `kw` on top."""
    return schema.validate_params({**schema.default_params(), **kw})


def lone(**kw: Any) -> dict[str, Any]:
    """One bright, centred, unmoved chain: easy to reason about."""
    base = dict(
        origin="center",
        xStep=0.0,
        yStep=0.0,
        scale=1.0,
        position={"x": 0.0, "y": 0.0},
        rotationFactor=0.0,
        layers=[],
        color="#FFFFFF",
        alphaFactor=1.0,
        scaleFactor=1.0,
        geoWidth=0.1,
    )
    return params(**{**base, **kw})


def mass_center(img: np.ndarray) -> tuple[float, float]:
    """(x, y) in pixels of the brightness-weighted centre."""
    w = img.astype(np.float64).sum(axis=2)
    ys, xs = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


# ----------------------------------------------------------------------------------
# Progressions, exactly as the spec's tables


@pytest.mark.parametrize(
    ("kind", "formula"),
    [
        ("exponential", lambda sf, i: sf**i),
        ("linear", lambda sf, i: max(0.01, 1 - 0.1 * i * (1 - sf))),
        ("additive", lambda sf, i: 1 + i * (sf - 1)),
        ("fibonacci", lambda sf, i: sf ** (i * abs(math.sin(0.1618 * i)))),
        ("golden", lambda sf, i: sf ** (0.382 * i)),
        ("sine", lambda sf, i: sf ** (i * (0.3 + 0.7 * abs(math.sin(0.2 * i))))),
    ],
)
def test_scale_progression_follows_the_table(kind: str, formula: Any) -> None:
    for sf in (0.0, 0.5, 0.97, 1.05, 2.0):
        got = progressions.scale_progression(kind, sf, 40)
        want = [formula(sf, i) for i in range(40)]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_exponential_scale_with_sf_3_stays_finite() -> None:
    s = progressions.scale_progression("exponential", 3.0, 500)
    assert np.isfinite(s).all() and s[-1] == pytest.approx(3.0**499)


def test_rotation_progressions_in_degrees() -> None:
    i = np.arange(30)
    np.testing.assert_allclose(
        progressions.rotation_progression("linear", 0.25, 30), 90 * i
    )
    np.testing.assert_allclose(
        progressions.rotation_progression("golden-angle", 1.0, 30), 137.5 * i
    )
    np.testing.assert_allclose(
        progressions.rotation_progression("sine", -0.5, 30),
        np.sin(0.2 * i) * -0.5 * 180,
    )
    fib = progressions.rotation_progression("fibonacci", 1.0, 26)
    assert fib.tolist()[:13] == [
        15 * f for f in (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 0)
    ]
    assert fib[24] == 0 and fib[25] == 15  # F(i mod 12)


def test_alpha_progressions() -> None:
    n, af = 50, 0.4
    i = np.arange(n)
    np.testing.assert_allclose(
        progressions.alpha_progression("exponential", af, n),
        np.maximum(0.02, np.exp(-0.3 * i * (1 - af))),
    )
    np.testing.assert_allclose(
        progressions.alpha_progression("linear", af, n),
        np.maximum(0.02, 1 - i * (1 - af) / n),
    )
    np.testing.assert_allclose(
        progressions.alpha_progression("inverse", af, n),
        np.maximum(0.02, af + (1 - af) * i / n),
    )
    assert progressions.alpha_progression(
        "exponential", 0.0, 500
    ).min() == pytest.approx(0.02)


def test_unknown_progression_names_raise() -> None:
    with pytest.raises(ValueError, match="scaleProgression"):
        progressions.scale_progression("cubic", 1.0, 3)
    with pytest.raises(ValueError, match="rotationProgression"):
        progressions.rotation_progression("spin", 1.0, 3)
    with pytest.raises(ValueError, match="alphaProgression"):
        progressions.alpha_progression("fade", 1.0, 3)


def test_index_offsets_coupled_and_uncoupled() -> None:
    s = np.array([1.0, 2.0, 4.0])
    p = progressions.offset_progression("index", s, 0.5, -1.0, True, "center", 1.0)
    np.testing.assert_allclose(
        p, [[0, 0], [1.5 * 1 * 2 * 0.5, -1.5 * 2], [1.5 * 2 * 4 * 0.5, -12]]
    )
    p = progressions.offset_progression("index", s, 0.5, -1.0, False, "center", 1.0)
    np.testing.assert_allclose(p[:, 0], 1.5 * np.arange(3) * 0.5)


def test_scale_offsets_use_distance_from_one() -> None:
    s = np.array([1.0, 0.5, 3.0])
    p = progressions.offset_progression("scale", s, 1.0, 2.0, True, "center", 1.0)
    np.testing.assert_allclose(p, [[0, 0], [0.75, 1.5], [3.0, 6.0]])


@pytest.mark.parametrize(
    ("origin", "want"),
    [
        ("center", (0.3, 0.6)),
        ("top-center", (0.3, 1 - 0.6)),
        ("bottom-center", (0.3, 0.6 - 1)),
        ("top-left", (0.3 - 1, 1 - 0.6)),
        ("top-right", (1 - 0.3, 1 - 0.6)),
        ("bottom-left", (0.3 - 1, 0.6 - 1)),
        ("bottom-right", (1 - 0.3, 0.6 - 1)),
    ],
)
def test_origin_then_step_factor(origin: str, want: tuple[float, float]) -> None:
    # i = 1, s = 1, coupled: 1.5·(0.2, 0.4) = (0.3, 0.6), then origin, then × 0.5
    p = progressions.offset_progression(
        "index", np.array([1.0, 1.0]), 0.2, 0.4, True, origin, 0.5
    )
    np.testing.assert_allclose(p[1], np.array(want) * 0.5)


def test_gradient_brightness() -> None:
    assert progressions.gradient_brightness(0.0) == pytest.approx(
        1 - (0.375**2) * (3 - 0.75)
    )
    assert progressions.gradient_brightness(1.0) == pytest.approx(0.0)
    assert progressions.gradient_brightness(-0.5) == progressions.gradient_brightness(
        0.5
    )
    g = np.linspace(0, 1, 50)
    assert (
        np.diff(progressions.gradient_brightness(g)) <= 1e-12
    ).all()  # darker outwards


# ----------------------------------------------------------------------------------
# Geometry


@pytest.mark.parametrize(
    ("name", "bounds"),
    [
        ("ring", (-0.9, -0.9, 0.9, 0.9)),
        ("bar", (0.0, -0.9, 0.0, 0.9)),
        ("line", (0.0, -0.6, 0.0, 0.6)),
        ("arch", (-0.8, 0.0, 0.8, 0.8)),
        ("u", (-0.4, -0.8, 0.4, 0.9)),
        ("wave", (-0.9, -0.3, 0.9, 0.3)),
        ("infinity", (-0.6, -0.3, 0.6, 0.3)),
        ("square", (-0.7, -0.7, 0.7, 0.7)),
        ("roundedRect", (-0.65, -0.65, 0.65, 0.65)),
    ],
)
def test_geometry_bounds_match_the_spec(name: str, bounds: tuple[float, ...]) -> None:
    np.testing.assert_allclose(geometry.geometry_bounds(name), bounds, atol=2e-3)


def test_spiral_grows_from_0_2_to_0_8() -> None:
    path = geometry.geometry_path("spiral")
    first, last = path.getPoint(0), path.getPoint(path.countPoints() - 1)
    assert (first.x(), first.y()) == pytest.approx((0.2, 0.0))
    assert (last.x(), last.y()) == pytest.approx((0.8, 0.0), abs=1e-6)
    assert max(abs(v) for v in geometry.geometry_bounds("spiral")) <= 0.8 + 1e-3


def test_every_geometry_draws_and_they_differ() -> None:
    imgs = {
        g: scene.render(lone(geometry=g, repetitions=1), 64) for g in schema.GEOMETRIES
    }
    assert all(img.max() > 40 for img in imgs.values())
    keys = list(imgs)
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            if {keys[a], keys[b]} == {"bar", "line"}:
                continue  # same segment, different length: still differ below
            assert not np.array_equal(imgs[keys[a]], imgs[keys[b]])
    assert imgs["bar"].sum() > imgs["line"].sum()


def test_arch_is_the_upper_half_and_plus_y_is_up() -> None:
    img = scene.render(
        lone(geometry="arch", repetitions=1, gradientAngle=math.pi / 2), SIZE
    )
    rows = img.sum(axis=(1, 2))
    assert rows[: SIZE // 2].sum() > 20 * rows[SIZE // 2 + 2 :].sum()


@pytest.mark.parametrize("angle", [0.0, math.pi / 4, math.pi / 2, math.pi])
def test_gradient_darkens_along_the_angle(angle: float) -> None:
    """Along a vertical line (q = (0, y)) the linear brightness is 1 − smoothstep(0.2,
    1, 0.5 + 0.5·|g|) with g = q·(sin θ, cos θ) = y·cos θ, then tone-mapped and
    sRGB-encoded: dark ends for θ = 0 or π, uniform for θ = π/2."""
    size, scale = 192, 1.5
    p = lone(geometry="line", repetitions=1, scale=scale, gradientAngle=angle)
    rows = scene.render(p, size)[..., 0].astype(float).sum(axis=1)  # (size,)
    px = size / 5 * scale  # pixels per element-local unit

    def at(y: float) -> float:  # the row profile at local y, interpolated
        r = size / 2 - y * px - 0.5
        i = math.floor(r)
        return rows[i] * (i + 1 - r) + rows[i + 1] * (r - i)

    def bright(g: float) -> float:
        lit = progressions.gradient_brightness(g) * np.ones(3)  # white
        return float(scene.linear_to_srgb(progressions.tone_map(lit))[0])

    for y in (0.2, 0.4, 0.5):
        want = bright(y * math.cos(angle)) / bright(0.0)
        assert at(y) / at(0.0) == pytest.approx(float(want), abs=0.03), y


def test_stroke_scales_with_geo_width() -> None:
    thin = scene.render(lone(geometry="ring", repetitions=1, geoWidth=0.02), SIZE)
    thick = scene.render(lone(geometry="ring", repetitions=1, geoWidth=0.08), SIZE)
    assert thick.sum() > 3 * thin.sum()


@pytest.mark.parametrize("width", [0.05, 0.1])
def test_band_is_twice_geo_width(width: float) -> None:
    """The original's tube has radius geoWidth: a band 2·geoWidth wide (local units),
    here 2·geoWidth × 2 (scene scale) × size/5 px across a vertical bar."""
    size = 200
    p = lone(geometry="bar", repetitions=1, geoWidth=width, scale=2.0)
    p["gradientRange"] = [1.5, 2.0]  # uniform brightness
    row = scene.render(p, size)[size // 2, :, 0].astype(float) / 255
    want = 2 * width * 2.0 * size / 5
    assert row.sum() / row.max() == pytest.approx(want, rel=0.05)


def test_start_angle_turns_the_outline() -> None:
    """startAngle turns the outline about its origin: an arch turned by π is the
    lower half; turned by π/2 it opens to the right."""
    up = scene.render(lone(geometry="arch", repetitions=1), SIZE).astype(int)
    down = scene.render(
        lone(geometry="arch", repetitions=1, startAngle=math.pi), SIZE
    ).astype(int)
    assert np.abs(down - up[::-1]).mean() < 1.0
    left = scene.render(
        lone(geometry="arch", repetitions=1, startAngle=math.pi / 2), SIZE
    ).astype(float)
    x, _ = mass_center(left)
    assert x < SIZE / 2 - 5  # the arch (0 → π) turned by π/2 spans π/2 → 3π/2
    np.testing.assert_allclose(
        geometry.outline_points("arch", math.pi / 2)[0], (0.0, 0.8), atol=1e-9
    )
    # a layer's own startAngle overrides the base's
    p = lone(geometry="arch", repetitions=1, position={"x": 100.0, "y": 0.0})
    p["layers"] = [layer(color="#FFFFFF", startAngle=math.pi)]
    np.testing.assert_array_equal(scene.render(p, SIZE), down)


def test_gradient_range_sets_the_falloff() -> None:
    """Brightness 1 − smoothstep(lo, hi, 0.5 + 0.5·|g|): with lo ≥ 1 nothing darkens
    (0.5 + 0.5·|g| ≤ 1 on the outline: white at full brightness, tone-mapped, is
    sRGB(0.763) = 226); with hi ≤ 0.5 everything is black."""
    flat = lone(geometry="ring", repetitions=1, gradientRange=[1.5, 2.0])
    img = scene.render(flat, SIZE)
    full = scene.linear_to_srgb(progressions.tone_map(np.ones(3)))[0]
    assert img.max() == round(255 * float(full)) == 226
    black = lone(geometry="ring", repetitions=1, gradientRange=[0.0, 0.5])
    assert scene.render(black, SIZE).max() == 0
    g = np.linspace(-1, 1, 9)
    np.testing.assert_allclose(
        progressions.gradient_brightness(g, (1.0, 0.5)),
        progressions.smoothstep(0.5, 1.0, 0.5 + 0.5 * np.abs(g)),  # reversed edges
    )


# ----------------------------------------------------------------------------------
# Composition: scene transform, layers, overrides, mirroring


def test_scene_position_moves_the_picture() -> None:
    p0 = lone(geometry="ring", repetitions=1)
    p1 = lone(geometry="ring", repetitions=1, position={"x": 1.0, "y": 0.5})
    (x0, y0), (x1, y1) = (
        mass_center(scene.render(p0, SIZE)),
        mass_center(scene.render(p1, SIZE)),
    )
    px = SIZE / 5  # pixels per world unit
    assert x1 - x0 == pytest.approx(1.0 * px, abs=1.0)
    assert y1 - y0 == pytest.approx(-0.5 * px, abs=1.0)  # +y is up


def test_rotation_is_counter_clockwise() -> None:
    # a bar offset to +x, rotated by +90° about the scene centre, ends up at +y (top)
    p = lone(geometry="bar", repetitions=1, position={"x": 0.0, "y": 0.0})
    p["layers"] = []
    p["positionProgression"] = "index"
    p["xStep"] = 0.0
    p["origin"] = "top-right"  # p_0 = (1 − 0, 1 − 0) · stepFactor
    p["stepFactor"] = 1.0
    x, y = mass_center(scene.render(p, SIZE))
    assert x > SIZE / 2 and y < SIZE / 2
    x, y = mass_center(scene.render({**p, "rotation": math.pi / 2}, SIZE))
    assert x < SIZE / 2 and y < SIZE / 2  # (1, 1) → (-1, 1)


def test_step_factor_spreads_the_chain() -> None:
    near = scene.render(params(stepFactor=0.02, origin="center", layers=[]), SIZE)
    far = scene.render(params(stepFactor=0.3, origin="center", layers=[]), SIZE)
    assert mass_center(far)[0] < mass_center(near)[0] - 5  # xStep −1.5: to the left


def invisible_base(**kw: Any) -> dict[str, Any]:
    """A white base chain moved far out of view (Scene.position moves the base chain
    only), so that only the layers show, in their own colours (white × own)."""
    base = dict(repetitions=12, scaleFactor=1.08, rotationFactor=0.03, xStep=0.2)
    far = {"x": 100.0, "y": 100.0}
    return lone(**{**base, **kw, "color": "#FFFFFF", "position": far})


def layer(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rotation": 0.0,
        "position": {"x": 0.0, "y": 0.0},
        "scale": {"x": 1.0, "y": 1.0},
        "color": "#FFCC88",
    }
    out.update(kw)
    return out


def test_black_base_draws_nothing() -> None:
    assert scene.render(invisible_base(), SIZE).max() == 0
    # the base colour multiplies every layer's: black draws nothing at all
    black = lone(color="#000000", layers=[layer()])
    assert scene.render(black, SIZE).max() == 0


def test_layer_colour_multiplies_the_base_colour() -> None:
    """Linear base × linear layer colour, tone-mapped and sRGB-encoded: #808080 ×
    #FFFF00 draws sRGB(ACES(0.216 × (1, 1, 0))) ≈ (140, 140, 0) where fully
    covered."""
    p = lone(
        repetitions=1,
        geometry="bar",
        geoWidth=0.1,
        color="#808080",
        gradientRange=[1.5, 2.0],  # no darkening over the outline
        position={"x": 100.0, "y": 0.0},
        layers=[layer(color="#FFFF00")],
    )
    img = scene.render(p, SIZE).astype(int)
    assert img[..., 2].max() == 0
    assert abs(int(img[..., 0].max()) - 140) <= 1
    assert abs(int(img[..., 1].max()) - 140) <= 1
    assert scene.chain_color("#808080", "#FFFF00") == pytest.approx(
        (0.2158605, 0.2158605, 0.0), abs=1e-6
    )


def test_mirrored_layer_is_the_flipped_image() -> None:
    shape = dict(geometry="spiral", xStep=0.4, stepFactor=0.3)
    a = scene.render(invisible_base(**shape, layers=[layer()]), SIZE).astype(int)
    b = scene.render(
        invisible_base(**shape, layers=[layer(scale={"x": -1.0, "y": 1.0})]), SIZE
    ).astype(int)
    assert a.max() > 100
    assert np.abs(b - a[:, ::-1]).mean() < 0.5
    assert np.abs(b - a[:, ::-1]).max() <= 24  # anti-aliasing at mirrored edges
    assert np.abs(b - a).mean() > 2  # and it really is not symmetric


def test_layer_overrides_and_inheritance() -> None:
    plain = scene.render(invisible_base(layers=[layer()]), SIZE)
    assert plain.max() > 0
    for key, value in [
        ("geometry", "square"),
        ("scaleFactor", 0.9),
        ("rotationFactor", 0.2),
        ("alphaFactor", 0.1),
        ("geoWidth", 0.01),
        ("stepFactor", 1.0),
    ]:
        img = scene.render(invisible_base(layers=[layer(**{key: value})]), SIZE)
        assert not np.array_equal(img, plain), key
    # the layer inherits what it does not set: same as setting the base's own value
    same = scene.render(
        invisible_base(layers=[layer(scaleFactor=1.08, geoWidth=0.1)]), SIZE
    )
    np.testing.assert_array_equal(same, plain)


def test_layer_position_rotation_and_colour() -> None:
    small = dict(repetitions=1, geometry="line")
    moved = layer(position={"x": 1.0, "y": -0.5})
    a = mass_center(scene.render(invisible_base(**small, layers=[layer()]), SIZE))
    b = mass_center(scene.render(invisible_base(**small, layers=[moved]), SIZE))
    assert (b[0] - a[0], b[1] - a[1]) == pytest.approx((SIZE / 5, SIZE / 10), abs=0.5)
    plain = scene.render(invisible_base(layers=[layer()]), SIZE)
    red = scene.render(invisible_base(layers=[layer(color="#FF0000")]), SIZE)
    # red stays red (the tone mapping leaks a little into green and blue)
    assert red[..., 0].max() > 5 * max(int(red[..., 1:].max()), 1)
    turned = scene.render(invisible_base(layers=[layer(rotation=1.0)]), SIZE)
    assert not np.array_equal(turned, plain)


def test_zero_layer_scale_draws_nothing() -> None:
    img = scene.render(invisible_base(layers=[layer(scale={"x": 0.0, "y": 1.0})]), SIZE)
    assert img.max() == 0


def test_layers_add_up() -> None:
    one = scene.render(
        lone(repetitions=1, geoWidth=0.05, color="#A0A0A0"), SIZE
    ).astype(int)
    same = {k: v for k, v in layer().items() if k != "color"}  # inherits the colour
    two = scene.render(
        lone(repetitions=1, geoWidth=0.05, color="#A0A0A0", layers=[same]),
        SIZE,
    ).astype(int)
    lit = one > 8
    assert np.abs(two[lit] - 2 * one[lit]).max() <= 2  # additive: twice as bright


# ----------------------------------------------------------------------------------
# Guards and edge cases


def test_culling_skips_blown_up_and_tiny_instances() -> None:
    p = params(repetitions=500, scaleFactor=3.0, origin="center", xStep=0.0)
    inst = scene.chain_instances(p, scene.chains(p)[0], 256)
    assert 0 < len(inst.alpha) < 30
    p = params(repetitions=500, scaleFactor=0.5, origin="center", xStep=0.0)
    inst = scene.chain_instances(p, scene.chains(p)[0], 256)
    assert 0 < len(inst.alpha) < 30
    assert np.isfinite(inst.matrices).all()


def test_offscreen_scene_is_black() -> None:
    far = params(position={"x": 1e6, "y": -1e6}, layers=[])
    assert scene.render(far, 64).max() == 0
    # Scene.position moves the base chain only: the default layer stays in view
    assert scene.render(params(position={"x": 1e6, "y": -1e6}), 64).max() > 0


@pytest.mark.parametrize(
    "extreme",
    [
        dict(repetitions=500, scaleFactor=3.0),
        dict(repetitions=500, scaleFactor=0.0, scaleProgression="additive"),
        dict(repetitions=500, scaleFactor=3.0, scaleProgression="fibonacci", xStep=3.0),
        dict(
            repetitions=500, stepFactor=2.0, xStep=-3.0, yStep=3.0, positionCoupled=True
        ),
        dict(rotation=1e9, gradientAngle=-1e9, position={"x": 1e300, "y": 0.0}),
        dict(geoWidth=0.001, scale=1.5, repetitions=1),
        dict(alphaFactor=0.0, alphaProgression="linear", repetitions=500),
        dict(ditherEnabled=True, ditherColors=2, ditherBias=1.0, ditherStrength=1.0),
        dict(noiseEnabled=True, noiseDensity=1.0, noiseOpacity=0.4, noiseSize=0.5),
    ],
)
def test_extreme_values_render(extreme: dict[str, Any]) -> None:
    for size in (32, 80):
        img = scene.render(params(**extreme), size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8


def test_minimum_repetitions_and_low_opacity_are_faint_not_broken() -> None:
    img = scene.render(params(repetitions=0, alphaFactor=0.0), SIZE)  # 0 clamps to 1
    assert 0 < img.max() < 255
    faint = scene.render(lone(repetitions=1, color="#010101"), SIZE)
    assert faint.max() <= 1


# ----------------------------------------------------------------------------------
# Post-passes


def gray_rgba(value: int, size: int = 64) -> np.ndarray:
    out = np.full((size, size, 4), value, np.uint8)
    out[..., 3] = 255
    return out


@pytest.mark.parametrize("kind", ["bayer", "noise", "halftone"])
def test_dither_two_colours_keeps_the_mean(kind: str) -> None:
    p = params(
        ditherType=kind,
        ditherColors=2,
        ditherStrength=1.0,
        ditherBias=0.5,
        ditherMatrix=8,
        ditherScale=1.0,
    )
    for value in (64, 128, 191):
        img = gray_rgba(value, 256)
        postfx.apply_dither(img, p, 256)
        assert set(np.unique(img[..., :3])) <= {0, 255}
        assert img[..., :3].mean() == pytest.approx(value, abs=0.1 * 255)


def test_dither_levels_strength_and_grayscale() -> None:
    img = np.zeros((64, 64, 4), np.uint8)
    img[..., 0], img[..., 3] = 200, 255
    p = params(ditherColors=5, ditherStrength=1.0, ditherGrayscale=False)
    colour = img.copy()
    postfx.apply_dither(colour, p, 64)
    assert set(np.unique(colour[..., 0])) <= {0, 64, 128, 191, 255}
    assert colour[..., 1:3].max() == 0  # black channels stay black at bias 0.5
    gray = img.copy()
    postfx.apply_dither(gray, {**p, "ditherGrayscale": True}, 64)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    none = img.copy()
    postfx.apply_dither(none, {**p, "ditherStrength": 0.0}, 64)
    np.testing.assert_array_equal(none[..., :3], img[..., :3])


def test_dither_bias_lights_black_only_above_one_half() -> None:
    for bias, lit in ((0.0, False), (0.5, False), (0.9, True)):
        img = gray_rgba(0)
        postfx.apply_dither(img, params(ditherBias=bias, ditherStrength=1.0), 64)
        assert (img[..., :3].max() > 0) == lit


def test_sparse_and_dense_dither_agree() -> None:
    rng = np.random.default_rng(3)
    img = gray_rgba(0, 128)
    lit = rng.random((128, 128)) < 0.1
    img[lit, :3] = rng.integers(1, 256, (int(lit.sum()), 3))
    for bias in (0.3, 0.8):
        p = params(
            ditherType="noise", ditherBias=bias, ditherStrength=0.7, ditherColors=4
        )
        sparse = img.copy()
        postfx.apply_dither(sparse, p, 128)
        full = img.copy()
        full[~lit, 0] = 1  # makes every pixel "lit": the dense path
        postfx.apply_dither(full, p, 128)
        # identical except where the 1/255 nudge of channel R changed a floor
        assert (sparse[..., 1:3] == full[..., 1:3]).all()
        assert (np.abs(sparse[..., 0].astype(int) - full[..., 0]) <= 255 // 3 + 1).all()
        assert (sparse[lit] == full[lit]).all()


@pytest.mark.parametrize("grayscale", [False, True])
@pytest.mark.parametrize("lit_share", [0.1, 1.0])  # the sparse and the dense path
def test_dither_follows_the_shift_formula(grayscale: bool, lit_share: float) -> None:
    """Bayer, cell = ditherScale·size/1024 px: t = B[cy mod n, cx mod n]/n², shift =
    (t − 0.5 + bias)/(colors − 1), q = floor((v + shift)(colors − 1))/(colors − 1)
    (on luma when grayscale), out = v + strength·(q − v). Up to rounding, except
    where (v + shift)(colors − 1) lies on a level boundary."""
    size, n, colors, strength, bias = 256, 4, 5, 0.6, 0.7
    rng = np.random.default_rng(4)
    img = gray_rgba(0, size)
    lit = rng.random((size, size)) < lit_share
    img[lit, :3] = rng.integers(1, 256, (int(lit.sum()), 3))
    p = params(
        ditherEnabled=True,
        ditherType="bayer",
        ditherMatrix=n,
        ditherScale=8.0,  # cells of 2 px at 256
        ditherColors=colors,
        ditherStrength=strength,
        ditherBias=bias,
        ditherGrayscale=grayscale,
    )
    got = img.copy()
    postfx.apply_dither(got, p, size)
    c = np.arange(size) // 2
    t = postfx.bayer_matrix(n)[c[:, None] % n, c[None, :] % n] / (n * n)
    v = img[..., :3] / 255.0
    luma = np.repeat((v @ [0.299, 0.587, 0.114])[..., None], 3, axis=2)
    v_q = luma if grayscale else v  # what is quantised
    x = (v_q + ((t - 0.5 + bias) / (colors - 1))[..., None]) * (colors - 1)
    q = np.clip(np.floor(x), 0, colors - 1) / (colors - 1)
    want = (v + strength * (q - v)) * 255
    clear = np.abs(x - np.round(x)) > 1e-4
    assert clear.mean() > 0.95
    assert np.abs(got[..., :3] - want)[clear].max() <= 0.51


def test_noise_dither_is_interleaved_gradient_noise() -> None:
    # fract(52.9829189·fract(0.06711056·cx + 0.00583715·cy)), cells of 2 px at 256
    t = postfx.threshold_field("noise", 4, 8.0, 256).astype(np.float64)
    c = np.arange(256) // 2
    f = np.modf(0.06711056 * c[None, :] + 0.00583715 * c[:, None])[0]
    want = np.modf(52.9829189 * f)[0]
    d = np.abs(t - want)
    assert (np.minimum(d, 1 - d) < 1e-3).mean() > 0.999  # up to float32 at wraps


def test_bayer_pattern_cell_scales_relative_to_1024() -> None:
    t1024 = postfx.threshold_field("bayer", 4, 8.0, 1024)
    t256 = postfx.threshold_field("bayer", 4, 8.0, 256)
    assert (t1024[:8, :8] == t1024[0, 0]).all() and t1024[0, 8] != t1024[0, 0]
    assert (t256[:2, :2] == t256[0, 0]).all() and t256[0, 2] != t256[0, 0]
    np.testing.assert_array_equal(np.unique(t1024), np.arange(16) / 16)


def test_noise_is_seeded_and_density_only_adds_cells() -> None:
    def noisy(density: float) -> np.ndarray:
        img = gray_rgba(128)
        postfx.apply_noise(img, params(noiseDensity=density, noiseOpacity=0.4), 64)
        return img

    a, b = noisy(0.2), noisy(0.2)
    np.testing.assert_array_equal(a, b)
    changed_02 = noisy(0.2)[..., 0] != 128
    changed_05 = noisy(0.5)[..., 0] != 128
    assert changed_02.mean() == pytest.approx(0.2, abs=0.05)
    assert (changed_05 | ~changed_02).all()  # superset
    # value·opacity with value uniform in [−0.5, 0.5): at most ±0.2 = ±51 levels
    delta = a[..., 0].astype(int) - 128
    assert np.abs(delta).max() <= 51 and delta.min() < -25 and delta.max() > 25
    assert (noisy(0.0)[..., :3] == 128).all()


def test_noise_hash_is_the_original_shaders() -> None:
    """Spot values of the original's hash, computed by hand in float32:
    p3 = fract((x, y, x)·0.1031); p3 += dot(p3, p3.yzx + 33.33);
    fract((p3.x + p3.y)·p3.z)."""
    f32 = np.float32

    def by_hand(x: float, y: float) -> float:
        a, b = (f32(x) * f32(0.1031)) % f32(1), (f32(y) * f32(0.1031)) % f32(1)
        c = a
        d = a * (b + f32(33.33)) + b * (c + f32(33.33)) + c * (a + f32(33.33))
        return float(((a + d + b + d) * (c + d)) % f32(1))

    for x, y in ((0.0, 0.0), (3.0, 7.0), (127.1, 311.7), (1000.0, 5.0)):
        got = float(postfx._hash(np.array([x], f32), np.array([y], f32))[0])
        assert got == pytest.approx(by_hand(x, y), abs=1e-5)
        assert 0.0 <= got < 1.0


def crt(**kw: Any) -> dict[str, Any]:
    base = dict(
        crtEnabled=True,
        crtScale=1.0,
        crtMask="none",
        crtBloom=0.0,
        crtWarp=0.0,
        crtBrightness=1.0,
    )
    return params(**{**base, **kw})


def test_crt_at_scale_one_without_extras_keeps_the_picture() -> None:
    """With one CRT cell per pixel the beam sits on the sample (distance 0): the
    neighbours' Gaussian weights 2^(hard·1²) are ≤ 2^-12, so the picture stays."""
    img = scene.render(lone(geometry="spiral", repetitions=30), 64)
    rgba = np.dstack([img, np.full((64, 64), 255, np.uint8)])
    out = rgba.copy()
    postfx.apply_crt(out, crt(), 64)
    assert np.abs(out[..., :3].astype(int) - img).max() <= 1


def test_crt_brightness_mask_and_cells() -> None:
    rgba = gray_rgba(100, 48)
    out = rgba.copy()
    postfx.apply_crt(out, crt(crtBrightness=2.0), 48)
    assert (out[..., :3] == 200).all()
    out = rgba.copy()  # aperture grille at full strength: one channel ×1.8, two ×0.3
    postfx.apply_crt(out, crt(crtMask="grille", crtMaskStrength=1.0), 48)
    assert (out[:, 0, 0] == 180).all() and (out[:, 0, 1:3] == 30).all()
    assert (out[:, 1, 1] == 180).all() and (out[:, 2, 2] == 180).all()
    # scale 2: cells of 2×2 px, every pixel centre 0.25 cell from its beam; with
    # crtScanlines 1 (hardScan −4) the three rows weigh Σ 2^(−4·(0.25 + k)²),
    # k = −1, 0, 1: 0.2102 + 0.8409 + 0.0131 = 1.064 (the shader does not normalise)
    out = rgba.copy()
    postfx.apply_crt(out, crt(crtScale=2.0, crtScanlines=1.0), 48)
    assert (out[..., :3] == 106).all()
    # every CRT option changes a real picture, deterministically
    img = scene.render(lone(geometry="ring", repetitions=20), 64)
    base = np.dstack([img, np.full((64, 64), 255, np.uint8)])
    for kw in (
        dict(crtScale=3.0),
        dict(crtBleed=1.0, crtScale=2.0),
        dict(crtBloom=1.0),
        dict(crtWarp=0.1),
        dict(crtMask="shadow"),
        dict(crtMask="stretched"),
        dict(crtMask="vga"),
    ):
        a, b = base.copy(), base.copy()
        postfx.apply_crt(a, crt(**kw), 64)
        postfx.apply_crt(b, crt(**kw), 64)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, base), kw


def test_crt_param_runs_the_pass() -> None:
    p = lone(geometry="ring", repetitions=20)
    assert not np.array_equal(
        scene.render({**p, "crtEnabled": True}, 64), scene.render(p, 64)
    )


def test_noise_cells() -> None:
    # max(noiseSize·size/1024, 1) px: 1 px for every size the API allows (≤ 2048)
    img = gray_rgba(128, 2048)
    postfx.apply_noise(img, params(noiseSize=0.5, noiseDensity=0.5), 2048)
    assert (img[0::2, 0::2, 0] != img[1::2, 1::2, 0]).mean() > 0.3
    u, _ = postfx.noise_field(64, 2.0)
    assert (u[0::2, 0::2] == u[1::2, 1::2]).all()


# ----------------------------------------------------------------------------------
# Whole renders: determinism, spellings, messy refs, PNG


def test_fresh_skia_surfaces_are_zeroed() -> None:
    # scene._surface relies on it instead of clearing
    for _ in range(20):
        pixels = scene._read(scene._surface(64), 64)
        assert not pixels.any()


def test_render_is_deterministic() -> None:
    rng = random.Random(7)
    for _ in range(4):
        p = sampling.sample_params(rng)
        p["ditherEnabled"] = p["noiseEnabled"] = True
        assert scene.render_png(p, 64) == scene.render_png(p, 64)


def test_png_round_trip() -> None:
    img = scene.render(sampling.sample_params(random.Random(2)), 48)
    data = png.encode_png(img)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB" and im.size == (48, 48)
        np.testing.assert_array_equal(np.asarray(im), img)


def test_both_spellings_give_the_same_image() -> None:
    p = sampling.sample_params(random.Random(11))
    p["ditherEnabled"] = True
    flat = scene.render_png(p, 64)
    prefixed = schema.validate_params(schema.to_prefixed(p))
    nested = schema.validate_params(schema.to_scene_params(p))
    assert scene.render_png(prefixed, 64) == flat
    assert scene.render_png(nested, 64) == flat


def test_messy_refs_render_like_clean_ones() -> None:
    messy = {
        "Scalars.repetitions": 40,  # int, fine
        "Scalars.scaleFactor": 1,  # int for a float
        "Element.color": "#ffccaa",  # lower case
        "Element.geometry": {"value": "u", "disabled": False},  # Leva wrapper
        "Groups.g0.g0-rotation": 0.5,
        "Groups.g0.g0-position": {"x": 0.2, "y": 0},
        "Groups.g0.g0-scale": {"x": -1, "y": 1},
        "Groups.g0.g0-color": {"value": "#00ff00", "disabled": True},  # absent override
        "Some.unknown": 3,  # ignored
        "Scene.debug": True,  # ignored by the drawing
    }
    clean = {
        "repetitions": 40,
        "scaleFactor": 1.0,
        "color": "#FFCCAA",
        "geometry": "u",
        "layers": [
            {
                "rotation": 0.5,
                "position": {"x": 0.2, "y": 0.0},
                "scale": {"x": -1.0, "y": 1.0},
            }
        ],
    }
    a = scene.render_png(schema.validate_params(messy), 64)
    b = scene.render_png(schema.validate_params(clean), 64)
    assert a == b
    assert scene.render_png(schema.validate_params({}), 64) == scene.render_png(
        params(), 64
    )


def test_huge_outline_around_the_view_is_culled_exactly() -> None:
    # a ring of radius 0.9·s around the centre: invisible once it encloses the view
    around = lone(geometry="ring", repetitions=1, scale=1.5, layers=[])
    around["layers"] = [layer(scale={"x": 2.0, "y": 2.0}, color="#FFFFFF")]
    around["position"] = {"x": 100.0, "y": 100.0}  # the base chain: out of view
    around["scaleFactor"] = 1.0
    chain = scene.chains(around)[1]
    assert len(scene.chain_instances(around, chain, 64).alpha) == 1  # crosses the view
    big = {**around, "scale": 1.5, "layers": [layer(scale={"x": 2.0, "y": 2.0})]}
    big["layers"][0]["scaleFactor"] = 1.0
    big["repetitions"] = 3
    big["scaleProgression"] = "additive"  # s = 1, 1, 1: same
    assert scene.render(big, 64).max() > 0
    huge = {**big, "layers": [layer(scale={"x": 2.0, "y": 2.0}, scaleFactor=2.0)]}
    huge["repetitions"] = 2  # s = 1, 2: the second ring (radius 5.4) encloses the view
    inst = scene.chain_instances(huge, scene.chains(huge)[1], 64)
    assert len(inst.alpha) == 1


def test_merged_repeats_match_drawing_each_one(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [
        dict(alphaFactor=1.0),  # 200 × opacity 1: one layer scaled by 200
        dict(alphaFactor=0.9, alphaProgression="linear"),
        dict(alphaFactor=0.0, alphaProgression="exponential"),  # sums to ~ 3.8
    ]
    for extra in cases:
        p = lone(
            repetitions=200, geometry="spiral", geoWidth=0.03, color="#806040", **extra
        )
        merged = scene.render(p, SIZE).astype(int)
        plan, _, _ = scene.plan_draws(p, SIZE, scene.EXACT_MERGE_PX)
        assert sum(len(d) for _, d in plan) == 1
        monkeypatch.setattr(scene, "EXACT_MERGE_PX", 0.0)
        each = scene.render(p, SIZE).astype(int)
        monkeypatch.undo()
        # up to skia's rounding of faint draws (coverage × opacity 0.02 per draw)
        assert np.abs(merged - each).max() <= 12, extra
        assert np.abs(merged - each).mean() < 0.2, extra
        assert each.max() > 50


def test_heavy_scene_is_drawn_smaller_and_still_looks_alike() -> None:
    p = lone(
        repetitions=500,
        geometry="infinity",
        scaleFactor=1.002,
        scale=1.5,
        geoWidth=0.004,
        color="#505050",
        layers=[layer(scale={"x": 2.0, "y": 2.0}, rotation=0.3 * i) for i in range(5)],
    )
    _, fixed, scaled = scene.plan_draws(p, 512, scene.LOOSE_MERGE_PX)
    assert fixed + scaled > scene.DRAW_BUDGET_US
    assert scene.lod_size(fixed, scaled, 512) < 512
    small = scene.render(p, 128).astype(float)
    big = scene.render(p, 512).astype(float)
    shrunk = big.reshape(128, 4, 128, 4, 3).mean(axis=(1, 3))
    assert metrics.ncc(small / 255, shrunk / 255) > 0.9


def test_gallery_writes_a_contact_sheet(tmp_path: Any) -> None:
    from renderer import gallery

    out = tmp_path / "sheet.png"
    gallery.main(gallery.parse_args(["--out", str(out), "--tile", "32"]))
    with Image.open(out) as im:
        cols, rows = len(gallery.VARIANTS), len(schema.GEOMETRIES)
        assert im.size[0] > 32 * cols and im.size[1] > 32 * rows


def test_tone_map_is_threes_aces_filmic() -> None:
    """Values of three.js's ACESFilmicToneMapping (exposure 1), worked by hand from
    its formula: black stays black, white × 1 → 0.763 linear, and a saturated blue
    loses its red and green faster than its blue (the golden pictures' deep blues)."""
    tm = progressions.tone_map
    assert tm(np.zeros(3)) == pytest.approx(np.zeros(3), abs=1e-9)
    assert tm(np.ones(3)) == pytest.approx(np.full(3, 0.76339), abs=1e-4)
    assert tm(np.full(3, 100.0)) == pytest.approx(np.ones(3), abs=1e-9)  # clamps
    blue = tm(0.3 * np.array([0.0466, 0.0466, 1.0]))
    assert blue[2] > 10 * blue[0] and blue[2] > 10 * blue[1]
    torch = pytest.importorskip("torch")
    t = torch.tensor([[0.2, 0.5, 0.9]], dtype=torch.float64, requires_grad=True)
    out = tm(t)
    assert out.detach().numpy() == pytest.approx(tm(np.array([[0.2, 0.5, 0.9]])))
    out.sum().backward()
    assert t.grad is not None and bool((t.grad.abs() > 0).all())
