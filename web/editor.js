// The Editor view: controls from the schema, live renders, undo/redo, copy, save.
"use strict";

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
    // elite:N is an elite of explore's archive; the rest are refs, results, samples
    const elite = id.match(/^elite:(\d+)$/);
    const params = await api(elite ? `/api/archive/elite/${elite[1]}` : `/api/params?id=${encodeURIComponent(id)}`);
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
