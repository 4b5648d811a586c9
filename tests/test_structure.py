"""Structure (structure.py), the refs-like distribution, the pretrained inverse model
and the search over structures: equivalences shown by rendering, the picture score
calibrated against wrong-geometry fits, the bundled checkpoint's schema check."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pretrain_inverse
from art_explorer import utils
from art_explorer.nets import checkpoint_io
from art_explorer.nets import model as M
from art_explorer.predict import descent, starts
from art_explorer.predict.budget import Evaluator, Log
from art_explorer.predict.descent import twin_refine
from art_explorer.predict.loss import ImageLoss, pipeline_loss
from art_explorer.predict.options import PipelineOptions
from art_explorer.predict.pipeline import invert, pick_finalists
from art_explorer.predict.starts import predict_one, structure_candidates
from art_explorer.scene import encoding, sampling, schema, structure
from art_explorer.scoring import metrics
from renderer.scene import render


def _make_apply(e: structure.Equivalence, p: dict[str, Any]) -> dict[str, Any]:
    """Params on which entry e applies: the condition its text names, set."""
    p = structure.with_choice(p, "repetitions", p["repetitions"])
    for layer in p["layers"]:  # per-layer factors would break "everywhere"
        for k in ("scaleFactor", "rotationFactor", "alphaFactor", "stepFactor"):
            layer.pop(k, None)
    if "scaleFactor = 1" in e.when:
        p["scaleFactor"] = 1.0
    if "rotationFactor = 0" in e.when:
        p["rotationFactor"] = 0.0
    if "alphaFactor = 1" in e.when:
        p["alphaFactor"] = 1.0
    if "repetitions = 1" in e.when:
        p["repetitions"] = 1
    if "xStep = yStep = 0" in e.when:
        p["xStep"], p["yStep"] = 0.0, 0.0
    if "stepFactor = 0" in e.when:
        p["stepFactor"] = 0.0
    return p


@pytest.mark.parametrize("i", range(len(structure.EQUIVALENCES)))
def test_each_equivalence_draws_the_same_picture(i: int) -> None:
    e = structure.EQUIVALENCES[i]
    for seed in range(3):
        base = sampling.sample_refs_like(random.Random(100 + seed))
        base["repetitions"] = max(base["repetitions"], 12)
        p = _make_apply(e, base)
        assert e.applies(p), e.when
        for cls in e.classes:
            pics = [
                render(schema.validate_params(structure.with_choice(p, e.key, o)), 64)
                for o in sorted(cls, key=str)
            ]
            for o, pic in zip(sorted(cls, key=str), pics, strict=True):
                diff = np.abs(pic.astype(int) - pics[0].astype(int)).max()
                assert diff <= 1, (e.when, o, diff)
            first, last = sorted(cls, key=str)[0], sorted(cls, key=str)[-1]
            q = structure.with_choice(p, e.key, first)
            assert structure.table_equivalent(e.key, q, last)


def test_table_equivalence_needs_its_condition() -> None:
    p = schema.validate_params(sampling.sample_refs_like(random.Random(5)))
    p["scaleFactor"], p["scaleProgression"] = 1.03, "exponential"
    assert not structure.table_equivalent("scaleProgression", p, "golden")
    assert structure.table_equivalent("scaleProgression", p, "exponential")
    # and without it the choices really draw different pictures
    a = render(p, 64)
    b = render(structure.with_choice(p, "scaleProgression", "golden"), 64)
    assert np.abs(a.astype(int) - b.astype(int)).max() > 1


def test_refs_like_draws_are_clean_scenes() -> None:
    rng = random.Random(0)
    counts = set()
    for _ in range(200):
        p = schema.validate_params(sampling.sample_refs_like(rng))
        assert not (p["noiseEnabled"] or p["ditherEnabled"] or p["crtEnabled"])
        assert 1 <= len(p["layers"]) <= schema.MAX_LAYERS
        counts.add(len(p["layers"]))
        encoding.encode_params(p)  # the models can encode it
    assert counts == {1, 2, 3, 4, 5}
    _params, img = pretrain_inverse.draw_target(random.Random(1), 64)
    lit = pretrain_inverse.lit_fraction(img)
    assert pretrain_inverse.MIN_LIT <= lit <= pretrain_inverse.MAX_LIT


def test_picture_score_ranks_near_truth_above_wrong_geometry_fits(
    tmp_path: Path,
) -> None:
    """The calibration of bench/picture_score.py on a small set: the true params ±1%
    beat the best CMA-ES fit (by NCC σ 2) of the hardest wrong geometry in ≥ 95% of
    pairs."""
    picture_score = utils.load_bench("picture_score")

    args = picture_score.parse_args(
        [
            "--mode",
            "refs",
            "--n",
            "5",
            "--wrong",
            "1",
            "--fit-renders",
            "10",
            "--keep",
            "2",
            "--out",
            str(tmp_path / "ps.md"),
        ]
    )
    res = picture_score.main(args)
    assert res["wins"]["picture score"] >= 0.95
    assert "picture score" in (tmp_path / "ps.md").read_text()


def test_picture_score_calls_curated_like_pairs_as_they_were_made(
    tmp_path: Path,
) -> None:
    """bench/picture_score.py's curated mode on a small set: the params jittered by
    1% read as the same picture, another draw never does, and the sheet and table
    are written."""
    picture_score = utils.load_bench("picture_score")
    args = picture_score.parse_args(
        [
            "--targets",
            "3",
            "--golden",
            str(tmp_path / "none"),
            "--sheet",
            str(tmp_path / "sheet.png"),
            "--out",
            str(tmp_path / "ps.md"),
        ]
    )
    res = picture_score.main(args)
    by_how: dict[str, list[float]] = {}
    for how, _same, score in res["verdicts"]:
        by_how.setdefault(how, []).append(score)
    same = structure.SAME_PICTURE
    assert sum(s >= same for s in by_how["jitter 1%"]) >= 2
    assert all(s < same for s in by_how["other draw"])
    assert res["ba"]["picture score"] >= 0.8
    assert (tmp_path / "sheet.png").stat().st_size > 0
    assert "picture score" in (tmp_path / "ps.md").read_text()


def test_picture_score_sees_lines_not_only_light() -> None:
    """Stripes across a disc against stripes along it: the light is in the same place
    (NCC of the blurred pictures is high), the lines are not (issue 30)."""
    yy, xx = np.mgrid[0:256, 0:256]
    disc = (yy - 128) ** 2 + (xx - 128) ** 2 < 70**2
    across = (disc & (yy % 6 < 2)).astype(np.float32)
    along = (disc & (xx % 6 < 2)).astype(np.float32)
    a, b = np.stack([across] * 3, -1), np.stack([along] * 3, -1)
    assert metrics.ncc(a, b) > 0.9
    assert structure.picture_score(a, b) < 0.2 < structure.SAME_PICTURE
    assert structure.picture_score(a, a) == pytest.approx(1.0, abs=1e-6)


def test_picture_score_identity_and_blank() -> None:
    p = schema.validate_params(sampling.sample_refs_like(random.Random(3)))
    img = render(p, 128).astype(np.float32) / 255
    assert structure.picture_score(img, img) == pytest.approx(1.0, abs=1e-6)
    assert structure.picture_score(np.zeros_like(img), img) == pytest.approx(0.0)


def test_structure_hits_count_same_picture_choices() -> None:
    p = schema.validate_params(sampling.sample_refs_like(random.Random(4)))
    p = _make_apply(structure.EQUIVALENCES[1], p)  # rotationFactor 0
    pred = structure.with_choice(p, "rotationProgression", "sine")
    pred["geometry"] = "ring" if p["geometry"] != "ring" else "bar"
    hits = structure.structure_hits(p, pred)
    assert hits["rotationProgression"] and not hits["geometry"] and not hits["all"]
    r = structure.LocalRenderer()
    hits = structure.structure_hits(p, p, render=lambda q: r.render(q, 64))
    assert hits["all"]


def test_pretrain_writes_a_checkpoint_that_refuses_another_schema(
    tmp_path: Path,
) -> None:
    out = tmp_path / "inv"
    args = pretrain_inverse.parse_args(
        [
            "--minutes",
            "0.02",
            "--save-every",
            "10",
            "--val",
            "4",
            "--workers",
            "0",
            "--fresh",
            "4",
            "--batch",
            "8",
            "--out",
            str(out),
        ]
    )
    res = pretrain_inverse.main(args)
    assert res["steps"] >= 1 and 0 <= res["accuracy"]["geometry"] <= 1
    net = checkpoint_io.load_inverse(out)
    assert net is not None and net.cfg.backbone == M.SCENE_CNN
    acc = pretrain_inverse.evaluate(str(out), 4, 64)  # --evaluate: the same figures
    assert acc["geometry"] == res["accuracy"]["geometry"]
    assert 0 <= acc["geometry_predict"] <= acc["geometry_top3_predict"] <= 1
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["pretrain"]["command"].startswith("python pretrain_inverse.py")
    side["schema_hash"] = "0" * 16
    out.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(checkpoint_io.CheckpointError, match="schema"):
        checkpoint_io.load_inverse(out)


def test_pretrain_warm_starts_from_an_older_schema_version_only_when_asked(
    tmp_path: Path,
) -> None:
    """A checkpoint of an older schema version with the same params is refused by
    predict and by a plain --init, but --init-other-version trains on from its
    weights; the new checkpoint has this code's schema and records its lineage."""
    old = tmp_path / "old"
    net = M.InverseModel.build(M.InverseConfig(backbone=M.SCENE_CNN, input_size=64))
    checkpoint_io.save_checkpoint(net.eval(), old, meta={"pretrain": {"steps": 7}})
    side = json.loads(old.with_suffix(".json").read_text())
    older = {"schema_version": 2, "schema_hash": schema.schema_hash(2)}
    old.with_suffix(".json").write_text(json.dumps(side | older))
    with pytest.raises(checkpoint_io.CheckpointError, match="schema v2"):
        checkpoint_io.load_inverse(old)
    argv = ["--init", str(old), "--minutes", "0.02", "--val", "4", "--workers", "0"]
    argv += ["--fresh", "4", "--batch", "8", "--out", str(tmp_path / "new")]
    with pytest.raises(SystemExit, match="--init-other-version"):
        pretrain_inverse.main(pretrain_inverse.parse_args(argv))
    res = pretrain_inverse.main(
        pretrain_inverse.parse_args([*argv, "--init-other-version"])
    )
    assert res["lineage"] == [{"steps": 7, "schema_version": 2}]
    assert checkpoint_io.load_inverse(tmp_path / "new") is not None
    # another layout of params is refused even then
    side["schema_hash"] = "0" * 16
    old.with_suffix(".json").write_text(json.dumps(side | {"schema_version": 2}))
    with pytest.raises(SystemExit, match="schema"):
        pretrain_inverse.main(
            pretrain_inverse.parse_args([*argv, "--init-other-version"])
        )


