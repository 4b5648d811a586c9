"""A round of the pipeline (pipeline.md "Round N"): its stages in order, its folder
and state.json (so an interrupted round is carried on), and its report.

    generate → train forward → score refs → generate quality → train inverse →
    choose inverse (the round's or the bundled one) → explore → report

Each stage records itself in `output/round-NNN/state.json` when it finishes; the
next call skips finished stages and the stages themselves resume (generation tops up
to its target, training keeps its best checkpoint). A finished round makes the next
call start round N+1, which adds new data bred from the (grown) references.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from art_explorer import atomic, config, utils
from art_explorer.data import dataset
from art_explorer.data.generation import GenerateArgs, generate
from art_explorer.nets import checkpoint_io
from art_explorer.scene import rendering
from art_explorer.scoring.ref_scores import ScoreRefsArgs, score_refs
from art_explorer.training import selection
from art_explorer.training.args import TrainArgs

STAGES = (
    "generate",
    "train-forward",
    "score-refs",
    "generate-quality",
    "train-inverse",
    "choose-inverse",
    "explore",
)

Log = Callable[[str], None]


@dataclass
class IterateArgs:
    """One full round of the pipeline, resumable."""

    profile: Literal["cpu", "gpu"] | None = None
    """settings profile (None: gpu with CUDA, else cpu)"""
    n: int | None = None
    """coverage samples added per round (None: the profile's n)"""
    nq: int | None = None
    """quality samples added per round (None: the profile's nq)"""
    size: int | None = None
    """data/training resolution in px (None: the profile's size)"""
    forward_epochs: int | None = None
    """forward model epochs (None: the profile's)"""
    inverse_epochs: int | None = None
    """inverse model epochs (None: the profile's)"""
    explore_n: int = 8
    """explore: best new elites of the archive to render into the output folder"""
    explore_renders: int = 500
    """explore: real renders that grow the archive (OUTPUT/archive) this round"""
    seed: int = 0
    """seed for every stage"""
    data: str = "data"
    """coverage data folder (quality data: DATA/quality)"""
    refs: str = "references/refs.jsonl"
    """references to breed from"""
    checkpoints: str = "checkpoints"
    """checkpoint folder"""
    output: str = "output"
    """output folder (rounds go to OUTPUT/round-NNN)"""
    renderer_url: str | None = None
    """POST /api/raster URL (None: $RENDERER_URL, else localhost:3000)"""
    new_round: bool = False
    """start a new round even if the last one did not finish"""
    gate_draws: int = selection.HELD_OUT
    """held-out curated-like draws on which the round's inverse model must beat the
    bundled one to replace it"""


class Round:
    """A round's folder and its state.json (stage → {seconds, summary})."""

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
        # the stages earlier runs started; `run` adds this run's to the state only
        self.started_before = frozenset(self.state.get("started_stages", []))

    @staticmethod
    def _load(folder: Path) -> dict[str, Any]:
        f = folder / "state.json"
        return json.loads(f.read_text()) if f.exists() else {}

    def save(self) -> None:
        atomic.write_json(self.dir / "state.json", self.state)

    def done(self, stage: str) -> bool:
        return stage in self.state["stages"]

    def interrupted(self, stage: str) -> bool:
        """True when `stage` was started in an earlier run and did not finish (a
        stage this run started is not: its training starts fresh, not from OUT-last)."""
        return stage in self.started_before and not self.done(stage)

    def run(self, stage: str, fn: Callable[[], Any], log: Log) -> None:
        """Run one stage unless an earlier run finished it; record it when done."""
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
    """One line for the report from what a stage returned: a count, a training
    run's last epoch, or explore's kept ids."""
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
    if isinstance(result, dict) and "cells_filled" in result:
        return (
            f"archive {result['cells_filled']}/{result['cells_total']} cells, "
            f"QD-score {result.get('qd_score', 0):.1f}; outputs {result.get('ids')}"
        )
    if isinstance(result, dict) and "ids" in result:
        return f"kept outputs {result['ids']}"
    return str(result)[:120]


@dataclass
class Plan:
    """What every stage of one round needs: the settings, folders and renderer."""

    args: IterateArgs
    profile: config.Profile
    size: int
    rnd: Round
    url: str = ""

    @property
    def data(self) -> Path:
        return Path(self.args.data)

    @property
    def quality(self) -> Path:
        return Path(self.args.data) / "quality"

    @property
    def ckpt(self) -> Path:
        return Path(self.args.checkpoints)

    @property
    def output(self) -> Path:
        return Path(self.args.output)

    @property
    def scored(self) -> Path:
        return Path(self.args.refs).with_name("refs-scored.jsonl")


def run_round(args: IterateArgs, log: Log = print) -> Path:
    """Run (or carry on) a round; returns the path of its report."""
    plan = start(args, log)
    st = plan.rnd.state
    with rendering.ensure_renderer(args.renderer_url, log=log) as url:
        plan.url = url
        stages: list[tuple[str, Callable[[], Any]]] = [
            ("generate", lambda: gen_stage(plan, plan.data, st["target_data"], log)),
            ("train-forward", lambda: train_stage(plan, "forward")),
            ("score-refs", lambda: score_stage(plan, log)),
            (
                "generate-quality",
                lambda: gen_stage(plan, plan.quality, st["target_quality"], log),
            ),
            ("train-inverse", lambda: train_stage(plan, "inverse")),
            ("choose-inverse", lambda: choose_stage(plan, log)),
            ("explore", lambda: explore_stage(plan, log)),
        ]
        for stage, fn in stages:
            plan.rnd.run(stage, fn, log)
    report = write_report(plan.rnd, plan.data, plan.ckpt, plan.output, plan.scored)
    st["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    plan.rnd.save()
    total = sum(s["seconds"] for s in st["stages"].values())
    log(
        f"iterate: round {plan.rnd.number} finished ({total:.0f} s of stages). "
        f"Report: {report}"
    )
    log(
        "next: look at the explore sheet, keep what you like with "
        "`make save-ref ID=out:N`, then `make iterate` again"
    )
    return report


def start(args: IterateArgs, log: Log) -> Plan:
    """Open the round (the last unfinished one, or a new one) and fix its targets
    when it starts, so an interrupted round tops up to the same numbers."""
    prof = config.get_profile(args.profile)
    n = args.n if args.n is not None else prof.n
    nq = args.nq if args.nq is not None else prof.nq
    plan = Plan(
        args, prof, args.size or prof.size, Round(Path(args.output), args.new_round)
    )
    rnd, st = plan.rnd, plan.rnd.state
    rnd.dir.mkdir(parents=True, exist_ok=True)
    for folder in (plan.data, plan.quality):
        aside = dataset.set_aside_other_schema(folder)
        if aside is not None:
            log(
                f"{folder}: data of another parameter schema (its pictures are drawn "
                f"otherwise now), kept as {aside}; this round generates anew"
            )
            # what the round did with that data no longer holds: its stages rerun
            rnd.state, rnd.started_before = {"stages": {}}, frozenset()
            st = rnd.state
    have = dataset.Layout(plan.data).count_pairs()
    st.setdefault("profile", prof.name)
    st.setdefault("started", time.strftime("%Y-%m-%d %H:%M:%S"))
    st.setdefault("target_data", have + n if rnd.number > 1 else max(n, have))
    st.setdefault("target_quality", dataset.Layout(plan.quality).count_pairs() + nq)
    rnd.save()
    verb = "carrying on" if rnd.resumed else "starting"
    log(
        f"iterate: {verb} round {rnd.number} ({rnd.dir}), profile {prof.name}, "
        f"data {plan.size}x{plan.size} px, {st['target_data']} coverage + "
        f"{st['target_quality']} quality samples in all"
    )
    return plan


def gen_stage(plan: Plan, folder: Path, target: int, log: Log) -> int:
    """Top `folder` up to `target` pairs (quality data: bred from the scored refs and
    the elites of explore's archive)."""
    have = dataset.Layout(folder).count_pairs()
    if have >= target:
        log(f"{folder}: {have} pairs, target reached")
        return 0
    quality = folder == plan.quality
    return generate(
        GenerateArgs(
            n=target,  # the total the folder holds when done
            out=str(folder),
            size=plan.size,
            refs=plan.args.refs,
            scored=quality,
            scored_refs=str(plan.scored),
            # quality data also breeds from explore's archive (earlier rounds')
            elites=str(plan.output / "archive") if quality else None,
            renderer_url=plan.url,
            seed=plan.args.seed,
        ),
        log,
    )


def score_stage(plan: Plan, log: Log) -> int:
    args = ScoreRefsArgs(
        refs=plan.args.refs, out=str(plan.scored), renderer_url=plan.url
    )
    return len(score_refs(args, log))


def train_stage(plan: Plan, stage: Literal["forward", "inverse"]) -> Any:
    """train.py's main on this round's data: the profile's options for the stage with
    the round's folders, size, seed and renderer; the inverse model fine-tunes the
    bundled one when it is there; an interrupted stage carries on from OUT-last."""
    import train

    folders = [plan.data] if stage == "forward" else [plan.quality, plan.data]
    epochs = (
        plan.args.forward_epochs if stage == "forward" else plan.args.inverse_epochs
    )
    bundled = utils.ROOT / checkpoint_io.BUNDLED_INVERSE_PATH
    fine_tune = stage == "inverse" and bundled.with_suffix(".json").exists()
    args = dataclasses.replace(
        TrainArgs.of_profile(plan.profile, stage),
        data=[str(f) for f in folders],
        size=plan.size,
        out=str(plan.ckpt / stage),
        seed=plan.args.seed,
        renderer_url=plan.url,
        resume=plan.rnd.interrupted(f"train-{stage}"),
    )
    if epochs is not None:
        args.epochs = epochs
    if stage == "inverse":
        args.forward = str(plan.ckpt / "forward")
        args.init = str(bundled) if fine_tune else None
    problems = args.problems()
    if problems:
        raise ValueError(f"train {stage}: " + "; ".join(problems))
    result = train.main(args)
    if isinstance(result, dict) and result.get("interrupted"):
        raise KeyboardInterrupt
    return result


def choose_stage(plan: Plan, log: Log) -> str:
    """The round gate (training.selection): the round's inverse model replaces the
    bundled one only when it scores better on held-out curated-like draws; a loser
    is moved aside to NAME-rejected.*, so predict falls back to the bundled one. The
    verdict goes to state.json for the report."""
    sel = selection.keep_better_inverse(plan.ckpt / "inverse", n=plan.args.gate_draws)
    plan.rnd.state["inverse_selection"] = dataclasses.asdict(sel)
    log(sel.reason)
    return f"{sel.chosen} inverse model ({sel.use})"


def explore_stage(plan: Plan, log: Log) -> Any:
    """Grow explore's archive (OUTPUT/archive, the one `make explore` grows) by the
    round's renders; its best new elites are rendered into the output folder."""
    from art_explorer.explore import qd

    args = plan.args
    grow = qd.GrowArgs(
        renders=args.explore_renders,
        archive=str(plan.output / "archive"),
        out=str(plan.output),
        n=args.explore_n,
        refs=args.refs,
        renderer_url=plan.url,
        seed=args.seed,
    )
    return qd.grow(grow, log=log)


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
        ("Explore: the best new elites", _latest(output, "explore-*.png"), ""),
        ("Explore: the archive's map", output / "archive" / "map.png", ""),
        ("Explore: how the archive grew", output / "archive" / "growth.png", ""),
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
    lines += inverse_section(rnd.state.get("inverse_selection"))
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


def inverse_section(sel: dict[str, Any] | None) -> list[str]:
    """The report's lines on which inverse model predict uses, why, and both scores."""
    lines = ["## Inverse model predict uses", ""]
    if not sel:
        return [*lines, "(the round gate has not run in this round)", ""]
    lines += [f"`{sel['use']}`: {sel['reason']}.", ""]
    lines += ["| model | geometry | layers | score |", "|---|---:|---:|---:|"]
    for name in ("bundled", "candidate"):
        acc = sel[name]
        if acc:
            lines.append(
                f"| {name} | {acc['geometry']:.1%} | {acc['layers']:.1%} "
                f"| {acc['score']:.3f} |"
            )
        else:
            lines.append(f"| {name} | – | – | unusable |")
    return [*lines, "", f"Scored on {sel['held_out']} held-out curated-like draws.", ""]


def _latest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None
