"""The gallery's page in headless Chromium (issue 34): jobs with progress, cancel and
re-attach after a reload; predict's form from make predict's settings; the editor's
state after a failed Open, its live copy box, undo/redo, number entry; the grid's
viewer, labels and filter; the editor at 390 px. Skips without chromium."""

from __future__ import annotations

import json
from typing import Any

import requests
from gallery_fixtures import N_REFS, Gallery, new_page, wait_for_no_workers

import predict
from art_explorer.data import refs_io
from art_explorer.scene import schema

pytest_plugins = ["gallery_fixtures"]  # app, gal, browser, page


def test_a_job_shows_progress_survives_a_reload_and_cancels(
    page: Any, gal: Gallery
) -> None:
    page.goto(f"{gal.url}/#explore")
    page.fill("#explore-n", "64")
    page.fill("#archive-renders", "100000")  # "Explore from the refs" grows the archive
    page.click("#explore-run")
    page.wait_for_selector("#job[data-state=running]:not([hidden])")
    page.wait_for_function("document.querySelector('#job-stage').textContent !== ''")
    assert "archive" in page.inner_text("#job-kind")
    page.reload()  # the page comes back following the same job
    page.wait_for_selector("#job[data-state=running]:not([hidden])")
    page.wait_for_function("+document.querySelector('#job-progress').value > 0")
    assert page.is_disabled("#explore-run")
    eta = page.inner_text("#job-eta")
    assert "left" in eta or "so far" in eta
    page.click("#job-cancel")
    page.wait_for_selector("#job[data-state=cancelled]")
    wait_for_no_workers()  # the job's processes are ended (bench/gallery.py: how fast)
    assert "cancelled" in page.inner_text("#explore-log")
    assert page.is_enabled("#explore-run")


def test_predict_form_starts_from_make_predicts_settings(
    page: Any, gal: Gallery
) -> None:
    make = predict.parse_args(["--target", "x.png"])
    page.goto(f"{gal.url}/#predict")
    page.wait_for_function(
        "document.querySelector('#predict-form input[name=fevals]').value !== ''",
        timeout=150_000,
    )
    for name in ("fevals", "size", "gd_steps", "final_size"):
        value = page.input_value(f'#predict-form input[name="{name}"]')
        assert int(value) == getattr(make, name), name
    assert f"{make.fevals} renders at {make.size}²" in page.inner_text(
        "#predict-defaults"
    )


def test_a_finished_predict_is_shown_after_a_reload_with_its_verdict(
    browser: Any, gal: Gallery, renderer_url: str
) -> None:
    from art_explorer.scene import rendering

    target = rendering.RendererClient(url=renderer_url).render_png(gal.results[0], 96)
    r = requests.post(
        f"{gal.url}/api/predict",
        files={"file": ("t.png", target)},
        data={"fevals": "12", "size": "32", "gd_steps": "0", "final_size": "64"},
    )
    job = r.json()["job"]
    pg = new_page(browser)
    try:
        pg.goto(f"{gal.url}/#explore")  # opened elsewhere while the job runs
        pg.wait_for_selector("#job:not([hidden])")
        pg.goto(f"{gal.url}/#predict")
        pg.reload()
        pg.wait_for_selector("#predict-result:not([hidden])", timeout=150_000)
        caption = pg.inner_text("#predict-scores")
        assert "same picture" in caption and "NCC" in caption
        state = requests.get(f"{gal.url}/api/jobs/{job}").json()
        assert state["state"] == "done"
        assert caption.startswith(state["result"]["id"] + ":")
        assert pg.get_attribute("#predict-target", "src") == state["result"]["target"]
        assert state["result"]["id"] in pg.inner_text("#job-result")
        assert not pg.errors
    finally:
        pg.context.close()


def test_a_failed_open_keeps_the_editor_honest(page: Any, gal: Gallery) -> None:
    page.goto(f"{gal.url}/#editor?id=ref:2")
    page.wait_for_function(
        "window.editorIdle() && +document.querySelector('#editor-image').dataset.renders >= 1"
    )
    page.fill("#editor-id", "out:99999")
    page.click("#editor-open")
    page.wait_for_selector("#editor-msg:has-text('could not open out:99999')")
    assert page.input_value("#editor-id") == "ref:2"  # what the sliders hold
    page.click("#editor-save")  # saves what is shown: ref 2, already a ref
    page.wait_for_selector("#toast:has-text('already a ref: line 2')")
    assert gal.lines() == gal.seed_lines