def test_bundled_checkpoint_loads_and_is_small(tmp_path: Path) -> None:
    stem = utils.ROOT / checkpoint_io.BUNDLED_INVERSE_PATH
    if not stem.with_suffix(".json").exists():
        pytest.skip("no bundled inverse checkpoint")
    size = sum(stem.with_suffix(s).stat().st_size for s in (".json", ".safetensors"))
    assert size <= 30 * 2**20
    assert checkpoint_io.load_inverse(stem) is not None
    copy = tmp_path / "copy"
    for s in (".json", ".safetensors"):
        shutil.copy(stem.with_suffix(s), copy.with_suffix(s))
    side = json.loads(copy.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps(side | {"schema_version": 1}))
    with pytest.raises(checkpoint_io.CheckpointError, match="schema"):
        checkpoint_io.load_inverse(copy)


def test_structure_candidates_are_distinct_and_ranked() -> None:
    net = M.InverseModel(M.InverseConfig(backbone=M.SCENE_CNN, input_size=64))
    target = render(
        schema.validate_params(sampling.sample_refs_like(random.Random(2))), 64
    )
    cands = structure_candidates(net.eval(), target.astype(np.float32) / 255, 6)
    assert len(cands) == 6
    probs = [pr for pr, _ in cands]
    assert probs == sorted(probs, reverse=True)
    keys = {
        (*(p[k] for k in structure.STRUCTURE_KEYS), len(p["layers"])) for _, p in cands
    }
    assert len(keys) == 6
    assert all(len(p["layers"]) >= 1 for _, p in cands)


