// art-explorer gallery: plain JS, no build step. Talks to gallery.py's /api.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) el.append(kid);
  return el;
};

// ---------------------------------------------------------------------------- helpers

async function api(path, opts = {}) {
  const init = { ...opts, headers: { ...(opts.headers || {}) } };
  if (opts.json !== undefined) {
    init.body = JSON.stringify(opts.json);
    init.headers["Content-Type"] = "application/json";
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new Error(`the gallery server does not answer (${e.message})`);
  }
  const type = r.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
  return body;
}

let toastTimer = 0;
function toast(msg, bad = false) {
  const t = $("#toast");
  t.textContent = msg;
  t.className = bad ? "bad" : "";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), bad ? 8000 : 3000);
}

// ---------------------------------------------------------------------------- jobs
// The server runs one job at a time; the bar under the header follows it on every
// view, and each kind's handler (set by its view) fills that view.
const jobHandlers = {};

function fmtSecs(s) {
  return s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
}

function showProgress(j) {
  const p = j.progress;
  $("#job-progress").value = p.fraction;
  $("#job-stage").textContent = j.state === "running" ? p.stage : j.state === "error" ? `error: ${j.error}` : j.state;
  $("#job-eta").textContent = j.state !== "running" ? `after ${fmtSecs(p.elapsed_s)}`
    : p.eta_s === null ? `${fmtSecs(p.elapsed_s)} so far` : `about ${fmtSecs(p.eta_s)} left`;
  $("#job").dataset.state = j.state;
}

function showJobResult(j) {
  const el = $("#job-result");
  el.replaceChildren();
  if (j.state !== "done" || !j.result) return;
  const ids = j.result.ids || [j.result.id];
  el.append("→ ", ...ids.flatMap((id, i) => [i ? " " : "", h("a", { href: `#editor?id=${id}` }, id)]));
}

async function runJob(id, kind, since = 0) {
  // Follow job `id` to its end; resolves with its final state.
  const bar = $("#job"), cancel = $("#job-cancel");
  const handler = jobHandlers[kind] || {};
  bar.hidden = false;
  bar.dataset.job = id;
  $("#job-kind").textContent = kind;
  $("#job-result").replaceChildren();
  cancel.hidden = false;
  cancel.disabled = false;
  cancel.onclick = async () => {
    cancel.disabled = true;
    try {
      await api(`/api/jobs/${id}/cancel`, { method: "POST" });
    } catch (e) {
      toast(e.message, true);
    }
  };
  handler.start && handler.start();
  let j;
  try {
    for (;;) {
      j = await api(`/api/jobs/${id}?since=${since}`);
      since = j.next;
      j.events.forEach((ev) => handler.event && handler.event(ev));
      showProgress(j);
      if (j.state !== "running") break;
      await new Promise((r) => setTimeout(r, 400));
    }
    cancel.hidden = true;
    showJobResult(j);
    if (j.state === "done") handler.done && handler.done(j.result);
    else handler.failed && handler.failed(j.state === "cancelled" ? "cancelled" : j.error);
  } catch (e) {
    handler.failed && handler.failed(e.message);
  } finally {
    handler.end && handler.end();
  }
  return j;
}

async function startJob(path, opts, kind) {
  // POST a job and follow it; a refusal goes to the kind's handler.
  let job;
  try {
    ({ job } = await api(path, opts));
  } catch (e) {
    const handler = jobHandlers[kind] || {};
    handler.failed && handler.failed(e.message);
    return null;
  }
  return runJob(job, kind);
}

async function reattachJob() {
  // After a reload: follow the running job, or show where the last one's result went.
  let jobs;
  try {
    ({ jobs } = await api("/api/jobs"));
  } catch {
    return;
  }
  const last = jobs[0];
  if (!last) return;
  if (last.state === "running") return runJob(last.id, last.kind);
  $("#job").hidden = false;
  $("#job-kind").textContent = `last job: ${last.kind}`;
  $("#job-cancel").hidden = true;
  showProgress(last);
  showJobResult(last);
  if (last.state === "done" && last.kind === "predict") showPrediction(last.result, null);
}

function logLine(el, line) {
  el.hidden = false;
  el.textContent += line + "\n";
  el.scrollTop = el.scrollHeight;
}

// ---------------------------------------------------------------------------- views

