"""generate.py against the real bundled renderer: layout, numbering, determinism,
resuming after an interrupted run, orphans, refs, preview, renderer down."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import generate
from art_explorer import atomic, utils
from art_explorer.data import dataset, refs_io
from art_explorer.scene import rendering, sampling, schema

SIZE = 64


@pytest.fixture
def refs_file(tmp_path: Path) -> Path:
    rng = random.Random(1)
    f = tmp_path / "refs.jsonl"
    f.write_text(
        "".join(
            json.dumps(schema.to_prefixed(sampling.sample_params(rng))) + "\n"
            for _ in range(3)
        )
    )
    return f


def gen_args(out: Path, url: str, refs: Path, *extra: str) -> list[str]:
    return [
        "--out", str(out), "--size", str(SIZE), "--renderer-url", url,
        "--refs", str(refs), "--no-autostart", *extra,
    ]  # fmt: skip


def run(out: Path, url: str, refs: Path, n: int, *extra: str) -> int:
    return generate.main(
        generate.parse_args(["--n", str(n), *gen_args(out, url, refs, *extra)])
    )


def pairs(out: Path) -> list[int]:
    """Indices of complete pairs; asserts the folder holds nothing else."""
    images = sorted(p.name for p in (out / "images").iterdir())
    params = sorted(p.name for p in (out / "params").iterdir())
    assert [n.replace(".png", "") for n in images] == [
        n.replace(".json", "") for n in params
    ]
    return [int(n[:6]) for n in images]


def test_generates_complete_pairs_and_continues_numbering(
    tmp_path: Path, renderer_url: str, refs_file: Path
) -> None:
    out = tmp_path / "data"
    assert run(out, renderer_url, refs_file, 6) == 6
    assert pairs(out) == list(range(6))
    for i in range(6):
        with Image.open(out / "images" / f"{i:06d}.png") as im:
            assert im.size == (SIZE, SIZE) and im.mode == "RGB"
        params = json.loads((out / "params" / f"{i:06d}.json").read_text())
        assert schema.validate_params(params) == params  # complete flat params
        assert not schema.is_prefixed(params)
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.width > 6 * 128  # 6 tiles of at least 128 px in a row
    assert run(out, renderer_url, refs_file, 10) == 4  # --n is the folder's total
    assert pairs(out) == list(range(10))
    assert (
        run(out, renderer_url, refs_file, 10) == 0
    )  # done: the same command adds none


def test_image_matches_its_params(
    tmp_path: Path, renderer_url: str, refs_file: Path
) -> None:
    out = tmp_path / "data"
    run(out, renderer_url, refs_file, 3, "--no-sheet")
    client = rendering.RendererClient(url=renderer_url)
    for i in range(3):
        params = json.loads((out / "params" / f"{i:06d}.json").read_text())
        png = (out / "images" / f"{i:06d}.png").read_bytes()
        assert client.render_png(params, SIZE) == png  # the renderer is deterministic
    client.close()
    assert not (out / "sheet.png").exists()


def test_resumed_run_continues_the_same_sequence(
    tmp_path: Path, renderer_url: str, refs_file: Path
) -> None:
    whole, split = tmp_path / "whole", tmp_path / "split"
    run(whole, renderer_url, refs_file, 8, "--seed", "7", "--ref-share", "0.5")
    run(split, renderer_url, refs_file, 3, "--seed", "7", "--ref-share", "0.5")
    run(split, renderer_url, refs_file, 8, "--seed", "7", "--ref-share", "0.5")
    for i in range(8):
        name = f"{i:06d}"
        assert (whole / "params" / f"{name}.json").read_bytes() == (
            split / "params" / f"{name}.json"
        ).read_bytes()
        assert (whole / "images" / f"{name}.png").read_bytes() == (
            split / "images" / f"{name}.png"
        ).read_bytes()
    other = tmp_path / "other"
    run(other, renderer_url, refs_file, 2, "--seed", "8", "--no-sheet")
    assert (other / "params/000000.json").read_bytes() != (
        whole / "params/000000.json"
    ).read_bytes()


def test_orphans_and_temp_files_removed(
    tmp_path: Path, renderer_url: str, refs_file: Path, capsys: Any
) -> None:
    out = tmp_path / "data"
    run(out, renderer_url, refs_file, 2, "--no-sheet")
    # What a killed run can leave: params written, image not yet; a temp file.
    atomic.write_json(out / "params/000002.json", schema.default_params())
    (out / "images/.000002.png.abc123.tmp").write_bytes(b"\x89PNG half")
    (out / "params/.000003.json.def456.tmp").write_text("{")
    capsys.readouterr()
    run(out, renderer_url, refs_file, 4, "--no-sheet")
    assert (
        "removed 1 params without an image and 2 .tmp files" in capsys.readouterr().out
    )
    assert pairs(out) == [0, 1, 2, 3]
    p2 = json.loads((out / "params/000002.json").read_text())
    assert p2 != schema.default_params()  # the orphan was replaced by sample 2


def wait_for_images(
    out: Path, n: int, proc: subprocess.Popen[Any], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "images").is_dir() and len(list((out / "images").glob("*.png"))) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no images appeared")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_complete_pairs_and_resumes(
    tmp_path: Path, renderer_url: str, refs_file: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, str(utils.ROOT / "generate.py"), "--n", "5000",
         *gen_args(out, renderer_url, refs_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=utils.ROOT,
    )  # fmt: skip
    wait_for_images(out, 3, proc)
    proc.send_signal(sig)
    log, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, log
    assert "Traceback" not in log
    assert f"stopped by {sig.name}" in log
    done = pairs(out)
    assert 3 <= len(done) < 5000
    assert done == list(range(len(done)))  # in order, no gaps
    assert f"--n 5000 --out {out}" in log  # how to resume: the same command
    assert run(out, renderer_url, refs_file, len(done) + 2, "--no-sheet") == 2
    assert pairs(out) == list(range(len(done) + 2))


def test_killed_run_is_cleaned_up_by_the_next(
    tmp_path: Path, renderer_url: str, refs_file: Path
) -> None:
    out = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, str(utils.ROOT / "generate.py"), "--n", "5000",
         *gen_args(out, renderer_url, refs_file, "--no-sheet")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=utils.ROOT,
    )  # fmt: skip
    wait_for_images(out, 2, proc)
    proc.kill()  # no chance to clean up
    proc.wait(timeout=30)
    left = dataset.Layout(out).count_pairs()  # complete pairs it left
    assert left >= 2
    # --n is the folder's total: a rerun tops up what is missing, not N more
    assert run(out, renderer_url, refs_file, left + 1, "--no-sheet") == 1
    done = pairs(out)  # whatever the kill left, only complete pairs remain
    assert done == list(range(left + 1))
    assert not list(out.rglob("*.tmp"))


def test_renderer_down_is_a_clear_error(tmp_path: Path, refs_file: Path) -> None:
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    out = tmp_path / "data"
    cmd = [sys.executable, str(utils.ROOT / "generate.py"), "--n", "3"]
    res = subprocess.run(
        [*cmd, *gen_args(out, url, refs_file)],
        capture_output=True, text=True, timeout=120, cwd=utils.ROOT,
    )  # fmt: skip
    assert res.returncode == 1
    assert f"error: renderer at {url} did not answer" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert pairs(out) == []


def test_failed_render_starts_no_more_renders(
    tmp_path: Path, refs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def down(self: Any, params: dict[str, Any], size: int = 256) -> bytes:
        calls.append(size)
        raise rendering.RendererError(f"renderer at {self.url} did not answer")

    monkeypatch.setattr(rendering.RendererClient, "render_png", down)
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    with pytest.raises(rendering.RendererError):
        run(tmp_path / "data", url, refs_file, 50, "--workers", "3")
    assert 1 <= len(calls) <= 3  # only those already in flight when one failed
    assert pairs(tmp_path / "data") == []


def test_resume_command_repeats_every_choice_of_the_samples() -> None:
    argv = ["--n", "10", "--out", "d q", "--seed", "3", "--ref-share", "0.5"]
    argv += ["--scored", "--scored-refs", "s.jsonl", "--refs", "r.jsonl"]
    args = generate.parse_args([*argv, "--renderer-url", "http://h:1/api/raster"])
    cmd = shlex.split(generate.resume_command(args, 96))
    assert cmd[:2] == ["python", "generate.py"]
    again = generate.parse_args(cmd[2:])
    assert again.n == 10 and again.size == 96  # the same total
    for key in ("out", "seed", "ref_share", "scored", "scored_refs", "refs"):
        assert getattr(again, key) == getattr(args, key), key
    assert again.renderer_url == args.renderer_url


def test_sampler_is_seeded_by_seed_and_index(refs_file: Path) -> None:
    parents = refs_io.load_refs(refs_file)
    a = generate.Sampler(3, parents, None, 0.5)
    b = generate.Sampler(3, parents, None, 0.5)
    assert [a(i) for i in range(20)] == [b(i) for i in range(20)]
    assert a(5) == b(5) and a(5) != a(6)
    assert generate.Sampler(4, parents, None, 0.5)(5) != a(5)
    bred = [a(i)[1] for i in range(400)]
    assert sum(bred) / len(bred) == pytest.approx(0.5, abs=0.08)
    assert not any(generate.Sampler(3, [], None, 0.5)(i)[1] for i in range(50))
    assert all(generate.Sampler(3, parents, None, 1.0)(i)[1] for i in range(50))


def test_scored_sampling_weights_by_score(
    tmp_path: Path, refs_file: Path, capsys: Any
) -> None:
    scored = tmp_path / "refs-scored.jsonl"
    parents = refs_io.load_refs(refs_file)
    scored.write_text(
        "".join(
            json.dumps({"params": p, "score": s}) + "\n"
            for p, s in zip(parents, [0.9, 0.1, 0.0], strict=True)
        )
    )
    args = generate.parse_args(
        ["--scored", "--refs", str(refs_file), "--scored-refs", str(scored)]
    )
    sampler = generate.make_sampler(args)
    assert sampler.share == 0.9 and sampler.weights == [0.9, 0.1, 0.0]
    assert "weighted by score" in capsys.readouterr().out
    args.scored_refs = str(tmp_path / "missing.jsonl")
    sampler = generate.make_sampler(args)
    assert sampler.weights is None and len(sampler.parents) == 3
    assert f"breeding from {refs_file} unweighted instead" in capsys.readouterr().out
    args.refs = str(tmp_path / "none.jsonl")
    assert generate.make_sampler(args).share == 0.0
    assert "every sample is random" in capsys.readouterr().out


def test_quality_data_also_breeds_from_the_archives_elites(
    tmp_path: Path, refs_file: Path, capsys: Any
) -> None:
    """--elites ARCHIVE: the archive's elites join the parents, weighted by score,
    together carrying --elite-share of the weight; no archive: the refs alone."""
    import numpy as np

    from art_explorer.explore import archive as archive_mod
    from art_explorer.explore import descriptors, solution

    rng = np.random.default_rng(0)
    arch = archive_mod.Archive.empty(tmp_path / "archive")
    n = 12
    meas = np.stack([rng.uniform(a.lo, a.hi, n) for a in descriptors.AXES], axis=1)
    sols = rng.uniform(0, 1, (n, solution.SOLUTION_DIM))
    arch.grid.add(sols, rng.uniform(0.3, 0.9, n), meas, elite_id=np.arange(n))
    arch.save()
    kept = len(arch.elites()["objective"])
    args = generate.parse_args(
        ["--refs", str(refs_file), "--elites", str(tmp_path / "archive")]
    )
    sampler = generate.make_sampler(args)
    assert len(sampler.parents) == 3 + kept and sampler.weights is not None
    share = sum(sampler.weights[3:]) / sum(sampler.weights)
    assert abs(share - args.elite_share) < 1e-9
    assert all(schema.validate_params(p) == p for p in sampler.parents[3:])
    assert f"elites of {tmp_path / 'archive'}" in capsys.readouterr().out
    args.elites = str(tmp_path / "none")
    assert len(generate.make_sampler(args).parents) == 3
    assert "no explore archive" in capsys.readouterr().out


def test_broken_refs_line_stops_before_rendering(
    tmp_path: Path, refs_file: Path
) -> None:
    refs_file.write_text(refs_file.read_text() + '{"Element.geometry": "blob"}\n')
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    with pytest.raises(refs_io.RefsError, match=r"refs\.jsonl line 4: geometry"):
        run(tmp_path / "data", url, refs_file, 3)
    assert not (tmp_path / "data" / "images").exists()


@pytest.mark.parametrize("display", [None, ":99"])  # none, or one nothing serves
def test_preview_without_display_writes_a_sheet(
    tmp_path: Path,
    renderer_url: str,
    refs_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    display: str | None,
) -> None:
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display is None:
        monkeypatch.delenv("DISPLAY", raising=False)
    else:
        monkeypatch.setenv("DISPLAY", display)
    preview = tmp_path / "out" / "preview.png"
    run(
        tmp_path / "data",
        renderer_url,
        refs_file,
        5,
        "--preview",
        "--preview-path",
        str(preview),
    )
    with Image.open(preview) as im:
        assert im.width >= 4 * 128  # 4 columns of the latest samples
    assert f"preview: {preview}" in capsys.readouterr().out


def test_parse_args_defaults_and_limits() -> None:
    a = generate.parse_args([])
    assert (a.n, a.out, a.workers, a.size, a.ref_share) == (200, "data", 2, None, None)
    assert a.refs == "references/refs.jsonl" and not a.scored
    for bad in (
        ["--n", "-1"],
        ["--workers", "0"],
        ["--ref-share", "1.5"],
        ["--size", "0"],
    ):
        with pytest.raises(SystemExit) as e:
            generate.parse_args(bad)
        assert e.value.code == 2


def test_n_zero_only_cleans(tmp_path: Path, refs_file: Path) -> None:
    out = tmp_path / "data"
    atomic.write_json(out / "params/000000.json", schema.default_params())
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    assert run(out, url, refs_file, 0) == 0
    assert not (out / "params/000000.json").exists()


def test_env_renderer_url_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENDERER_URL", "http://example.invalid:1/api/raster")
    assert (
        rendering.renderer_url(generate.parse_args([]).renderer_url)
        == os.environ["RENDERER_URL"]
    )


def test_full_disk_is_one_line_and_leaves_complete_pairs(
    tmp_path: Path, renderer_url: str, refs_file: Path, full_disk: Any
) -> None:
    """Issue 32 C4: a disk that fills mid-run is one line naming the file."""
    out = tmp_path / "data"
    argv = ["--n", "6", *gen_args(out, renderer_url, refs_file)]
    res = full_disk(1 + 2 * 3 + 1, "generate.py", *argv)  # schema.json, 3 pairs, ½
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write {out}/") and "No space left" in last
    assert "holds only complete pairs" in res.stdout and "wrote 3 pairs" in res.stdout
    assert not list(out.rglob("*.tmp"))
    assert len(pairs_or_orphans(out)) == 3  # complete pairs; an orphan params at most
    assert run(out, renderer_url, refs_file, 6) == 3  # the same command carries on
    assert pairs(out) == list(range(6))


def pairs_or_orphans(out: Path) -> list[int]:
    """Indices with an image (each must have its params)."""
    images = sorted(int(p.name[:6]) for p in (out / "images").glob("*.png"))
    assert all((out / "params" / f"{i:06d}.json").exists() for i in images)
    return images