def test_the_geometry_guess_is_the_same_for_a_mirrored_picture() -> None:
    """The geometry's probabilities are averaged over the picture's mirror images,
    so the picture and its mirror get the same ones (a mirrored scene has the same
    geometry); the other heads see the picture itself (the origin is not
    mirror-free)."""
    torch.manual_seed(1)
    net = M.InverseModel(M.InverseConfig(backbone=M.SCENE_CNN, input_size=64)).eval()
    params = schema.validate_params(sampling.sample_refs_like(random.Random(5)))
    target = render(params, 64).astype(np.float32) / 255
    j = schema.CAT_KEYS.index("geometry")
    a = predict_one(net, target)
    for mirror in (target[:, ::-1], target[::-1], target[::-1, ::-1]):
        b = predict_one(net, np.ascontiguousarray(mirror))
        assert torch.allclose(a["cat_probs"][j], b["cat_probs"][j], atol=1e-6)
        assert int(a["cat"][0, j]) == int(b["cat"][0, j])
    plain = net.predict_encoded(torch.from_numpy(target).permute(2, 0, 1)[None])
    k = schema.CAT_KEYS.index("origin")
    assert torch.allclose(a["cat_probs"][k], plain["cat_probs"][k], atol=1e-5)
    assert not torch.allclose(a["cat_probs"][j], plain["cat_probs"][j])