const views = { explore: initExplore, refs: loadRefs, predict: () => loadPredictDefaults(), editor: () => {}, rounds: loadRounds };
const started = new Set();

function show() {
  const name = (location.hash.slice(1).split("?")[0] || "explore");
  const view = views[name] ? name : "explore";
  document.querySelectorAll(".view").forEach((v) => (v.hidden = v.id !== `view-${view}`));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  if (view === "refs" || view === "rounds" || !started.has(view)) {
    started.add(view);
    views[view]();
  }
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  if (view === "editor" && q.get("id")) openInEditor(q.get("id"), q.get("target"));
  else if (view === "editor" && !state) {
    initEditor().then(() => state || openDefault()).catch((e) => editorMsg(e.message));
  }
}

async function checkRenderer() {
  const el = $("#renderer-status");
  try {
    const s = await api("/api/status");
    el.textContent = s.renderer_ok ? "renderer ok" : `renderer not answering at ${s.renderer}`;
    el.className = s.renderer_ok ? "muted" : "error";
  } catch (e) {
    el.textContent = e.message;
    el.className = "error";
  }
}

// ---------------------------------------------------------------------------- viewer
// Full-size pictures side by side (one, or target | result, or any picked ones);
// click zooms in at the point, shift-click or the wheel zooms out, drag pans.

