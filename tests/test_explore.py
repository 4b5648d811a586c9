"""Explore as quality-diversity: the solution encoding, the descriptors, the archive's
persistence (a real kill -9, a schema change), the maps, and explore.py end to end on
the real renderer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from art_explorer import utils
from art_explorer.data import refs_io
from art_explorer.explore import archive as archive_mod
from art_explorer.explore import descriptors, maps, qd, solution
from art_explorer.scene import sampling, schema

REFS = utils.ROOT / "references" / "refs.jsonl"


def _refs() -> list[dict]:
    return [r for r in refs_io.load_refs(REFS) if len(r["layers"]) <= schema.MAX_LAYERS]


def test_solution_round_trip_keeps_the_params() -> None:
    for p in _refs()[:12]:
        x = solution.to_vector(p)
        assert x.shape == (solution.SOLUTION_DIM,)
        assert x.min() >= 0.0 and x.max() <= 1.0
        back = solution.to_params(x)
        assert back["geometry"] == p["geometry"]
        assert len(back["layers"]) == len(p["layers"])
        assert back["repetitions"] == p["repetitions"]
        assert np.allclose(solution.to_vector(back), x, atol=1e-3)


def test_any_vector_decodes_to_valid_guarded_params() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = solution.to_params(rng.uniform(-0.5, 1.5, solution.SOLUTION_DIM))
        assert schema.validate_params(p) == p
        assert 1 <= len(p["layers"]) <= schema.MAX_LAYERS
        assert p["repetitions"] <= sampling.max_repetitions(p["scaleFactor"])
    with pytest.raises(ValueError, match="a solution has"):
        solution.to_params(np.zeros(3))


def test_colour_axis_names_grey_and_hues() -> None:
    img = np.zeros((8, 8, 3))
    assert descriptors.colour_value(img) == 0.5  # nothing lit: grey
    img[2:5, 2:5] = 0.6
    assert descriptors.colour_value(img) == 0.5  # lit, unsaturated: grey
    cells = {}
    for name, rgb in [("red", (1, 0, 0)), ("green", (0, 1, 0)), ("blue", (0, 0, 1))]:
        img[2:5, 2:5] = rgb
        cells[name] = int(descriptors.colour_value(img))
    assert cells == {"red": 1, "green": 3, "blue": 5}
    assert [descriptors.AXES[2].tick(c) for c in (0, 1, 3, 5)] == [
        "grey",
        "red",
        "green",
        "blue",
    ]


def _filled(folder: Path, n: int = 40, seed: int = 0) -> archive_mod.Archive:
    """An archive with n synthetic solutions (no renders): random scores, spread
    descriptors; a third of them below MIN_SCORE."""
    rng = np.random.default_rng(seed)
    arch = archive_mod.Archive.empty(folder)
    sols = rng.uniform(0, 1, (n, solution.SOLUTION_DIM))
    scores = rng.uniform(0, 0.15, n)
    meas = np.stack([rng.uniform(a.lo, a.hi, n) for a in descriptors.AXES], axis=1)
    arch.grid.add(sols, scores, meas, elite_id=np.arange(n, dtype=np.int64))
    arch.next_id = arch.renders = n
    return arch


def test_archive_saves_and_loads_its_elites_without_pickle(tmp_path: Path) -> None:
    arch = _filled(tmp_path / "a")
    before = arch.elites()
    assert before["objective"].min() > archive_mod.MIN_SCORE  # junk never enters
    arch.save()
    with np.load(tmp_path / "a" / "archive.npz", allow_pickle=False) as z:
        assert str(z["schema_hash"]) == schema.schema_hash()
    back = archive_mod.Archive.open(tmp_path / "a")
    after = back.elites()
    for k in ("solution", "objective", "measures", "elite_id", "index"):
        assert np.array_equal(before[k], after[k]), k
    assert (back.next_id, back.renders) == (40, 40)
    lines = (tmp_path / "a" / "elites.jsonl").read_text().splitlines()
    assert len(lines) == len(after["objective"])
    first = json.loads(lines[0])
    assert first["id"] == int(after["elite_id"][0])
    assert schema.validate_params(first["params"])  # prefixed params read back
    summary = back.summary()
    json.dumps(summary)  # JSON-able as it is
    assert summary["cells_filled"] == len(summary["cells"]) == len(lines)
    assert {"cell", "score", "measures", "id", "thumb"} <= set(summary["cells"][0])


def test_archive_from_another_schema_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _filled(tmp_path / "a").save()
    monkeypatch.setattr(schema, "schema_hash", lambda version=0: "0123456789abcdef")
    with pytest.raises(archive_mod.ArchiveError, match="another parameter schema"):
        archive_mod.Archive.open(tmp_path / "a")
    monkeypatch.undo()
    monkeypatch.setattr(descriptors, "axes_json", lambda axes=(): [{"name": "other"}])
    with pytest.raises(archive_mod.ArchiveError, match="other descriptor axes"):
        archive_mod.Archive.open(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "archive.npz").write_bytes(b"not a zip")
    monkeypatch.undo()
    with pytest.raises(archive_mod.ArchiveError, match="unreadable"):
        archive_mod.Archive.open(tmp_path / "b")


def test_an_archive_of_an_older_schema_version_is_kept_and_its_elites_redrawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renderer_url: str
) -> None:
    """Same params, pictures drawn otherwise (a version bump such as 3 → 4): the old
    archive stays as it was, renamed archive.vN, and a new one grows from the refs
    and the old elites, each redrawn and scored as it looks now."""
    older = schema.SCHEMA_VERSION - 1
    old_hash = schema.schema_hash(older)
    folder = tmp_path / "archive"
    with monkeypatch.context() as m:
        m.setattr(schema, "schema_hash", lambda version=older: old_hash)
        _filled(folder).save()
    with pytest.raises(archive_mod.ArchiveRedrawn, match=f"schema v{older}"):
        archive_mod.Archive.open(folder)
    lines: list[str] = []
    args = qd.GrowArgs(
        renders=8, archive=str(folder), out=str(tmp_path / "out"), n=0, size=48,
        batch=8, refs=str(REFS), renderer_url=renderer_url,
    )  # fmt: skip
    qd.grow(args, log=lines.append)
    kept = tmp_path / f"archive.v{older}"
    with np.load(kept / "archive.npz", allow_pickle=False) as z:
        assert str(z["schema_hash"]) == old_hash
        n_old = len(z["objective"])
    text = "\n".join(lines)
    assert f"kept as {kept}" in text and "redrew" in text
    now = archive_mod.Archive.open(folder)
    assert n_old > 0 and now.renders >= len(_refs()) + n_old  # refs, old elites
    assert len(now.elites()["objective"]) > 0


def test_best_distinct_skips_neighbours_and_the_map_draws(tmp_path: Path) -> None:
    summary = _filled(tmp_path / "a", n=200).summary()
    picks = maps.best_distinct(summary, 16)
    assert picks and picks[0] == summary["cells"][0]
    for i, a in enumerate(picks):
        for b in picks[i + 1 :]:
            assert not maps.near(a, b)
            i, j = a["cell"][-1], b["cell"][-1]
            alike = i == j or (0 not in (i, j) and (i - j) % 6 in (1, 5))
            assert not alike or a["geometry"] != b["geometry"]
    red, yellow, magenta, grey = (
        {"cell": [0, 0, k], "geometry": "ring"} for k in (1, 2, 6, 0)
    )
    assert maps.near(red, yellow) and maps.near(red, magenta)
    assert not maps.near(red, grey) and not maps.near(yellow, magenta)
    img = maps.draw_map(summary)
    ax = descriptors.AXES
    assert img.width > ax[2].bins * ax[0].bins * maps.CELL_PX
    assert maps.axis_sheet(summary).width > 0
    assert maps.draw_growth({**summary, "growth": [[10, 3, 0.5], [40, 9, 1.5]]}).width


def _explore(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(utils.ROOT / "explore.py"), *args],
        cwd=utils.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def test_explore_grows_one_archive_and_survives_kill_9(
    tmp_path: Path, renderer_url: str
) -> None:
    arch_dir, out = tmp_path / "archive", tmp_path / "out"
    common = ["--archive", str(arch_dir), "--out", str(out), "--size", "64"]
    common += ["--batch", "8", "--renderer-url", renderer_url, "--final-size", "64"]
    # a long run, killed with SIGKILL once two steps are on disk
    proc = _explore([*common, "--renders", "100000", "-n", "0"], start_new_session=True)
    npz = arch_dir / "archive.npz"
    deadline = time.time() + 240
    saved = None
    while time.time() < deadline and proc.poll() is None:
        if npz.exists():
            with np.load(npz, allow_pickle=False) as z:
                if len(z["history"]) >= 3:
                    saved = len(z["objective"])
                    break
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert saved is not None, proc.stdout.read() if proc.stdout else ""
    killed = archive_mod.Archive.open(arch_dir)
    assert len(killed.elites()["objective"]) >= saved
    for i in killed.elites()["elite_id"].tolist():
        assert killed.thumb_path(i).exists()
    # the next call goes on from it ("more like this" the best elite) and writes
    # its best new elites
    best = int(killed.elites()["elite_id"][0])
    r = _explore([*common, "--renders", "60", "-n", "2", "--like", str(best)])
    text, _ = r.communicate(timeout=300)
    assert r.returncode == 0, text
    grown = archive_mod.Archive.open(arch_dir)
    assert grown.renders >= killed.renders + 48
    assert grown.grid.stats.qd_score >= killed.grid.stats.qd_score
    assert (arch_dir / "map.png").exists() and (arch_dir / "growth.png").exists()
    assert "make save-ref ID=out:" in text
    assert (
        len(list((out / "images").glob("*.png")))
        == len(list((out / "params").glob("*.json")))
        >= 1
    )


def test_explore_refuses_bad_options_with_a_message() -> None:
    with pytest.raises(qd.ExploreError, match="--emitters"):
        qd.GrowArgs(emitters=["cma"])
    with pytest.raises(qd.ExploreError, match="--renders must be >= 1"):
        qd.GrowArgs(renders=0)


def test_more_like_this_needs_an_elite_of_the_archive(tmp_path: Path) -> None:
    arch = _filled(tmp_path / "a")
    first = int(arch.elites()["elite_id"][0])
    grid = qd.focus_grid(arch, [first])
    assert grid.data("elite_id").tolist() == [first]
    with pytest.raises(qd.ExploreError, match="--like: no elite 99999"):
        qd.focus_grid(arch, [99999])


def test_every_emitter_proposes_valid_solutions_from_an_archive(tmp_path: Path) -> None:
    """Each emitter, the default three and the two on request, asked once on a filled
    archive: a batch of solutions in [0, 1] that decode to valid params."""
    from art_explorer.explore import emitters

    arch = _filled(tmp_path / "a")
    ems = emitters.create_emitters(arch.grid, list(emitters.KNOWN), 4, seed=1)
    assert len(ems) == len(emitters.KNOWN)
    for name, em in zip(emitters.KNOWN, ems, strict=True):
        sols = em.ask()
        assert sols.shape == (4, solution.SOLUTION_DIM), name
        assert sols.min() >= 0.0 and sols.max() <= 1.0, name
        for x in sols:
            p = solution.to_params(x)
            assert schema.validate_params(p) == p, name
    with pytest.raises(ValueError, match="unknown emitter"):
        emitters.create_emitters(arch.grid, ["nope"], 4, seed=1)