def test_every_origin_draws_the_same_picture_with_its_offsets_moved_back() -> None:
    """The origin mirrors the offsets and moves them by a constant × stepFactor:
    `with_origin` undoes both (xStep / yStep signs, each chain's position), so every
    origin draws the very same picture while the moved positions stay in range;
    structure_hits then counts any origin as right when the truth's picture is
    drawn that way."""
    rng = random.Random(5)
    checked = 0
    for _ in range(12):
        p = schema.validate_params(sampling.sample_refs_like(rng))
        p.update(noiseEnabled=False, ditherEnabled=False, crtEnabled=False)
        a = render(p, 96).astype(int)
        for origin in schema.ORIGINS:
            q = structure.with_origin(p, origin)
            if schema.validate_params(q) != q:
                continue  # a moved layer position left its range: clamped
            b = render(q, 96).astype(int)
            assert np.abs(a - b).max() <= 2, (origin, p["origin"])
            checked += 1
    assert checked >= 60
    # a wrong origin put into the true params as it is draws another picture
    p = schema.validate_params(sampling.sample_refs_like(random.Random(3)))
    p.update(stepFactor=0.5, xStep=0.8, yStep=0.3, origin="center", layers=[])
    truth_img = structure.LocalRenderer().render(p, 128)
    moved = structure.with_choice(p, "origin", "top-left")
    assert (
        structure.picture_score(structure.LocalRenderer().render(moved, 128), truth_img)
        < 0.9
    )
    hits = structure.structure_hits(
        p, moved, render=lambda q: structure.LocalRenderer().render(q, 128)
    )
    assert hits["origin"]