function openViewer(pics) {
  const box = $("#viewer-pics");
  box.replaceChildren(...pics.map(({ src, label }) => {
    const img = h("img", { src, alt: label, draggable: "false" });
    const pane = h("div", { class: "pane" }, img);
    let zoom = 1;
    const setZoom = (z, ex = 0.5, ey = 0.5) => {
      zoom = Math.min(16, Math.max(1, z));
      img.style.width = `${zoom * 100}%`;
      pane.scrollLeft = ex * pane.scrollWidth - pane.clientWidth / 2;
      pane.scrollTop = ey * pane.scrollHeight - pane.clientHeight / 2;
      img.dataset.zoom = String(zoom);
    };
    let drag = null;
    pane.onpointerdown = (e) => (drag = { x: e.clientX, y: e.clientY, l: pane.scrollLeft, t: pane.scrollTop, moved: false });
    pane.onpointermove = (e) => {
      if (!drag) return;
      if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 4) drag.moved = true;
      pane.scrollLeft = drag.l - (e.clientX - drag.x);
      pane.scrollTop = drag.t - (e.clientY - drag.y);
    };
    pane.onpointerup = (e) => {
      const r = img.getBoundingClientRect();
      if (drag && !drag.moved) setZoom(e.shiftKey ? zoom / 2 : zoom * 2, (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
      drag = null;
    };
    pane.onwheel = (e) => {
      e.preventDefault();
      const r = img.getBoundingClientRect();
      setZoom(zoom * (e.deltaY < 0 ? 1.25 : 0.8), (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
    };
    return h("figure", {}, pane, h("figcaption", {}, label, " ", h("a", { href: src, download: "" }, "download")));
  }));
  $("#viewer").hidden = false;
}

function closeViewer() {
  $("#viewer").hidden = true;
  $("#viewer-pics").replaceChildren();
}

// ---------------------------------------------------------------------------- explore

const selected = new Set();
let gridOffset = 0, gridTotal = Infinity, gridLoading = false;

function initExplore() {
  const more = $("#grid-more");
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadGridPage();
  }, { rootMargin: "400px" }).observe(more);
  $("#explore-run").onclick = () => runExplore([]);
  $("#explore-more").onclick = () => runExplore([...selected]);
  $("#explore-compare").onclick = () => openViewer([...selected].map((id) => ({ src: imageOf(id), label: id })));
  $("#explore-filter").onchange = applyFilter;
  $("#grid").addEventListener("keydown", gridKeys);
}

const imageOf = (id) => `/files/output/images/${String(id.split(":")[1]).padStart(6, "0")}.png`;

async function markRefs(offset, limit) {
  // "already a ref" labels, asked once the first screen's pictures are in (the
  // server spends a few ms a result on them)
  if (document.readyState !== "complete") await new Promise((r) => addEventListener("load", r, { once: true }));
  try {
    const { refs } = await api(`/api/results/refs?offset=${offset}&limit=${limit}`);
    for (const id of refs) {
      const tile = document.querySelector(`#grid .tile[data-id="${id}"]`);
      if (!tile) continue;
      tile.dataset.ref = "1";
      tile.querySelector("button.keep").disabled = true;
      tile.querySelector(".src").textContent = sourceLabel(tile.dataset.source, true);
    }
    applyFilter();
  } catch (e) {
    toast(e.message, true);
  }
}

function applyFilter() {
  const f = $("#explore-filter").value;
  for (const t of document.querySelectorAll("#grid .tile")) {
    const ref = t.dataset.ref === "1";
    t.hidden = f === "ref" ? !ref : f === "not-ref" ? ref : f ? t.dataset.source !== f : false;
  }
}

function gridKeys(e) {
  // arrows move between tiles, space selects, k keeps, e edits, f opens full size
  const tile = e.target.closest(".tile");
  if (!tile) return;
  const tiles = [...document.querySelectorAll("#grid .tile:not([hidden])")];
  const i = tiles.indexOf(tile);
  const cols = Math.max(1, tiles.filter((t) => t.offsetTop === tiles[0].offsetTop).length);
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
  if (step) {
    e.preventDefault();
    const next = tiles[Math.min(tiles.length - 1, Math.max(0, i + step))];
    next && next.focus();
  } else if (e.key === " ") {
    e.preventDefault();
    tile.querySelector("img").click();
  } else if (e.key === "k") tile.querySelector("button.keep").click();
  else if (e.key === "e") tile.querySelector("button.edit").click();
  else if (e.key === "f") tile.querySelector("button.full").click();
}

function updateSelection() {
  $("#sel-count").textContent = selected.size;
  $("#explore-more").disabled = selected.size === 0;
  $("#explore-compare").disabled = selected.size < 2 || selected.size > 4;
}

function resetGrid() {
  gridOffset = 0;
  gridTotal = Infinity;
  $("#grid").replaceChildren();
  loadGridPage();
}

async function loadGridPage() {
  if (gridLoading || gridOffset >= gridTotal) return;
  gridLoading = true;
  try {
    // a small first page paints the first screen sooner; then bigger ones
    const page = await api(`/api/results?offset=${gridOffset}&limit=${gridOffset ? 120 : 48}`);
    gridTotal = page.total;
    gridOffset += page.items.length;
    $("#explore-count").textContent = `${page.total} results, newest first`;
    const frag = document.createDocumentFragment();
    // the first screen's pictures load at once; the rest when scrolled near
    page.items.forEach((it, i) => frag.append(resultTile(it, page.offset === 0 && i < 36)));
    $("#grid").append(frag);
    applyFilter();
    markRefs(page.offset, page.items.length);
    $("#grid-more").textContent = gridOffset < gridTotal ? "…" : page.total ? "" : "no results yet: run an explore";
  } catch (e) {
    toast(e.message, true);
  } finally {
    gridLoading = false;
  }
  // a short page may leave the sentinel on screen: keep going
  const r = $("#grid-more").getBoundingClientRect();
  if (gridOffset < gridTotal && r.top < innerHeight + 400) loadGridPage();
}

function resultTile(it, eager = false) {
  const tile = h("div", { class: "tile", "data-id": it.id, "data-source": it.source || "", "data-ref": "0", tabindex: 0 });
  const img = h("img", { src: it.thumb, loading: eager ? "eager" : "lazy", width: 192, height: 192, alt: it.id });
  img.onerror = () => tile.classList.add("broken");
  img.onclick = () => {
    selected.has(it.id) ? selected.delete(it.id) : selected.add(it.id);
    tile.classList.toggle("selected", selected.has(it.id));
    updateSelection();
  };
  const keep = h("button", { title: "keep as a reference", class: "keep" }, "★ keep");
  keep.onclick = async () => {
    try {
      const r = await api("/api/refs", { method: "POST", json: { id: it.id } });
      toast(`kept ${it.id} as ${r.file} line ${r.line}`);
      keep.disabled = true;
      tile.dataset.ref = "1";
      label.textContent = sourceLabel(it.source, true);
    } catch (e) {
      toast(e.message, true);
    }
  };
  const edit = h("button", { title: "open in the editor", class: "edit" }, "✎");
  edit.onclick = () => (location.hash = `editor?id=${it.id}`);
  const full = h("button", { title: "full size", class: "full" }, "⤢");
  full.onclick = () => openViewer([{ src: it.image, label: it.id }]);
  const down = h("a", { href: it.image, download: `${it.id.replace(":", "-")}.png`, title: "download the picture", class: "down" }, "⤓");
  const label = h("span", { class: "src muted" }, sourceLabel(it.source, false));
  tile.append(img, h("div", { class: "cap" }, h("span", {}, it.id), label), h("div", { class: "cap acts" }, keep, edit, full, down));
  return tile;
}

function sourceLabel(source, ref) {
  return [source, ref ? "already a ref" : ""].filter(Boolean).join(" · ");
}

jobHandlers.explore = {
  start() {
    $("#explore-log").textContent = "";
    $("#explore-run").disabled = $("#explore-more").disabled = true;
  },
  event: (ev) => logLine($("#explore-log"), ev.line),
  done(res) {
    toast(`explore kept ${res.ids.length} new results`);
    selected.clear();
    document.querySelectorAll("#grid .tile.selected").forEach((t) => t.classList.remove("selected"));
    resetGrid();
  },
  failed(msg) {
    logLine($("#explore-log"), `error: ${msg}`);
    toast(msg, true);
  },
  end() {
    $("#explore-run").disabled = false;
    updateSelection();
  },
};

function runExplore(from) {
  const json = { n: +$("#explore-n").value, candidates: +$("#explore-cands").value, clip: $("#explore-clip").checked, from };
  return startJob("/api/explore", { method: "POST", json }, "explore");
}

// ---------------------------------------------------------------------------- references

async function loadRefs() {
  const box = $("#refs");
  let data;
  try {
    data = await api("/api/refs");
  } catch (e) {
    box.replaceChildren(h("p", { class: "error" }, e.message));
    return;
  }
  $("#refs-file").textContent = `${data.refs.length} refs in ${data.file}`;
  box.replaceChildren(...data.refs.map(refTile));
}

function refTile(ref) {
  const tile = h("div", { class: "tile", "data-line": ref.line, "data-key": ref.key });
  const img = h("img", { src: `/api/refs/${ref.line}/thumb.png?key=${ref.key}`, loading: "lazy", width: 192, height: 192, alt: ref.describe });
  img.onclick = () => (location.hash = `editor?id=ref:${ref.line}`);
  img.onerror = () => (img.title = "the renderer did not draw this ref");
  const stars = h("span", { class: "stars", "data-stars": ref.stars || 0 });
  for (let s = 1; s <= 5; s++) {
    const b = h("button", { class: s <= (ref.stars || 0) ? "on" : "", title: `${s} star${s > 1 ? "s" : ""}`, "data-star": s }, "★");
    b.onclick = async () => {
      const value = ref.stars === s ? 0 : s; // clicking the current rating clears it
      try {
        await api(`/api/refs/${ref.key}/stars`, { method: "PUT", json: { stars: value } });
        toast(value ? `line ${ref.line}: ${value}★ (weight ×${2 ** (value - 3)})` : `line ${ref.line}: rating cleared`);
      } catch (e) {
        toast(e.message, true);
      }
      loadRefs();
    };
    stars.append(b);
  }
  const rm = h("button", { class: "remove", title: "remove this ref from the refs file" }, "remove");
  rm.onclick = async () => {
    try {
      await api(`/api/refs/${ref.line}?key=${ref.key}`, { method: "DELETE" });
      toast(`removed line ${ref.line}: ${ref.describe}`);
    } catch (e) {
      toast(e.message, true);
    }
    loadRefs();
  };
  const score = ref.score === null ? "unscored" : `${ref.score.toFixed(3)} (${ref.scorer})`;
  tile.append(
    img,
    h("div", { class: "cap" }, h("span", {}, `${ref.line}. ${ref.describe}`)),
    h("div", { class: "cap" }, h("span", { class: "muted" }, score), stars, h("span", { class: "muted", title: "breeding weight" }, `×${ref.weight}`), rm),
  );
  return tile;
}

// ---------------------------------------------------------------------------- predict

function initPredict() {
  const form = $("#predict-form"), drop = $("#drop"), file = $("#predict-file");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) {
      file.files = e.dataTransfer.files;
      form.requestSubmit();
    }
  });
  form.onsubmit = (e) => {
    e.preventDefault();
    const errEl = $("#predict-error");
    errEl.hidden = true;
    if (!file.files.length) {
      errEl.textContent = "choose or drop a picture first";
      errEl.hidden = false;
      return;
    }
    lastUpload = file.files[0];
    startJob("/api/predict", { method: "POST", body: new FormData(form) }, "predict");
  };
}

