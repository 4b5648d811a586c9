"""Benchmark: the gallery's first paint of a 2,000-picture grid and the editor's
re-render latency (slider → new picture on screen), in headless Chromium.

    python bench/gallery.py            # 2,000 pictures, 5 loads, 60 + 60 slider steps
    python bench/gallery.py --quick    # 2,000 pictures, 3 loads, 20 + 20 slider steps

Starts the bundled renderer and gallery.py's app on free ports over a temp output
folder holding N results (1024² PNGs as explore writes them: a few distinct renders,
hard-linked to N numbered files, so every tile is its own file and its own
thumbnail). Grid: from navigation start until every tile in the first screen shows
its picture, in a fresh browser context each time (no browser cache); the first load
is right after the server started (cold thumbnails), later loads find them (warm).
Editor: a typical ref open at 256²; each step sets a slider and dispatches `input`
as a drag does, and times until the new picture is decoded and the next frame is
painted; the same again while an explore job runs (the gallery's jobs run in their
own process).
Needs Debian's chromium. Writes bench/results/gallery.md.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gallery
from art_explorer import atomic, cli, utils
from art_explorer.predict.output import write_result
from art_explorer.scene import rendering, sampling

SCRIPTS = [
    f"/web/{n}.js" for n in ("core", "explore", "refs", "predict", "editor", "main")
]
FIRST_SCREEN_JS = """() => {
  const tiles = [...document.querySelectorAll('#grid .tile img')];
  const shown = tiles.filter(i => i.getBoundingClientRect().top < innerHeight);
  return tiles.length > 0 && shown.every(i => i.complete && i.naturalWidth > 0)
    ? {ms: performance.now(), tiles: tiles.length, shown: shown.length} : null;
}"""

SLIDER_JS = """async ([name, values]) => {
  const img = document.querySelector('#editor-image');
  const el = document.querySelector(`#controls input[name="${name}"]`);
  const out = [];
  for (const v of values) {
    const n0 = +img.dataset.renders;
    const t0 = performance.now();
    el.value = v;
    el.dispatchEvent(new Event('input', {bubbles: true}));
    while (+img.dataset.renders === n0) await new Promise(r => setTimeout(r, 1));
    await new Promise(r => requestAnimationFrame(() => r()));
    out.push(performance.now() - t0);
  }
  return out;
}"""


@dataclass
class BenchArgs:
    """Benchmark: the gallery's first paint of a 2,000-picture grid and the editor's
    re-render latency, idle and while a job runs."""

    quick: bool = False
    """3 loads, 20 steps (CI)"""
    pictures: int = 2000
    """grid size"""
    loads: int = 0
    """grid loads (0: 5, or 3 with --quick)"""
    steps: int = 0
    """slider steps, each of idle and busy (0: 60, or 20 with --quick)"""
    out: str = "bench/results/gallery.md"
    """markdown results"""
    shots: str = ""
    """instead of measuring: remake the docs' screenshots in this folder (docs)"""


def parse_args(argv: list[str] | None = None) -> BenchArgs:
    return cli.parse(BenchArgs, argv)


def fill_output(out: Path, n: int, url: str, distinct: int = 24) -> None:
    """out/images|params/000000..n-1: `distinct` real 1024² renders, hard-linked."""
    client = rendering.RendererClient(url=url)
    rng = random.Random(0)
    for i in range(distinct):
        p = sampling.sample_params(rng)
        write_result(out, i, p, client.render_png(p, 1024))
    client.close()
    for i in range(distinct, n):
        for sub, ext in (("images", "png"), ("params", "json")):
            os.link(
                out / sub / f"{i % distinct:06d}.{ext}", out / sub / f"{i:06d}.{ext}"
            )