def test_the_copy_box_follows_edits_and_undo_redo(page: Any, gal: Gallery) -> None:
    page.goto(f"{gal.url}/#editor?id=ref:1")
    page.wait_for_function(
        "window.editorIdle() && +document.querySelector('#editor-image').dataset.renders >= 1"
    )
    page.click("#editor-copy-flat")
    page.wait_for_selector("#editor-json:not([hidden])")
    first = json.loads(page.input_value("#editor-json"))
    num = page.locator('#controls input.num[data-for="scale"]')
    num.fill("1.234")
    num.press("Enter")
    page.wait_for_function("window.editorCopyFresh()")
    page.wait_for_function(
        "JSON.parse(document.querySelector('#editor-json').value).scale === 1.234"
    )
    edited = json.loads(page.input_value("#editor-json"))
    assert {k: v for k, v in edited.items() if k != "scale"} == {
        k: v for k, v in first.items() if k != "scale"
    }
    page.wait_for_selector("#editor-undo:not([disabled])")
    scale = "JSON.parse(document.querySelector('#editor-json').value).scale"
    page.click("#editor-undo")
    page.wait_for_function(f"window.editorCopyFresh() && {scale} === {first['scale']}")
    num_value = float(num.input_value())
    assert abs(num_value - first["scale"]) < 1e-3  # the controls show it too
    page.click("#editor-redo")
    page.wait_for_function(f"window.editorCopyFresh() && {scale} === 1.234")
    assert num.input_value() == "1.234"
    page.locator('#controls .ctl:has(input[name="scale"]) .name').dblclick()
    default = next(
        p["default"] for p in schema.schema_json()["params"] if p["key"] == "scale"
    )
    page.wait_for_function(f"window.editorCopyFresh() && {scale} === {default}")


def test_groups_fold_and_the_editor_fits_390px(browser: Any, gal: Gallery) -> None:
    pg = new_page(browser, 390, 844)
    try:
        pg.goto(f"{gal.url}/#editor?id=ref:1")
        pg.wait_for_function(
            "window.editorIdle() && +document.querySelector('#editor-image').dataset.renders >= 1"
        )
        width = pg.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide at 390"
        box = pg.locator("#editor-image").bounding_box()
        assert box is not None and box["width"] <= 390
        group = pg.locator("#controls details.group").first
        assert group.get_attribute("open") is not None
        group.locator("summary").click()
        assert group.get_attribute("open") is None
        assert not pg.errors
    finally:
        pg.context.close()


def test_full_size_view_zooms_and_compare_shows_two(page: Any, gal: Gallery) -> None:
    page.goto(f"{gal.url}/#explore")
    page.locator('.tile[data-id="out:2"] button.full').click()
    page.wait_for_selector("#viewer:not([hidden]) img")
    page.locator("#viewer .pane").first.click()
    page.wait_for_function("document.querySelector('#viewer img').dataset.zoom === '2'")
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")
    page.locator('.tile[data-id="out:2"] img').click()
    page.locator('.tile[data-id="out:0"] img').click()
    page.click("#explore-compare")
    page.wait_for_function("document.querySelectorAll('#viewer img').length === 2")
    down = page.get_attribute('.tile[data-id="out:1"] a.down', "href")
    assert down and requests.get(gal.url + down).content.startswith(b"\x89PNG")


def test_labels_and_filter_on_the_grid(page: Any, gal: Gallery) -> None:
    r = requests.post(f"{gal.url}/api/refs", json={"id": "out:1"})
    assert r.ok
    page.goto(f"{gal.url}/#explore")
    tile = page.locator('.tile[data-id="out:1"]')
    page.wait_for_selector('.tile[data-id="out:1"][data-ref="1"]')
    assert "already a ref" in tile.inner_text()
    assert tile.locator("button.keep").is_disabled()
    page.select_option("#explore-filter", "ref")
    page.wait_for_selector('.tile[data-id="out:0"]', state="hidden")
    assert tile.is_visible()
    page.select_option("#explore-filter", "not-ref")
    page.wait_for_selector('.tile[data-id="out:1"]', state="hidden")
    # keys: focus a tile, k keeps it
    page.select_option("#explore-filter", "")
    page.locator('.tile[data-id="out:2"]').focus()
    page.keyboard.press("k")
    page.wait_for_selector("#toast:has-text('kept out:2')")
    assert len(gal.lines()) == N_REFS + 2
    keys = [refs_io.ref_key(p) for p in refs_io.load_refs(gal.refs)]
    assert len(set(keys)) == N_REFS + 2


def test_a_remove_can_be_undone(page: Any, gal: Gallery) -> None:
    key = refs_io.ref_key(refs_io.load_refs(gal.refs)[1])
    assert requests.put(f"{gal.url}/api/refs/{key}/stars", json={"stars": 5}).ok
    page.goto(f"{gal.url}/#refs")
    page.locator('.tile[data-line="2"] button.remove').click()
    page.wait_for_selector("#toast:has-text('removed line 2')")
    assert len(gal.lines()) == N_REFS - 1
    page.click("#toast button.toast-action")
    page.wait_for_selector("#toast:has-text('restored line 2')")

    def canon(lines: list[str]) -> list[str]:
        return [
            schema.canonical_json(schema.validate_params(json.loads(x))) for x in lines
        ]

    assert canon(gal.lines()) == canon(gal.seed_lines)
    page.wait_for_selector('.tile[data-line="2"] .stars[data-stars="5"]')