let lastUpload = null;

async function loadPredictDefaults() {
  // The form starts from `make predict`'s settings (predict.py's defaults).
  const note = $("#predict-defaults");
  try {
    const d = await api("/api/predict/defaults");
    for (const k of ["fevals", "size", "gd_steps", "final_size"]) {
      const el = $(`#predict-form input[name="${k}"]`);
      if (!el.value) el.value = d[k];
      el.dataset.default = d[k];
    }
    note.textContent = `make predict's settings: ${d.fevals} renders at ${d.size}², ${d.gd_steps} GD steps, ${d.max_seconds} s`;
  } catch (e) {
    note.textContent = `blank fields run make predict's settings (${e.message})`;
  }
}

jobHandlers.predict = {
  start() {
    $("#stages tbody").replaceChildren();
    $("#predict-log").textContent = "";
    $("#predict-result").hidden = true;
    $("#predict-error").hidden = true;
    $("#predict-run").disabled = true;
    $("#stages").hidden = false;
  },
  event(ev) {
    logLine($("#predict-log"), ev.line);
    if (ev.stage) {
      const s = ev.stage;
      $("#stages tbody").append(h("tr", {}, h("td", {}, s.name), h("td", {}, s.loss.toFixed(4)), h("td", {}, s.renders), h("td", {}, s.seconds.toFixed(1))));
    }
  },
  done: (res) => showPrediction(res, lastUpload),
  failed(msg) {
    $("#predict-error").textContent = msg;
    $("#predict-error").hidden = false;
  },
  end() {
    $("#predict-run").disabled = false;
  },
};