def test_the_structure_choice_is_made_again_among_the_finalists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the twin, the search over structures gives the 3 fits that score best a
    longer wide + fine descent each (finalist_seconds, half each) and chooses among
    those three again by the picture score: the structures stage ends on the
    best-scoring finalist."""
    torch.manual_seed(0)
    net = M.InverseModel(M.InverseConfig(backbone=M.SCENE_CNN, input_size=64)).eval()
    truth = schema.validate_params(sampling.sample_refs_like(random.Random(3)))
    truth.update(noiseEnabled=False, ditherEnabled=False, crtEnabled=False)
    target = render(truth, 64).astype(np.float32) / 255
    calls: list[tuple[float, float, str, str]] = []
    real = twin_refine

    def spy(
        loss: ImageLoss,
        start: dict[str, Any],
        wide_s: float,
        fine_s: float,
        log: Log | None = None,
        target: np.ndarray | None = None,
        refusals: Any = None,
    ) -> dict[str, Any]:
        out = real(loss, start, wide_s, fine_s, log, target, refusals=refusals)
        key = schema.canonical_json
        calls.append((wide_s, fine_s, key(start), key(out)))
        return out

    monkeypatch.setattr(descent, "twin_refine", spy)
    opts = PipelineOptions(
        structures=4, structure_wide_seconds=0.2, finalist_seconds=0.4, finalists=3,
        twin_workers=1,
        twin_wide_seconds=0.0, twin_seconds=0.2, final_twin_seconds=0.0,
        moves=False, color_fit=False, layer_color_fit=False, brightness_fit=False,
    )  # fmt: skip
    ev = Evaluator(structure.LocalRenderer(), pipeline_loss(target), 64, 160, 1)
    res = invert(target, ev, inverse=net, opts=opts, use_twin=True, fine_target=target)
    finalist_calls = [c for c in calls if c[0] > 0 and c[1] > 0][:3]
    assert [(w, f) for w, f, _, _ in finalist_calls] == [(0.2, 0.2)] * 3
    keys = {k for _, _, a, b in finalist_calls for k in (a, b)}
    finalists = [
        (sc, p) for _, sc, _, p in res.structures if schema.canonical_json(p) in keys
    ]
    assert len(finalists) == 3
    chosen = next(s for s in res.stages if s.name == "structures").params
    assert chosen == max(finalists, key=lambda f: f[0])[1]


def test_the_runner_up_goes_on_when_its_descent_draws_the_target_better(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two structures for a chain of six rounded rectangles: squares in the right
    place, which the picture score prefers before any descent, and the right
    outline with its chain misplaced. The choice keeps the squares; the runner-up
    gets the twin's main descent beside them, on another worker, lands on the
    target and goes on in their place (predict's sheet shows its descent as
    "after GD"). With alternates off the squares stay."""
    truth = schema.default_params()
    truth.update(noiseEnabled=False, ditherEnabled=False, crtEnabled=False)
    truth.update(repetitions=6, stepFactor=0.5, xStep=1.4, yStep=0.0, layers=[])
    truth.update(geometry="roundedRect", scale=1.2)
    squares = {**truth, "geometry": "square"}
    misplaced = {**truth, "stepFactor": 0.35, "xStep": 1.1, "yStep": 0.4}
    target = render(truth, 64).astype(np.float32) / 255
    t256 = render(truth, 256).astype(np.float32) / 255
    monkeypatch.setattr(
        starts, "structure_candidates", lambda *_: [(0.6, squares), (0.4, misplaced)]
    )
    ends = []
    for alternates in (True, False):
        # the descents run on the clock: seconds with room for a busy machine
        opts = PipelineOptions(
            structures=2, structure_share=0.2, structure_wide_seconds=0.0,
            finalists=2, finalist_seconds=0.0, twin_wide_seconds=6.0,
            twin_seconds=2.0, final_twin_seconds=0.0, moves=False,
            color_fit=False, layer_color_fit=False, brightness_fit=False,
            alternates=alternates, twin_workers=2,
        )  # fmt: skip
        ev = Evaluator(structure.LocalRenderer(), pipeline_loss(target), 64, 90, 1)
        res = invert(
            target, ev, inverse=object(), opts=opts, use_twin=True, fine_target=t256
        )
        chosen = next(s for s in res.stages if s.name == "structures").params
        assert chosen is not None and chosen["geometry"] == "square"
        ends.append(res.best.params["geometry"])
        # the sheet's "after GD" is the descent of the structure that went on
        assert res.after_gd is not None
        assert res.after_gd["geometry"] == res.best.params["geometry"]
        # what the bench counts: the choice, the runner-up, whether it took over
        assert res.chosen is not None
        assert res.structures[res.chosen][3]["geometry"] == "square"
        if alternates:
            assert res.runner_up is not None and res.runner_up != res.chosen
            assert res.took_over
        else:
            assert res.runner_up is None and not res.took_over
    assert ends == ["roundedRect", "square"]


