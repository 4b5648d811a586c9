"""art_explorer.refs.store: one lock for every edit of references/, tried with real
second processes (the command line's save and the gallery's save/remove at once)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from art_explorer import atomic, utils
from art_explorer.data import refs_io
from art_explorer.refs import store
from art_explorer.scene import sampling, schema

# A worker: waits for the go file, then runs EDITS through the command line
# (refs.cmd_save) or the gallery's store, the two writers of issue 32 G1.
WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    kind, refs, go, plan = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
    import refs as refs_cli
    from art_explorer.data import refs_io
    from art_explorer.gallery.errors import Conflict
    from art_explorer.gallery.refs_store import RefsStore
    gal = RefsStore(refs, refs.with_name("refs-scored.jsonl"), refs.parent, refs.parent)
    while not go.exists():
        time.sleep(0.005)
    for item in json.loads(plan):
        if kind == "cli-save":
            refs_cli.cmd_save(refs, Path(item))
        elif kind == "gallery-save":
            gal.save(Path(item))
        else:  # gallery-remove: the ref whose key is item, wherever it now is
            while True:
                lines = {refs_io.ref_key(p): n for n, p in refs_io.load_refs_numbered(refs)}
                try:
                    gal.remove(lines[item], item)
                    break
                except Conflict:
                    continue  # a save moved it between the read and the remove
    """
)


def samples(tmp_path: Path, n: int, seed: int) -> list[Path]:
    """n params files of distinct random scenes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        path = tmp_path / "samples" / f"{seed}-{i}.json"
        atomic.write_json(path, sampling.sample_params(rng))
        out.append(path)
    return out


def run_together(refs: Path, jobs: list[tuple[str, list[str]]]) -> None:
    """Start one worker process per job, release them at once, wait for all."""
    refs.parent.mkdir(parents=True, exist_ok=True)
    go = refs.with_name("go")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(utils.ROOT),
                kind,
                str(refs),
                str(go),
                json.dumps(plan),
            ],
            cwd=utils.ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for kind, plan in jobs
    ]
    time.sleep(3.0)  # the imports (gallery pulls in fastapi) before the race
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err


def keys_of(refs: Path) -> list[str]:
    return [refs_io.ref_key(p) for p in refs_io.load_refs(refs)]


def test_concurrent_saves_from_the_cli_and_the_gallery_all_land(
    tmp_path: Path,
) -> None:
    refs = tmp_path / "references" / "refs.jsonl"
    cli, gal = samples(tmp_path, 30, 1), samples(tmp_path, 30, 2)
    run_together(
        refs,
        [("cli-save", [str(p) for p in cli]), ("gallery-save", [str(p) for p in gal])],
    )
    want = {refs_io.ref_key(json.loads(p.read_text())) for p in cli + gal}
    got = keys_of(refs)
    assert len(got) == 60 and set(got) == want


def test_a_ref_removed_in_the_gallery_does_not_come_back(tmp_path: Path) -> None:
    refs = tmp_path / "references" / "refs.jsonl"
    seed = samples(tmp_path, 30, 3)
    for p in seed:
        store.RefsStore(refs).save(json.loads(p.read_text()))
    doomed = keys_of(refs)[::2]  # 15 removes while 30 saves run
    new = samples(tmp_path, 30, 4)
    run_together(
        refs,
        [("cli-save", [str(p) for p in new]), ("gallery-remove", doomed)],
    )
    got = keys_of(refs)
    assert not set(doomed) & set(got)
    assert len(got) == 30 - len(doomed) + 30


def test_store_edits_in_one_process(tmp_path: Path) -> None:
    refs = tmp_path / "refs.jsonl"
    s = store.RefsStore(refs)
    rng = random.Random(5)
    a, b = sampling.sample_params(rng), sampling.sample_params(rng)
    assert s.save(a) == 1 and s.save(schema.to_prefixed(b)) == 2
    with pytest.raises(store.RefEditError, match="already a ref"):
        s.save(b)
    key_b = refs_io.ref_key(b)
    s.rate(key_b, 4)
    assert refs_io.load_ratings(refs) == {key_b: 4}
    with pytest.raises(store.RefConflict):
        s.remove(1, key_b)  # line 1 holds a, not b
    with s.locked(), s.locked():  # nested in one thread: no deadlock
        assert "geo=" in s.remove(2, key_b)
    with pytest.raises(store.RefConflict):
        s.rate(key_b, 3)  # b is gone
    with pytest.raises(store.RefEditError, match="has no line 5"):
        s.remove(5)
    assert refs_io.load_refs(refs) == [a]
    assert store.lock_path(refs).exists() and not list(tmp_path.glob("*.tmp"))
