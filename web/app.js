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

function pollJob(id, onEvent) {
  // Resolves with the job's result, rejects with its error; onEvent gets each event.
  return new Promise((resolve, reject) => {
    let since = 0;
    const tick = async () => {
      let j;
      try {
        j = await api(`/api/jobs/${id}?since=${since}`);
      } catch (e) {
        return reject(e);
      }
      since = j.next;
      j.events.forEach(onEvent);
      if (j.state === "done") return resolve(j.result);
      if (j.state === "error") return reject(new Error(j.error));
      setTimeout(tick, 300);
    };
    tick();
  });
}

function logLine(el, line) {
  el.hidden = false;
  el.textContent += line + "\n";
  el.scrollTop = el.scrollHeight;
}

// ---------------------------------------------------------------------------- views

const views = { explore: initExplore, refs: loadRefs, predict: () => {}, editor: () => {}, rounds: loadRounds };
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
  if (view === "editor" && q.get("id")) openInEditor(q.get("id"));
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
  const tile = h("div", { class: "tile", "data-id": it.id });
  const img = h("img", { src: it.thumb, loading: eager ? "eager" : "lazy", width: 192, height: 192, alt: it.id });
  img.onclick = () => {
    selected.has(it.id) ? selected.delete(it.id) : selected.add(it.id);
    tile.classList.toggle("selected", selected.has(it.id));
    $("#sel-count").textContent = selected.size;
    $("#explore-more").disabled = selected.size === 0;
  };
  const keep = h("button", { title: "keep as a reference", class: "keep" }, "★ keep");
  keep.onclick = async () => {
    try {
      const r = await api("/api/refs", { method: "POST", json: { id: it.id } });
      toast(`kept ${it.id} as ${r.file} line ${r.line}`);
      keep.disabled = true;
    } catch (e) {
      toast(e.message, true);
    }
  };
  const edit = h("button", { title: "open in the editor", class: "edit" }, "✎");
  edit.onclick = () => (location.hash = `editor?id=${it.id}`);
  tile.append(img, h("div", { class: "cap" }, h("span", {}, it.id), h("span", {}, keep, " ", edit)));
  return tile;
}

async function runExplore(from) {
  const log = $("#explore-log");
  log.textContent = "";
  const buttons = [$("#explore-run"), $("#explore-more")];
  buttons.forEach((b) => (b.disabled = true));
  try {
    const { job } = await api("/api/explore", {
      method: "POST",
      json: { n: +$("#explore-n").value, candidates: +$("#explore-cands").value, clip: $("#explore-clip").checked, from },
    });
    const res = await pollJob(job, (ev) => logLine(log, ev.line));
    toast(`explore kept ${res.ids.length} new results`);
    selected.clear();
    $("#sel-count").textContent = 0;
    resetGrid();
  } catch (e) {
    logLine(log, `error: ${e.message}`);
    toast(e.message, true);
  } finally {
    $("#explore-run").disabled = false;
    $("#explore-more").disabled = selected.size === 0;
  }
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
  form.onsubmit = async (e) => {
    e.preventDefault();
    const errEl = $("#predict-error");
    errEl.hidden = true;
    if (!file.files.length) {
      errEl.textContent = "choose or drop a picture first";
      errEl.hidden = false;
      return;
    }
    const body = new FormData(form);
    const tbody = $("#stages tbody"), log = $("#predict-log");
    tbody.replaceChildren();
    log.textContent = "";
    $("#predict-result").hidden = true;
    $("#predict-run").disabled = true;
    try {
      const { job } = await api("/api/predict", { method: "POST", body });
      $("#stages").hidden = false;
      const res = await pollJob(job, (ev) => {
        logLine(log, ev.line);
        if (ev.stage) {
          const s = ev.stage;
          tbody.append(h("tr", {}, h("td", {}, s.name), h("td", {}, s.loss.toFixed(4)), h("td", {}, s.renders), h("td", {}, s.seconds.toFixed(1))));
        }
      });
      showPrediction(res, file.files[0]);
    } catch (e) {
      errEl.textContent = e.message;
      errEl.hidden = false;
    } finally {
      $("#predict-run").disabled = false;
    }
  };
}