def test_a_finalist_place_goes_to_another_geometry_when_the_best_share_one() -> None:
    """The finalists are the best-scoring fits, except that when those all share one
    geometry the last place goes to the best fit of another geometry; with room for
    one, or with the option off, the order decides alone."""
    order = [4, 1, 7, 0, 2, 3, 5, 6]
    geo = ["u", "ring", "spiral", "bar", "ring", "arch", "bar", "ring"]
    assert pick_finalists(order, geo, 3) == [4, 1, 0]
    assert pick_finalists(order, geo, 3, other=False) == [4, 1, 7]
    assert pick_finalists(order, geo, 1) == [4]
    mixed = ["u", "ring", "spiral", "bar", "ring", "arch", "bar", "spiral"]
    assert pick_finalists(order, mixed, 3) == [4, 1, 7]  # already two
    assert pick_finalists([0, 1], ["u", "u"], 2) == [0, 1]  # no other


def test_the_twins_last_descents_are_cut_to_fit_max_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no time limit the twin's main and last descents get their seconds; when
    the stages before them have used up max_seconds, neither runs (the search ends
    on what it has) and the log says why."""
    truth = schema.validate_params(sampling.sample_refs_like(random.Random(5)))
    truth.update(noiseEnabled=False, ditherEnabled=False, crtEnabled=False)
    target = render(truth, 64).astype(np.float32) / 255
    runs = {}
    for limit in (0.0, 1e-3):
        calls: list[tuple[float, float]] = []

        def spy(
            loss: ImageLoss,
            start: dict[str, Any],
            wide_s: float,
            fine_s: float,
            log: Log | None = None,
            target: np.ndarray | None = None,
            calls: list[tuple[float, float]] = calls,
            refusals: Any = None,
        ) -> dict[str, Any]:
            calls.append((wide_s, fine_s))
            return start

        monkeypatch.setattr(descent, "twin_refine", spy)
        opts = PipelineOptions(
            twin_workers=1, twin_wide_seconds=0.2, twin_seconds=0.3,
            final_twin_seconds=0.5, max_seconds=limit, moves=False,
            color_fit=False, layer_color_fit=False, brightness_fit=False,
        )  # fmt: skip
        ev = Evaluator(structure.LocalRenderer(), pipeline_loss(target), 64, 40, 1)
        lines: list[str] = []
        invert(target, ev, opts=opts, use_twin=True, log=lines.append)
        runs[limit] = (calls, any("cut to 0%" in line for line in lines))
    assert runs[0.0] == ([(0.2, 0.3), (pytest.approx(0.3), pytest.approx(0.2))], False)
    assert runs[1e-3] == ([], True)
