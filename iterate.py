"""One full round of the pipeline (pipeline.md "Round N"), resumable.

    generate → train forward → score refs → generate quality → train inverse →
    explore → report

Each stage records itself in `output/round-NNN/state.json` when it finishes. A round
that was interrupted is carried on by the next `make iterate` (finished stages are
skipped; the stages themselves resume: generation tops up to its target, training
keeps its best checkpoint). A finished round makes the next call start round N+1,
which adds new data bred from the (grown) references and retrains.

The round ends with `output/round-NNN/report.md` and its pictures: data samples,
training curves, the forward model's validation sheet, the inverse model's, the
explore contact sheet and the scored references.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from art_explorer import atomic, config, utils
from art_explorer.data import dataset, refs_io
from art_explorer.nets import checkpoint_io
from art_explorer.scene import rendering

STAGES = (
    "generate",
    "train-forward",
    "score-refs",
    "generate-quality",
    "train-inverse",
    "explore",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="One full round of the pipeline, resumable."
    )
    g = ap.add_argument_group("round")
    g.add_argument(
        "--profile",
        choices=sorted(config.PROFILES),
        default=None,
        help="settings profile (default: gpu with CUDA, else cpu)",
    )
    g.add_argument(
        "--n",
        type=int,
        default=None,
        help="coverage samples added per round (default: the profile's n)",
    )
    g.add_argument(
        "--nq",
        type=int,
        default=None,
        help="quality samples added per round (default: the profile's nq)",
    )
    g.add_argument(
        "--size", type=int, default=None, help="data/training resolution in px"
    )
    g.add_argument(
        "--forward-epochs", type=int, default=None, help="forward model epochs"
    )
    g.add_argument(
        "--inverse-epochs", type=int, default=None, help="inverse model epochs"
    )
    g.add_argument(
        "--explore-n", type=int, default=8, help="novel outputs to render (8)"
    )
    g.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="explore candidates ranked by the forward model (predict.py default)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed for every stage (0)")
    p = ap.add_argument_group("paths")
    p.add_argument("--data", default="data", help="coverage data folder (data)")
    p.add_argument(
        "--refs", default="references/refs.jsonl", help="references to breed from"
    )
    p.add_argument(
        "--checkpoints", default="checkpoints", help="checkpoint folder (checkpoints)"
    )
    p.add_argument("--output", default="output", help="output folder (output)")
    p.add_argument(
        "--renderer-url",
        default=None,
        help="POST /api/raster URL (default: $RENDERER_URL, else localhost:3000)",
    )
    p.add_argument(
        "--new-round",
        action="store_true",
        help="start a new round even if the last one did not finish",
    )
    return ap.parse_args(argv)


class Round:
    """A round's folder and its state.json (stage → {seconds, result})."""

    def __init__(self, output: Path, new: bool) -> None:
        rounds = sorted(output.glob("round-[0-9][0-9][0-9]"))
        last = rounds[-1] if rounds else None
        if last is not None and not new and not self._load(last).get("finished"):
            self.dir, self.resumed = last, True
        else:
            number = int(last.name[6:]) + 1 if last is not None else 1
            self.dir, self.resumed = output / f"round-{number:03d}", False
        self.number = int(self.dir.name[6:])
        self.state: dict[str, Any] = self._load(self.dir) or {"stages": {}}

    @staticmethod
    def _load(folder: Path) -> dict[str, Any]:
        f = folder / "state.json"
        return json.loads(f.read_text()) if f.exists() else {}

    def save(self) -> None:
        atomic.write_json(self.dir / "state.json", self.state)

    def done(self, stage: str) -> bool:
        return stage in self.state["stages"]

    def interrupted(self, stage: str) -> bool:
        """True when `stage` was started in an earlier run and did not finish."""
        return stage in self.state.get("started_stages", []) and not self.done(stage)

    def run(
        self, stage: str, fn: Callable[[], Any], log: Callable[[str], None]
    ) -> None:
        if self.done(stage):
            log(f"== {stage}: done in an earlier run of this round, skipped")
            return
        log(f"== {stage}" + (" (carrying on)" if self.interrupted(stage) else ""))
        t0 = time.time()
        started = self.state.setdefault("started_stages", [])
        if stage not in started:
            started.append(stage)
            self.save()
        result = fn()
        seconds = round(time.time() - t0, 1)
        self.state["stages"][stage] = {"seconds": seconds, "summary": summarize(result)}
        self.save()
        log(f"== {stage}: {seconds:.0f} s")


