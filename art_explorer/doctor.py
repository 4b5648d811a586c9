"""What this installation has: which backend each part uses (weights present or
the weight-free default), whether the renderer answers, the parameter schema, the
data and the references; one `Check` per line of `python utils.py doctor`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from art_explorer import utils
from art_explorer.data import dataset, refs_io
from art_explorer.nets import checkpoint_io
from art_explorer.scene import rendering, schema

Status = Literal["ok", "note", "problem"]


@dataclass(frozen=True)
class Check:
    """One finding: what was looked at, how it stands, and the detail."""

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        mark = {"ok": "ok  ", "note": "note", "problem": "FAIL"}[self.status]
        return f"{mark}  {self.name:<14} {self.detail}"


def schema_check() -> Check:
    return Check("schema", "ok", f"v{schema.SCHEMA_VERSION} ({schema.schema_hash()})")


def renderer_check(url: str | None, timeout: float = 3.0) -> Check:
    """Whether a renderer answers a small render at `url` (None: $RENDERER_URL or
    the default); started by the scripts when it does not (autostart)."""
    where = rendering.renderer_url(url)
    try:
        client = rendering.RendererClient(
            url=where, timeout=timeout, deadline=timeout, retries=0
        )
        try:
            png = client.render_png(schema.default_params(), 64)
        finally:
            client.close()
    except rendering.RendererError as e:
        first = str(e).splitlines()[0]
        return Check(
            "renderer",
            "note",
            f"{where} does not answer ({first}); the scripts start the bundled one",
        )
    return Check("renderer", "ok", f"{where} answers ({len(png)} B PNG at 64²)")


def checkpoint_checks(checkpoints: Path) -> list[Check]:
    """The forward and inverse checkpoints predict would load, and the bundled
    pretrained inverse model."""
    out = []
    for kind in ("forward", "inverse"):
        stem = checkpoints / kind
        if not checkpoint_io.checkpoint_exists(stem):
            out.append(Check(kind, "note", f"no {stem}.safetensors (train it first)"))
            continue
        try:
            meta = checkpoint_io.read_sidecar(stem)
        except checkpoint_io.CheckpointError as e:
            out.append(Check(kind, "problem", str(e)))
            continue
        epoch = meta.get("epoch", "?")
        out.append(Check(kind, "ok", f"{stem}.safetensors (epoch {epoch})"))
    bundled = utils.ROOT / checkpoint_io.BUNDLED_INVERSE_PATH
    if bundled.with_suffix(".json").exists():
        out.append(Check("bundled", "ok", f"pretrained inverse model {bundled}"))
    else:
        out.append(Check("bundled", "note", f"no pretrained inverse model {bundled}"))
    return out


def backend_checks() -> list[Check]:
    """Which perceptual distance and aesthetic scorer "auto" picks here."""
    from art_explorer.nets import perceptual_distance
    from art_explorer.scoring import vlm

    alex = perceptual_distance.alexnet_weights_file()
    if alex.is_file():
        perceptual = Check("perceptual", "ok", f"lpips (AlexNet weights {alex})")
    else:
        perceptual = Check("perceptual", "note", f"sqrt-ms-l1, weight-free (no {alex})")
    found = vlm.find_local_vlm(vlm.DEFAULT_VLM)
    if found is not None:
        scorer = Check("scorer", "ok", f"qwen2-vl ({found})")
    else:
        scorer = Check(
            "scorer",
            "note",
            f"heuristic, weight-free ({vlm.DEFAULT_VLM} not in {vlm.hf_cache_dir()})",
        )
    return [perceptual, scorer]


def data_checks(data: Path, refs: Path) -> list[Check]:
    """The data folders' pairs and schema, and the references."""
    out = []
    for folder in (data, data / "quality"):
        pairs = dataset.Layout(folder).count_pairs()
        try:
            dataset.check_data_schema(folder)
        except dataset.DataSchemaError as e:
            out.append(Check("data", "problem", str(e)))
            continue
        out.append(Check("data", "ok" if pairs else "note", f"{folder}: {pairs} pairs"))
    try:
        n = len(refs_io.load_refs(refs))
        rated = len(refs_io.load_ratings(refs))
        out.append(Check("refs", "ok", f"{refs}: {n} refs, {rated} rated"))
    except refs_io.RefsError as e:
        out.append(Check("refs", "problem", str(e)))
    return out


def doctor(
    renderer_url: str | None,
    checkpoints: Path,
    data: Path,
    refs: Path,
    log: Callable[[str], None] = print,
) -> list[Check]:
    """Every check, each printed through `log` as it is made."""
    checks: list[Check] = []
    steps: list[Callable[[], list[Check]]] = [
        lambda: [schema_check()],
        lambda: [renderer_check(renderer_url)],
        lambda: checkpoint_checks(checkpoints),
        backend_checks,
        lambda: data_checks(data, refs),
    ]
    for step in steps:
        for c in step():
            log(c.line())
            checks.append(c)
    return checks
