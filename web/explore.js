// The Explore view: the results grid, selection, labels, filter, keys, explore jobs.
"use strict";

// ---------------------------------------------------------------------------- explore

const selected = new Set();
let gridOffset = 0, gridTotal = Infinity, gridLoading = false;

function initExplore() {
  const more = $("#grid-more");
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadGridPage();
  }, { rootMargin: "400px" }).observe(more);
  initArchive(); // "Explore from the refs" grows the archive (archive.js)
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