def first_screen_server_ms(base: str, shown: int, newest: int) -> float:
    """Milliseconds the server takes for a first screen's requests one after the
    other (the page, its script and style, a results page, `shown` thumbnails),
    without a browser: how much of the first paint is the server's."""
    import requests

    s = requests.Session()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for path in ("/", *SCRIPTS, "/web/style.css", "/api/results?limit=48"):
            s.get(base + path).raise_for_status()
        for i in range(shown):
            s.get(
                f"{base}/thumbs/output/images/{newest - i:06d}.png"
            ).raise_for_status()
        best = min(best, (time.perf_counter() - t0) * 1000)
    s.close()
    return best


def slider_steps(page: Any, steps: int, seed: int) -> list[float]:
    """ms per slider step over three sliders of the open ref (SLIDER_JS)."""
    rng = random.Random(seed)
    per, out = max(1, steps // 3), []
    for name, lo, hi in (
        ("scale", 0.6, 1.4),
        ("rotationFactor", -0.05, 0.05),
        ("alphaFactor", 0.8, 0.98),
    ):
        values = [f"{rng.uniform(lo, hi):.4f}" for _ in range(per)]
        out += page.evaluate(SLIDER_JS, [name, values])
    return out


def busy_slider_steps(
    base: str, page: Any, steps: int
) -> tuple[list[float], str, float]:
    """Slider steps while an explore job runs: (ms per step, what the job did, ms from
    the Cancel request until the job's processes are gone)."""
    import requests

    from art_explorer.gallery.worker import worker_pids

    body = {"n": 64, "candidates": 4096, "seed": 1}
    job = requests.post(f"{base}/api/explore", json=body, timeout=30).json()["job"]
    cancelled = False
    try:
        # wait until the worker itself reports (its imports are done; it is working)
        while not any(
            not e["line"].startswith("the gallery")
            for e in requests.get(f"{base}/api/jobs/{job}").json()["events"]
        ):
            time.sleep(0.2)
        out = slider_steps(page, steps, 2)
        state = requests.get(f"{base}/api/jobs/{job}").json()
        t0 = time.perf_counter()
        requests.post(f"{base}/api/jobs/{job}/cancel", timeout=30)
        cancelled = True
        while worker_pids() and time.perf_counter() - t0 < 60:
            time.sleep(0.01)
        cancel_ms = 1000 * (time.perf_counter() - t0)
        return out, f"{state['state']} at {state['progress']['stage']}", cancel_ms
    finally:
        if not cancelled:
            requests.post(f"{base}/api/jobs/{job}/cancel", timeout=30)


@contextlib.contextmanager
def running_gallery(pictures: int) -> Iterator[tuple[str, Path]]:
    """The bundled renderer and the gallery's app on free ports over a temp output
    of `pictures` results and the project's refs: (base URL, temp folder)."""
    rport, gport = rendering.free_port(), rendering.free_port()
    rurl = f"http://127.0.0.1:{rport}/api/raster"
    proc = rendering.start_renderer(rport)
    tmp = Path(tempfile.mkdtemp(prefix="bench-gallery-"))
    try:
        fill_output(tmp / "output", pictures, rurl)
        refs = tmp / "references" / "refs.jsonl"
        refs.parent.mkdir()
        refs.write_text((utils.ROOT / "references" / "refs.jsonl").read_text())
        gargs = gallery.GalleryOptions(
            refs=str(refs), output=str(tmp / "output"), data=str(tmp / "data"),
            port=gport,
        )  # fmt: skip
        server = gallery.serve(gallery.create_app(gargs, rurl, gport), gport)
        t = threading.Thread(target=server.run, daemon=True)
        t.start()
        while not server.started:
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{gport}", tmp
        finally:
            server.should_exit = True
            t.join(10)
    finally:
        rendering.stop_renderer(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def open_editor(browser: Any, base: str, hash_: str, width: int = 1280) -> Any:
    """A fresh page on the editor at `hash_`, its first picture drawn."""
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    page.goto(f"{base}/{hash_}")
    page.wait_for_function(
        "window.editorIdle() && +document.querySelector('#editor-image')"
        ".dataset.renders >= 1",
        timeout=60_000,
    )
    return page


def measure(browser: Any, base: str, args: BenchArgs) -> dict[str, Any]:
    """Grid loads, the server's share, slider steps idle and with a job."""
    loads = args.loads or (3 if args.quick else 5)
    steps = args.steps or (20 if args.quick else 60)
    grid: list[dict[str, float]] = []
    for k in range(loads):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.goto(f"{base}/#explore")
        r = page.wait_for_function(FIRST_SCREEN_JS, timeout=60_000).json_value()
        grid.append(r)
        print(f"grid load {k + 1}: {r['ms']:.0f} ms", file=sys.stderr)
        ctx.close()
    server_ms = first_screen_server_ms(base, int(grid[0]["shown"]), args.pictures - 1)
    page = open_editor(browser, base, "#editor?id=ref:1")
    slider = slider_steps(page, steps, 1)
    busy, busy_job, cancel_ms = busy_slider_steps(base, page, steps)
    page.context.close()
    return {"grid": grid, "server_ms": server_ms, "slider": slider, "busy": busy,
            "busy_job": busy_job, "cancel_ms": cancel_ms}  # fmt: skip


def report(args: BenchArgs, m: dict[str, Any]) -> str:
    """bench/results/gallery.md's text."""

    def q(xs: list[float], p: int) -> float:
        if len(xs) < 2:
            return xs[0] if xs else float("nan")
        return statistics.quantiles(xs, n=100, method="inclusive")[p - 1]

    grid, slider, busy = m["grid"], m["slider"], m["busy"]
    cold, warm = grid[0]["ms"], [g["ms"] for g in grid[1:]]
    cmd = "python bench/gallery.py" + (" --quick" if args.quick else "")
    lines = [
        "# Gallery: grid first paint and editor re-render",
        "",
        f"{datetime.date.today().isoformat()} · {platform.node() or 'machine'} · "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores · "
        f"Python {platform.python_version()} · load average at the end "
        f"{os.getloadavg()[0]:.1f}",
        "",
        f"Headless Debian chromium, 1280×900 viewport; gallery.py's app and the "
        f"bundled renderer on free ports. Reproduce: `{cmd}`.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| grid of {args.pictures} pictures: first screen shown, cold thumbnails "
        f"(ms) | {cold:.0f} |",
        f"| same, thumbnails made (ms, median of {len(warm)}) | "
        f"{statistics.median(warm) if warm else float('nan'):.0f} |",
        f"| the server's share: those requests one by one, no browser (ms, best "
        f"of 3) | {m['server_ms']:.0f} |",
        f"| tiles in the page / on the first screen | {grid[0]['tiles']:.0f} / "
        f"{grid[0]['shown']:.0f} |",
        f"| editor re-render at 256², slider → picture on screen: p50 (ms) | "
        f"{q(slider, 50):.1f} |",
        f"| same, p95 (ms) | {q(slider, 95):.1f} |",
        f"| slider steps measured | {len(slider)} |",
        f"| same while an explore job runs (64 of 4096 candidates): p50 (ms) | "
        f"{q(busy, 50):.1f} |",
        f"| same, p95 (ms); the job was then {m['busy_job']} | {q(busy, 95):.1f} |",
        f"| Cancel → the job's processes gone (ms; target: a second or two) | "
        f"{m['cancel_ms']:.0f} |",
        "",
        "First screen = every tile whose top is inside the viewport has its picture "
        "(192² JPEG thumbnails of the 1024² results). Cold = the first load right "
        "after the server started, while its background thread is still making the "
        "newest 240 thumbnails (else made on request); later loads find them in "
        "memory. The grid asks for 48 results, then 120 a page as you scroll, and "
        "the browser fetches only the pictures near the screen (loading=lazy past "
        "the first screen). Editor steps: set a slider of a typical ref, dispatch "
        "`input`, wait until the new picture is decoded and the next frame painted "
        "(POST /api/render → the renderer → PNG). The busy steps run while the "
        "gallery's explore job (its own process, art_explorer.gallery.worker) ranks "
        "candidates on the same cores; the job is cancelled after. Other work on "
        "the machine slows both: see the load average above.",
    ]
    return "\n".join(lines) + "\n"


def predict_job(base: str, target: bytes) -> dict[str, Any]:
    """A predict of `target` through the gallery with make predict's settings."""
    import requests

    r = requests.post(
        f"{base}/api/predict", files={"file": ("target.png", target)}, timeout=30
    )
    job = r.json()["job"]
    for _ in range(600):
        state = requests.get(f"{base}/api/jobs/{job}").json()
        if state["state"] != "running":
            assert state["state"] == "done", state["error"]
            return state["result"]
        time.sleep(0.5)
    raise RuntimeError("predict did not finish in 5 minutes")


def screenshots(browser: Any, base: str, tmp: Path, folder: Path) -> None:
    """docs/gallery-*.png from the real page: explore with a job running, refs,
    predict with its verdict, compare, the editor beside its target and at 390 px."""
    import requests

    client = rendering.RendererClient(
        url=requests.get(f"{base}/api/status").json()["renderer"]
    )
    ref = requests.get(f"{base}/api/params", params={"id": "ref:3"}).json()
    res = predict_job(base, client.render_png(ref, 256))
    requests.post(f"{base}/api/refs", json={"id": "out:5"})
    requests.put(
        f"{base}/api/refs/{requests.get(f'{base}/api/refs').json()['refs'][1]['key']}/stars",
        json={"stars": 4},
    )
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.goto(f"{base}/#predict")
    page.wait_for_selector("#predict-result:not([hidden])", timeout=60_000)
    page.wait_for_function(
        "document.querySelector('#predict-form input[name=fevals]').value !== ''",
        timeout=150_000,
    )
    page.screenshot(path=str(folder / "gallery-predict.png"))
    page.click("#predict-compare")
    page.wait_for_selector("#viewer:not([hidden]) img")
    page.locator("#viewer .pane").nth(1).click(position={"x": 200, "y": 200})
    page.wait_for_timeout(800)
    page.screenshot(path=str(folder / "gallery-compare.png"))
    page.keyboard.press("Escape")
    page.goto(f"{base}/#refs")
    page.wait_for_selector("#refs .tile img")
    page.wait_for_timeout(3000)
    page.screenshot(path=str(folder / "gallery-refs.png"))
    body = {"n": 64, "candidates": 4096, "seed": 1}
    job = requests.post(f"{base}/api/explore", json=body).json()["job"]
    page.goto(f"{base}/#explore")
    page.reload()  # the page re-attaches to the running job
    page.wait_for_selector("#job[data-state=running]")
    page.wait_for_function(
        "+document.querySelector('#job-progress').value > 0.05", timeout=120_000
    )
    page.locator("#grid .tile img").nth(1).click()
    page.locator("#grid .tile img").nth(6).click()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(folder / "gallery-explore.png"))
    requests.post(f"{base}/api/jobs/{job}/cancel")
    ctx.close()
    target = f"&target={res['target']}" if res.get("target") else ""
    page = open_editor(browser, base, f"#editor?id={res['id']}{target}")
    page.wait_for_timeout(800)
    page.screenshot(path=str(folder / "gallery-editor.png"))
    page.context.close()
    page = open_editor(browser, base, "#editor?id=ref:1", width=390)
    page.wait_for_timeout(500)
    page.screenshot(path=str(folder / "gallery-editor-390.png"), full_page=False)
    page.context.close()
    client.close()


def main(args: BenchArgs) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # make bench carries on; the results file is left as it was
        print("bench/gallery.py: skipped, no chromium (apt-get install chromium)")
        return {}
    pictures = 60 if args.shots else args.pictures
    with running_gallery(pictures) as (base, tmp), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True)
        try:
            if args.shots:
                screenshots(browser, base, tmp, Path(args.shots))
                return {}
            m = measure(browser, base, args)
        finally:
            browser.close()
    text = report(args, m)
    print(text)
    atomic.atomic_write_text(args.out, text)
    return m


if __name__ == "__main__":
    main(parse_args())