def summarize(result: Any) -> str:
    """One line for the report from what a stage's main returned: a count, a
    training run's best epoch, or explore's kept ids."""
    if isinstance(result, int):
        return f"{result} items"
    if isinstance(result, dict) and "history" in result:
        hist = result["history"]
        if not hist:
            return "no epochs"
        last = hist[-1]
        keys = ("val_loss", "ncc", "f1", "cont_nrmse", "cat_acc", "layers_acc")
        parts = [f"{k} {last[k]:.3f}" for k in keys if isinstance(last.get(k), float)]
        return f"{len(hist)} epochs; last: " + ", ".join(parts)
    if isinstance(result, dict) and "ids" in result:
        return f"kept outputs {result['ids']}"
    return str(result)[:120]


def main(args: argparse.Namespace) -> Path:
    """Run (or carry on) a round; returns the path of its report."""
    import generate
    import predict
    import score_refs
    import train

    log = print
    prof = config.get_profile(args.profile)
    n = args.n if args.n is not None else prof.n
    nq = args.nq if args.nq is not None else prof.nq
    size = args.size or prof.size
    data, quality = Path(args.data), Path(args.data) / "quality"
    ckpt, output = Path(args.checkpoints), Path(args.output)
    rnd = Round(output, args.new_round)
    rnd.dir.mkdir(parents=True, exist_ok=True)
    st = rnd.state
    # Targets are fixed when the round starts, so an interrupted round tops up to the
    # same numbers instead of adding again.
    st.setdefault("profile", prof.name)
    st.setdefault("started", time.strftime("%Y-%m-%d %H:%M:%S"))
    st.setdefault(
        "target_data",
        dataset.Layout(data).count_pairs() + n
        if rnd.number > 1
        else max(n, dataset.Layout(data).count_pairs()),
    )
    st.setdefault("target_quality", dataset.Layout(quality).count_pairs() + nq)
    rnd.save()
    verb = "carrying on" if rnd.resumed else "starting"
    log(
        f"iterate: {verb} round {rnd.number} ({rnd.dir}), profile {prof.name}, "
        f"data {size}x{size} px, {st['target_data']} coverage + "
        f"{st['target_quality']} quality samples in all"
    )
    common = ["--seed", str(args.seed)]
    with rendering.ensure_renderer(args.renderer_url, log=log) as url:
        rurl = ["--renderer-url", url]

        def gen(folder: Path, target: int, extra: list[str]) -> int:
            missing = max(0, target - dataset.Layout(folder).count_pairs())
            if missing == 0:
                log(
                    f"{folder}: {dataset.Layout(folder).count_pairs()} pairs, target reached"
                )
                return 0
            # --n is the total the folder holds when done (generate adds the missing)
            argv = ["--n", str(target), "--out", str(folder), "--size", str(size)]
            argv += ["--refs", args.refs, *extra, *rurl, *common]
            return generate.main(generate.parse_args(argv))

        def train_stage(stage: str, folders: list[Path], epochs: int | None) -> Any:
            argv = ["--stage", stage, "--data", *map(str, folders), "--size", str(size)]
            argv += ["--profile", prof.name, "--out", str(ckpt / stage), *common]
            argv += rurl
            if epochs is not None:
                argv += ["--epochs", str(epochs)]
            if stage == "inverse":
                argv += ["--forward", str(ckpt / "forward")]
                bundled = utils.ROOT / checkpoint_io.BUNDLED_INVERSE_PATH
                if bundled.with_suffix(".json").exists():
                    argv += ["--init", str(bundled)]  # fine-tune the pretrained one
            if rnd.interrupted(f"train-{stage}"):
                argv.append("--resume")  # carry on from OUT-last
            result = train.main(train.parse_args(argv))
            if isinstance(result, dict) and result.get("interrupted"):
                raise KeyboardInterrupt
            return result

        rnd.run("generate", lambda: gen(data, st["target_data"], []), log)
        rnd.run(
            "train-forward",
            lambda: train_stage("forward", [data], args.forward_epochs),
            log,
        )
        scored = Path(args.refs).with_name("refs-scored.jsonl")
        rnd.run(
            "score-refs",
            lambda: len(
                score_refs.main(
                    score_refs.parse_args(
                        ["--refs", args.refs, "--out", str(scored), *rurl]
                    )
                )
            ),
            log,
        )
        rnd.run(
            "generate-quality",
            lambda: gen(
                quality,
                st["target_quality"],
                ["--scored", "--scored-refs", str(scored)],
            ),
            log,
        )
        rnd.run(
            "train-inverse",
            lambda: train_stage("inverse", [quality, data], args.inverse_epochs),
            log,
        )

        def explore() -> Any:
            argv = ["--explore", "-n", str(args.explore_n), "--out", str(output)]
            argv += ["--forward", str(ckpt / "forward"), *rurl, *common]
            argv += ["--refs", args.refs, "--scored-refs", str(scored)]
            if args.candidates:
                argv += ["--candidates", str(args.candidates)]
            return predict.main(predict.parse_args(argv))

        rnd.run("explore", explore, log)
    report = write_report(rnd, data, ckpt, output, scored)
    st["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    rnd.save()
    total = sum(s["seconds"] for s in st["stages"].values())
    log(
        f"iterate: round {rnd.number} finished ({total:.0f} s of stages). Report: {report}"
    )
    log(
        "next: look at the explore sheet, keep what you like with "
        "`make save-ref ID=out:N`, then `make iterate` again"
    )
    return report


def write_report(
    rnd: Round, data: Path, ckpt: Path, output: Path, scored: Path
) -> Path:
    """output/round-NNN/report.md with copies of the round's pictures."""
    pictures = [
        ("Coverage data: the round's first samples", data / "sheet.png", "data"),
        (
            "Quality data: the round's first samples",
            data / "quality" / "sheet.png",
            "quality",
        ),
        ("Forward model: training curves", ckpt / "forward-curves.png", ""),
        ("Forward model: validation (renderer | model)", ckpt / "forward-val.png", ""),
        ("Inverse model: training curves", ckpt / "inverse-curves.png", ""),
        (
            "Inverse model: validation (target | render of prediction)",
            ckpt / "inverse-val.png",
            "",
        ),
        ("Explore: novel outputs", _latest(output, "explore-*.png"), ""),
        ("References by aesthetic score", scored.with_suffix(".png"), ""),
    ]
    lines = [
        f"# Round {rnd.number}",
        "",
        f"Profile `{rnd.state['profile']}`, started {rnd.state['started']}.",
        "",
        "| stage | seconds | result |",
        "|---|---:|---|",
    ]
    for stage in STAGES:
        s = rnd.state["stages"].get(stage)
        if s:
            lines.append(f"| {stage} | {s['seconds']:.0f} | {s['summary']} |")
    lines.append("")
    for title, src, prefix in pictures:
        if src is None or not src.exists():
            lines += [f"## {title}", "", "(not produced in this round)", ""]
            continue
        dst = rnd.dir / (f"{prefix}-{src.name}" if prefix else src.name)
        shutil.copyfile(src, dst)
        lines += [f"## {title}", "", f"![{title}]({dst.name})", ""]
    report = rnd.dir / "report.md"
    atomic.atomic_write_text(report, "\n".join(lines))
    return report


def _latest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


if __name__ == "__main__":
    try:
        main(parse_args())
    except (rendering.RendererError, refs_io.RefsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: run `make iterate` again to carry on this round",
            file=sys.stderr,
        )
        sys.exit(130)