function showPrediction(res, upload) {
  const target = res.target || (upload ? URL.createObjectURL(upload) : res.sheet);
  $("#predict-target").src = target;
  $("#predict-image").src = res.image;
  const verdict = res.verdict ? `${res.verdict} (picture score ${res.picture.toFixed(3)}), ` : "";
  $("#predict-scores").textContent = `${res.id}: ${verdict}NCC ${res.ncc.toFixed(3)}, line F1 ${res.line_f1.toFixed(3)} (${res.renders} renders)`;
  $("#predict-params").href = res.params;
  $("#predict-params").setAttribute("download", `${res.id.replace(":", "-")}.json`);
  $("#predict-download").href = res.image;
  $("#predict-download").setAttribute("download", `${res.id.replace(":", "-")}.png`);
  $("#predict-sheet").href = res.sheet;
  $("#predict-compare").onclick = () => openViewer([{ src: target, label: "target" }, { src: res.image, label: res.id }]);
  $("#predict-keep").disabled = false;
  $("#predict-keep").onclick = async () => {
    try {
      const r = await api("/api/refs", { method: "POST", json: { id: res.id } });
      toast(`kept ${res.id} as ${r.file} line ${r.line}`);
      $("#predict-keep").disabled = true;
    } catch (e) {
      toast(e.message, true);
    }
  };
  const t = res.target ? `&target=${encodeURIComponent(res.target)}` : "";
  $("#predict-edit").onclick = () => (location.hash = `editor?id=${res.id}${t}`);
  $("#predict-result").hidden = false;
}

// ---------------------------------------------------------------------------- editor

let schema = null, state = null, rendering = false, dirty = false;
let openedId = "", copied = "";  // the id the sliders hold; the spelling in the copy box
const history = { past: [], future: [], saved: "", timer: 0 };
const editorTimes = [];

let editorReady = null;
function initEditor() {
  return (editorReady ||= setupEditor());
}

async function setupEditor() {
  $("#editor-open").onclick = () => openInEditor($("#editor-id").value.trim());
  $("#editor-id").onkeydown = (e) => e.key === "Enter" && openInEditor($("#editor-id").value.trim());
  $("#editor-save").onclick = saveEditorRef;
  $("#editor-copy-flat").onclick = () => copyParams("flat");
  $("#editor-copy-prefixed").onclick = () => copyParams("prefixed");
  $("#editor-undo").onclick = undo;
  $("#editor-redo").onclick = redo;
  addEventListener("keydown", (e) => {
    const typing = e.target.matches && e.target.matches("input[type=text], input:not([type]), textarea");
    if (location.hash.startsWith("#editor") && (e.ctrlKey || e.metaKey) && !typing) {
      if (e.key.toLowerCase() === "z") {
        e.preventDefault();
        e.shiftKey ? redo() : undo();
      } else if (e.key.toLowerCase() === "y") {
        e.preventDefault();
        redo();
      }
    }
  });
  schema = await api("/api/schema");
}