function showPrediction(res, upload) {
  $("#predict-target").src = URL.createObjectURL(upload);
  $("#predict-image").src = res.image;
  $("#predict-scores").textContent = `${res.id}: NCC ${res.ncc.toFixed(3)}, line F1 ${res.line_f1.toFixed(3)} (${res.renders} renders)`;
  $("#predict-params").href = res.params;
  $("#predict-params").setAttribute("download", `${res.id.replace(":", "-")}.json`);
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
  $("#predict-edit").onclick = () => (location.hash = `editor?id=${res.id}`);
  $("#predict-result").hidden = false;
}

// ---------------------------------------------------------------------------- editor

let schema = null, state = null, rendering = false, dirty = false;
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
  schema = await api("/api/schema");
}

async function openDefault() {
  // The schema's defaults with one plain layer, completed by the server.
  const p = {};
  for (const s of schema.params) p[s.key] = structuredClone(s.default);
  p.layers = [{ rotation: 0, position: { x: 0, y: 0 }, scale: { x: 1, y: 1 } }];
  state = (await api("/api/convert", { method: "POST", json: p })).flat;
  buildControls();
  scheduleRender();
}

window.editorIdle = () => !rendering && !dirty;

async function openInEditor(id) {
  if (!id) return;
  try {
    await initEditor();
    state = await api(`/api/params?id=${encodeURIComponent(id)}`);
    $("#editor-id").value = id;
    buildControls();
    scheduleRender();
  } catch (e) {
    editorMsg(e.message);
  }
}

function editorMsg(msg) {
  const el = $("#editor-msg");
  el.textContent = msg || "";
  el.hidden = !msg;
}

function group(prefixed) {
  return prefixed.split(".")[0];
}

function buildControls() {
  const form = $("#controls");
  const sets = {};
  for (const p of schema.params) {
    const g = group(p.prefixed);
    sets[g] ||= h("fieldset", {}, h("legend", {}, g));
    sets[g].append(control(p, state, p.key));
  }
  const layers = h("fieldset", { id: "layers" }, h("legend", {}, `Layers (${state.layers.length} of ${schema.layers.max})`));
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
          scheduleRender();
        };
        // the checkbox sits before the name: on = this layer overrides the base
        if (!(p.key in layer)) box.append(h("label", { class: "ctl" }, h("span", {}, on, ` ${p.key}`), h("span"), h("span")));
        else box.lastChild.firstChild.prepend(on, " ");
      }
    }
    if (state.layers.length > 1) {
      const rm = h("button", { type: "button" }, "remove layer");
      rm.onclick = () => { state.layers.splice(i, 1); buildControls(); scheduleRender(); };
      box.append(rm);
    }
    layers.append(box);
  });
  if (state.layers.length < schema.layers.max) {
    const add = h("button", { type: "button" }, "add layer");
    add.onclick = () => {
      state.layers.push({ rotation: 0, position: { x: 0, y: 0 }, scale: { x: 1, y: 1 } });
      buildControls();
      scheduleRender();
    };
    layers.append(add);
  }
  form.replaceChildren(...Object.values(sets), layers);
}

function control(p, obj, key, name = key) {
  // One labelled control for param p (schema entry) editing obj[key].
  const row = h("label", { class: "ctl" }, h("span", { title: p.prefixed }, key));
  const changed = () => scheduleRender();
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
    const out = h("output");
    const s = slider(p, { get v() { return obj[key]; }, set v(x) { obj[key] = x; } }, name, changed, out);
    row.append(s, out);
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
  const fmt = (x) => (p.type === "int" ? String(x) : (+x).toFixed(3));
  if (out) out.textContent = fmt(v);
  el.oninput = () => {
    ref.v = p.type === "int" ? Math.round(+el.value) : +el.value;
    if (out) out.textContent = fmt(ref.v);
    changed();
  };
  return el;
}

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
addEventListener("DOMContentLoaded", () => {
  initPredict();
  show();
  checkRenderer();
  setInterval(checkRenderer, 15000);
});
