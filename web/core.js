// The gallery page's shared pieces: DOM helpers, the API call, toasts, the job bar, the full-size viewer (plain JS, no build step; the scripts share one global scope, loaded in order by index.html).
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
function toast(msg, bad = false, action = null) {
  // A message for a few seconds; `action` {label, run} adds a button (e.g. Undo).
  const t = $("#toast");
  t.replaceChildren(msg);
  if (action) {
    const b = h("button", { type: "button", class: "toast-action" }, action.label);
    b.onclick = () => {
      t.hidden = true;
      action.run();
    };
    t.append(" ", b);
  }
  t.className = bad ? "bad" : "";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), bad || action ? 8000 : 3000);
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