async function openDefault() {
  // The schema's defaults with one plain layer, completed by the server.
  const p = {};
  for (const s of schema.params) p[s.key] = structuredClone(s.default);
  p.layers = [{ rotation: 0, position: { x: 0, y: 0 }, scale: { x: 1, y: 1 } }];
  loadState((await api("/api/convert", { method: "POST", json: p })).flat, "");
}

function loadState(params, id) {
  // New params in the editor: the history starts again from them.
  state = params;
  openedId = id;
  $("#editor-id").value = id;
  history.past = [];
  history.future = [];
  history.saved = JSON.stringify(state);
  buildControls();
  scheduleRender();
}

window.editorIdle = () => !rendering && !dirty;

async function openInEditor(id, target = null) {
  if (!id) return;
  try {
    await initEditor();
    const params = await api(`/api/params?id=${encodeURIComponent(id)}`);
    loadState(params, id);
    $("#editor-target-box").hidden = !target;
    if (target) $("#editor-target").src = target;
  } catch (e) {
    // the box keeps naming what the sliders hold, so Save saves what is shown
    $("#editor-id").value = openedId;
    editorMsg(`could not open ${id}: ${e.message}` + (state ? ` (still editing ${openedId || "the picture shown"})` : ""));
  }
}

function checkpoint() {
  // One undo step per pause in editing (400 ms), not per slider pixel.
  clearTimeout(history.timer);
  const now = JSON.stringify(state);
  if (now === history.saved) return;
  history.past.push(history.saved);
  history.future = [];
  history.saved = now;
  updateUndo();
}

function updateUndo() {
  $("#editor-undo").disabled = !history.past.length;
  $("#editor-redo").disabled = !history.future.length;
}

function undo() {
  checkpoint();
  if (!history.past.length) return;
  history.future.push(history.saved);
  history.saved = history.past.pop();
  state = JSON.parse(history.saved);
  buildControls();
  render(false);
}

function redo() {
  if (!history.future.length) return;
  history.past.push(history.saved);
  history.saved = history.future.pop();
  state = JSON.parse(history.saved);
  buildControls();
  render(false);
}

function editorMsg(msg) {
  const el = $("#editor-msg");
  el.textContent = msg || "";
  el.hidden = !msg;
}

function group(prefixed) {
  return prefixed.split(".")[0];
}

const closedGroups = new Set();  // groups the user folded stay folded across rebuilds

function group_box(name, id = null) {
  const key = id || name;
  const box = h("details", { class: "group", id, open: !closedGroups.has(key) }, h("summary", {}, name));
  box.ontoggle = () => (box.open ? closedGroups.delete(key) : closedGroups.add(key));
  return box;
}

function buildControls() {
  updateUndo();
  const form = $("#controls");
  const sets = {};
  for (const p of schema.params) {
    const g = group(p.prefixed);
    sets[g] ||= group_box(g);
    sets[g].append(control(p, state, p.key));
  }
  const layers = group_box(`Layers (${state.layers.length} of ${schema.layers.max})`, "layers");
  state.layers.forEach((layer, i) => {
    const box = h("fieldset", { class: "layer" }, h("legend", {}, `g${i}`));
    for (const p of schema.layers.params) {
      const required = schema.layers.required.includes(p.key);
      if (required || p.key in layer) {
        box.append(control(p, layer, p.key, `g${i}-${p.key}`));
      }
      if (!required) {
        const on = h("input", { type: "checkbox", checked: p.key in layer, "data-opt": `g${i}-${p.key}` });
        on.onchange = () => {
          if (on.checked) layer[p.key] = structuredClone(p.key in state ? state[p.key] : p.default);
          else delete layer[p.key];
          buildControls();
          render();
        };
        // the checkbox sits before the name: on = this layer overrides the base
        if (!(p.key in layer)) box.append(h("label", { class: "ctl" }, h("span", {}, on, ` ${p.key}`), h("span"), h("span")));
        else box.lastChild.firstChild.prepend(on, " ");
      }
    }
    if (state.layers.length > 1) {
      const rm = h("button", { type: "button" }, "remove layer");
      rm.onclick = () => { state.layers.splice(i, 1); buildControls(); render(); };
      box.append(rm);
    }
    layers.append(box);
  });
  if (state.layers.length < schema.layers.max) {
    const add = h("button", { type: "button" }, "add layer");
    add.onclick = () => {
      state.layers.push({ rotation: 0, position: { x: 0, y: 0 }, scale: { x: 1, y: 1 } });
      buildControls();
      render();
    };
    layers.append(add);
  }
  form.replaceChildren(...Object.values(sets), layers);
}

