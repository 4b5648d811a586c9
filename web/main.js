// The page: views by URL hash, Rounds, start-up (loaded last: it names the other scripts' functions).
"use strict";

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
