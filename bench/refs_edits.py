"""Benchmark of concurrent edits of references/: the command line and the gallery at once.

    python bench/refs_edits.py            # 1,000 edits in 4 processes → bench/results/refs-edits.md
    python bench/refs_edits.py --quick    # 100 edits (make bench)

Four real processes edit one refs file at the same moment: two save through the
command line's writer (refs.py → art_explorer.refs.store), one saves and one removes
through the gallery's store (art_explorer.gallery.refs_store). Afterwards every saved
ref must be there exactly once and no removed ref may have come back (issue 32 G1:
before one lock covered every writer, 30 + 30 saves kept 49).
"""

from __future__ import annotations

import datetime
import json
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import atomic, cli, utils
from art_explorer.data import refs_io
from art_explorer.refs import store
from art_explorer.scene import sampling

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
    for item in json.loads(Path(plan).read_text()):
        if kind == "cli-save":
            refs_cli.cmd_save(refs, Path(item))
        elif kind == "gallery-save":
            gal.save(Path(item))
        else:
            while True:
                lines = {refs_io.ref_key(p): n for n, p in refs_io.load_refs_numbered(refs)}
                try:
                    gal.remove(lines[item], item)
                    break
                except Conflict:
                    continue
    """
)


@dataclass
class Args:
    """Concurrent edits of one refs file by the command line and the gallery."""

    edits: int = 1000
    """edits in all, a quarter per process (3 saving, 1 removing)"""
    quick: bool = False
    """make bench's size: 100 edits"""
    out: str = str(utils.ROOT / "bench" / "results" / "refs-edits.md")
    """the report"""

    def __post_init__(self) -> None:
        if self.quick:
            self.edits = 100


def params_files(folder: Path, n: int, seed: int) -> list[str]:
    """n params files of distinct random scenes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        path = folder / f"{seed}-{i}.json"
        atomic.write_json(path, sampling.sample_params(rng))
        out.append(str(path))
    return out


def run(args: Args) -> dict[str, float | int]:
    """The edits, at once in four processes; what is in the file afterwards."""
    per = args.edits // 4
    with tempfile.TemporaryDirectory() as tmp:
        refs = Path(tmp) / "references" / "refs.jsonl"
        folder = Path(tmp) / "samples"
        seeded = params_files(folder, per, 0)
        writer = store.RefsStore(refs)
        for p in seeded:
            writer.save(json.loads(Path(p).read_text()))
        doomed = [refs_io.ref_key(p) for p in refs_io.load_refs(refs)]
        jobs = [
            ("cli-save", params_files(folder, per, 1)),
            ("cli-save", params_files(folder, per, 2)),
            ("gallery-save", params_files(folder, per, 3)),
            ("gallery-remove", doomed),
        ]
        go = refs.with_name("go")
        procs = []
        for i, (kind, plan) in enumerate(jobs):
            plan_file = Path(tmp) / f"plan-{i}.json"
            plan_file.write_text(json.dumps(plan))
            cmd = [sys.executable, "-c", WORKER, str(utils.ROOT), kind, str(refs)]
            procs.append(subprocess.Popen([*cmd, str(go), str(plan_file)]))
        time.sleep(3.0)  # the imports, before the race
        t0 = time.time()
        go.touch()
        codes = [p.wait(timeout=600) for p in procs]
        seconds = time.time() - t0
        saved = {
            refs_io.ref_key(json.loads(Path(p).read_text()))
            for kind, plan in jobs[:3]
            for p in plan
        }
        got = [refs_io.ref_key(p) for p in refs_io.load_refs(refs)]
    return {
        "edits": 4 * per,
        "seconds": round(seconds, 1),
        "failed processes": sum(c != 0 for c in codes),
        "saved": len(saved),
        "saved and present once": sum(got.count(k) == 1 for k in saved),
        "lost": len(saved - set(got)),
        "removed that came back": len(set(doomed) & set(got)),
        "lines at the end": len(got),
    }


def main(args: Args) -> dict[str, float | int]:
    res = run(args)
    lines = [
        "# Concurrent edits of references/: command line and gallery at once",
        "",
        f"- date: {datetime.date.today()}",
        f"- command: `python bench/refs_edits.py{' --quick' if args.quick else ''}`",
        "- four real processes start at one moment: two save through `refs.py`'s",
        "  writer, one saves and one removes through the gallery's store; every edit",
        "  takes the one lock of art_explorer.refs.store",
        "",
        "| measure | value |",
        "|---|---:|",
        *(f"| {k} | {v} |" for k, v in res.items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    atomic.atomic_write_text(Path(args.out), text)
    return res


if __name__ == "__main__":
    sys.exit(0 if main(cli.parse(Args)).get("lost", 1) == 0 else 1)
