"""A gallery job's own process: runs predict or explore (or reads predict's
defaults) and reports to the gallery as JSON lines on stdout, so the gallery never
imports the heavy pipeline and a cancel can end the whole process group.

    python -m art_explorer.gallery.worker KIND < spec.json

KIND: predict, explore (novelty, predict.py's flags), archive (grow the archive:
explore.py's flags) or defaults; spec: {"argv": [the flags]}.
Output lines: {"line": a log line}, {"expect": seconds the job should take},
then one {"result": {...}} or {"error": message}. Anything else the libraries print
goes to stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Emit = Callable[[dict[str, Any]], None]
STARTUP_S = 12.0  # importing torch, loading the models, starting a renderer (s)
FINAL_S = 8.0  # predict's final renders, contact sheet and scores after the search (s)


def worker_pids() -> list[int]:
    """Pids of this machine's job workers (predict, explore, archive; not the short
    `defaults` reads), from /proc: what a cancel must end."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"art_explorer.gallery.worker\0" in cmd and not cmd.endswith(b"defaults\0"):
            out.append(int(d.name))
    return out


def run_defaults(argv: list[str], emit: Emit) -> dict[str, Any]:
    """The settings `make predict` runs with (predict.py's defaults)."""
    import predict

    a = predict.parse_args(["--target", "-", *argv])
    return {k: getattr(a, k) for k in ("fevals", "size", "gd_steps", "final_size")} | {
        "max_seconds": a.max_seconds
    }


def run_predict(argv: list[str], emit: Emit) -> dict[str, Any]:
    """predict.run_inverse on the uploaded target; the page's result links."""
    import predict
    from art_explorer.scene import structure

    a = predict.parse_args(argv)
    emit({"expect": STARTUP_S + (a.max_seconds or 60.0) + FINAL_S})
    res = predict.run_inverse(a, log=lambda line: emit({"line": str(line)}))
    n = res["id"]
    target = Path(a.target)
    same = res["picture"] >= structure.SAME_PICTURE
    return {
        "id": f"out:{n}",
        "ncc": res["ncc"],
        "line_f1": res["line_f1"],
        "picture": res["picture"],
        "verdict": "same picture" if same else "not the same picture",
        "renders": res["renders"],
        "target": f"/files/output/uploads/{target.name}"
        if target.suffix in (".png", ".jpg")
        else None,
        "image": f"/files/output/images/{n:06d}.png",
        "sheet": f"/files/output/predict-{n:06d}.png",
        "params": f"/files/output/params/{n:06d}.json",
    }


def run_explore(argv: list[str], emit: Emit) -> dict[str, Any]:
    """Explore from the refs (art_explorer.explore.novelty): the new results' ids
    and novelty."""
    import predict
    from art_explorer.explore import novelty

    a = predict.parse_args(argv)
    # ranking renders at 64² (or the forward model), then the n picks at full size
    emit({"expect": STARTUP_S + 0.02 * a.candidates + 0.6 * a.n})
    res = novelty.run_explore(a, log=lambda line: emit({"line": str(line)}))
    return {"ids": [f"out:{i}" for i in res["ids"]], "novelty": res["novelty"]}


def run_archive(argv: list[str], emit: Emit) -> dict[str, Any]:
    """Grow the archive (art_explorer.explore.qd.grow, as `make explore`): its
    summary, the new elites and the ids of the results written to output/."""
    from art_explorer import cli
    from art_explorer.explore import qd

    a = cli.parse(qd.GrowArgs, argv)
    # renders at --size (~0.02 s each on 2 CPUs), then the n picks at full size
    emit({"expect": STARTUP_S + 0.02 * a.renders + 0.6 * a.n})
    res = qd.grow(a, log=lambda line: emit({"line": str(line)}))
    keys = ("cells_filled", "cells_total", "coverage", "qd_score", "best", "new")
    return {k: res[k] for k in keys} | {"ids": [f"out:{i}" for i in res["results"]]}


RUNNERS = {
    "predict": run_predict,
    "explore": run_explore,
    "archive": run_archive,
    "defaults": run_defaults,
}


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # prints of the libraries go to stderr, not into the protocol
    sys.stdout = sys.stderr

    def emit(obj: dict[str, Any]) -> None:
        try:
            out.write(json.dumps(obj) + "\n")
        except BrokenPipeError:  # the gallery is gone: nobody wants the rest
            os._exit(1)

    try:
        spec = json.loads(sys.stdin.read())
        run = RUNNERS[sys.argv[1]]
        emit({"result": run([str(x) for x in spec.get("argv", [])], emit)})
    except SystemExit as e:  # argparse's refusal of a flag
        emit({"error": f"bad settings (exit {e.code}); see the gallery's terminal"})
        return 2
    except Exception as e:  # the page shows it; the traceback goes to the terminal
        import traceback

        traceback.print_exc()
        emit({"error": str(e) or type(e).__name__})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