function control(p, obj, key, name = key) {
  // One labelled control for param p (schema entry) editing obj[key].
  const row = h("label", { class: "ctl" }, h("span", { title: `${p.prefixed} (double-click resets to ${JSON.stringify(p.default)})`, class: "name" }, key));
  const changed = () => render();
  row.firstChild.ondblclick = (e) => {
    e.preventDefault();
    obj[key] = structuredClone(p.default);
    buildControls();
    render();
  };
  if (p.type === "bool") {
    const el = h("input", { type: "checkbox", name, checked: !!obj[key] });
    el.onchange = () => { obj[key] = el.checked; changed(); };
    row.append(el, h("span"));
  } else if (p.type === "cat") {
    const el = h("select", { name }, ...p.options.map((o) => h("option", { value: String(o), selected: String(o) === String(obj[key]) }, String(o))));
    el.onchange = () => { obj[key] = typeof p.default === "number" ? +el.value : el.value; changed(); };
    row.append(el, h("span"));
  } else if (p.type === "color") {
    const el = h("input", { type: "color", name, value: String(obj[key]).slice(0, 7).toLowerCase() });
    el.oninput = () => { obj[key] = el.value.toUpperCase(); changed(); };
    row.append(el, h("span"));
  } else if (p.type === "vec2") {
    const wrap = h("span", { class: "vec" });
    const out = h("output");
    const show = () => (out.textContent = `${(+obj[key].x).toFixed(2)}, ${(+obj[key].y).toFixed(2)}`);
    for (const c of ["x", "y"]) {
      const sub = { get v() { return obj[key][c]; }, set v(x) { obj[key] = { ...obj[key], [c]: x }; show(); } };
      wrap.append(h("span", { class: "muted" }, c), slider(p, sub, `${name}.${c}`, changed));
    }
    show();
    row.append(wrap, out);
  } else {
    const num = h("input", { type: "number", class: "num", "data-for": name, step: p.type === "int" ? 1 : "any", "aria-label": `${key} value` });
    const s = slider(p, { get v() { return obj[key]; }, set v(x) { obj[key] = x; } }, name, changed, num);
    num.onchange = () => {
      const v = p.type === "int" ? Math.round(+num.value) : +num.value;
      if (num.value === "" || !Number.isFinite(v)) return (num.value = String(obj[key]));
      obj[key] = v;
      s.min = Math.min(+s.min, v);
      s.max = Math.max(+s.max, v);
      s.value = v;
      changed();
    };
    row.append(s, num);
  }
  return row;
}

function slider(p, ref, name, changed, out = null) {
  const [lo, hi] = p.range;
  const v = ref.v;
  const el = h("input", {
    type: "range", name,
    min: Math.min(lo, v), max: Math.max(hi, v),
    step: p.type === "int" ? 1 : (hi - lo) / 1000,
    value: v,
  });
  const fmt = (x) => (p.type === "int" ? String(x) : String(+(+x).toFixed(4)));
  const put = (x) => out && (out.value = fmt(x));
  put(v);
  el.oninput = () => {
    ref.v = p.type === "int" ? Math.round(+el.value) : +el.value;
    put(ref.v);
    changed();
  };
  return el;
}

function render(step = true) {
  // An edit: a new picture, a fresh copy box, and (after a pause) an undo step.
  if (step) {
    clearTimeout(history.timer);
    history.timer = setTimeout(checkpoint, 400);
  } else updateUndo();
  if (copied) refreshCopy();
  scheduleRender();
}

let copyTimer = 0;
function refreshCopy() {
  // The copy box always shows the params as they are now.
  clearTimeout(copyTimer);
  $("#editor-json").classList.add("stale");
  copyTimer = setTimeout(async () => {
    try {
      const both = await api("/api/convert", { method: "POST", json: state });
      $("#editor-json").value = JSON.stringify(both[copied], null, 1);
      $("#editor-json").classList.remove("stale");
    } catch (e) {
      $("#editor-json").value = `the params do not convert: ${e.message}`;
    }
  }, 150);
}

window.editorCopyFresh = () => !$("#editor-json").classList.contains("stale");

function scheduleRender() {
  // Latest wins: one render in flight; a change meanwhile sends one more after it.
  dirty = true;
  if (!rendering) renderNow();
}

async function renderNow() {
  dirty = false;
  rendering = true;
  const img = $("#editor-image");
  img.classList.add("stale");
  const t0 = performance.now();
  try {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 15000);
    let r;
    try {
      r = await fetch("/api/render?size=256", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(state), signal: ctl.signal,
      });
    } finally {
      clearTimeout(timer);
    }
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error || `HTTP ${r.status}`);
    }
    const url = URL.createObjectURL(await r.blob());
    const old = img.src;
    img.src = url;
    await img.decode();
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    const ms = performance.now() - t0;
    editorTimes.push(ms);
    img.dataset.renders = String(+(img.dataset.renders || 0) + 1);
    $("#editor-ms").textContent = `${ms.toFixed(0)} ms`;
    editorMsg("");
  } catch (e) {
    editorMsg(e.name === "AbortError" ? "the renderer is slow: no picture within 15 s (still trying on the next change)" : `no picture: ${e.message}`);
  } finally {
    img.classList.remove("stale");
    rendering = false;
    if (dirty) renderNow();
  }
}

async function copyParams(spelling) {
  try {
    const both = await api("/api/convert", { method: "POST", json: state });
    const text = JSON.stringify(both[spelling], null, 1);
    const ta = $("#editor-json");
    ta.value = text;
    ta.hidden = false;
    ta.classList.remove("stale");
    copied = spelling;
    try {
      await navigator.clipboard.writeText(text);
      toast(`params copied (${spelling})`);
    } catch {
      ta.select();
      toast(`params (${spelling}) are in the box below: copy them from there`);
    }
  } catch (e) {
    toast(e.message, true);
  }
}

async function saveEditorRef() {
  try {
    const r = await api("/api/refs", { method: "POST", json: { params: state } });
    toast(`saved as ${r.file} line ${r.line}`);
  } catch (e) {
    toast(e.message, true);
  }
}

// ---------------------------------------------------------------------------- rounds

async function loadRounds() {
  const box = $("#rounds");
  try {
    const { rounds } = await api("/api/rounds");
    if (!rounds.length) return box.replaceChildren(h("p", { class: "muted" }, "no round reports yet (make iterate)"));
    const parts = [];
    for (const r of rounds) parts.push(h("article", { class: "report" }, ...markdown(await api(r.report), r.base)));
    box.replaceChildren(...parts);
  } catch (e) {
    box.replaceChildren(h("p", { class: "error" }, e.message));
  }
}

function markdown(text, base) {
  // The small subset iterate.py writes: headings, paragraphs, pictures, one table.
  const out = [];
  let table = null;
  for (const line of text.split("\n")) {
    const img = line.match(/^!\[(.*)\]\((.+)\)$/);
    if (line.startsWith("|")) {
      const cells = line.split("|").slice(1, -1).map((c) => c.trim());
      if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
      if (!table) out.push((table = h("table")));
      table.append(h("tr", {}, ...cells.map((c) => h("td", {}, c))));
      continue;
    }
    table = null;
    if (line.startsWith("# ")) out.push(h("h2", {}, line.slice(2)));
    else if (line.startsWith("## ")) out.push(h("h3", {}, line.slice(3)));
    else if (img) out.push(h("img", { src: base + encodeURIComponent(img[2]), alt: img[1], loading: "lazy" }));
    else if (line.trim()) out.push(h("p", {}, line.replaceAll("`", "")));
  }
  return out;
}

// ---------------------------------------------------------------------------- start

addEventListener("hashchange", show);
addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !$("#viewer").hidden) closeViewer();
});
addEventListener("DOMContentLoaded", () => {
  $("#viewer-close").onclick = closeViewer;
  initPredict();
  show();
  reattachJob();
  checkRenderer();
  setInterval(checkRenderer, 15000);
});
