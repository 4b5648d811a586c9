// The archive map (Explore view): explore's archive as a grid of cells over two axes, the third as tabs; cells coloured by score, a thumbnail on hover, a click opens the elite (full size, editor, more like this, keep).
"use strict";

let archive = null, archiveSlice = 0, archiveElite = null;

function initArchive() {
  $("#explore-run").onclick = () => growArchive([]);
  $("#archive-more").onclick = () => archiveElite && growArchive([archiveElite.id]);
  $("#archive-full").onclick = () =>
    archiveElite && openViewer([{ src: `/api/archive/elite/${archiveElite.id}/image.png`, label: `elite ${archiveElite.id}` }]);
  $("#archive-edit").onclick = () => archiveElite && (location.hash = `editor?id=elite:${archiveElite.id}`);
  $("#archive-keep").onclick = keepElite;
  loadArchive();
}

async function loadArchive() {
  try {
    archive = await api("/api/archive");
  } catch (e) {
    $("#archive-info").textContent = e.message;
    return;
  }
  if (archive.empty) {
    $("#archive-info").textContent = archive.message;
    $("#archive-map").replaceChildren();
    $("#archive-tabs").replaceChildren();
    return;
  }
  const a = archive;
  $("#archive-info").textContent =
    `${a.cells_filled}/${a.cells_total} cells (${(100 * a.coverage).toFixed(1)}%), QD-score ${a.qd_score.toFixed(2)}, ` +
    `best ${a.best.toFixed(3)}, ${a.renders} renders`;
  archiveSlice = Math.min(archiveSlice, a.axes[2].bins - 1);
  drawArchive();
}

function scoreColour(s, lo, hi) {
  // dark blue (the archive's lowest elite) → amber (its best)
  const t = hi > lo ? Math.max(0, Math.min(1, (s - lo) / (hi - lo))) : 1;
  const mix = (lo, hi) => Math.round(lo + (hi - lo) * t);
  return `rgb(${mix(30, 233)},${mix(50, 161)},${mix(110, 59)})`;
}

function drawArchive() {
  // rows: axis 0 (top = high), columns: axis 1, tabs: axis 2
  const [ay, ax, az] = archive.axes;
  const byCell = new Map(archive.cells.map((c) => [c.cell.join(","), c]));
  const lo = Math.min(...archive.cells.map((c) => c.score));
  $("#archive-tabs").replaceChildren(
    h("span", { class: "muted" }, `${az.label}:`),
    ...az.ticks.map((t, k) => {
      const n = archive.cells.filter((c) => c.cell[2] === k).length;
      const b = h("button", { type: "button", class: k === archiveSlice ? "on" : "" }, `${t} (${n})`);
      b.onclick = () => {
        archiveSlice = k;
        drawArchive();
      };
      return b;
    }),
  );
  const map = $("#archive-map");
  map.style.gridTemplateColumns = `auto repeat(${ax.bins}, 1fr)`;
  const kids = [];
  for (let i = ay.bins - 1; i >= 0; i--) {
    kids.push(h("span", { class: "tick" }, ay.ticks[i]));
    for (let j = 0; j < ax.bins; j++) {
      const c = byCell.get(`${i},${j},${archiveSlice}`);
      if (!c) {
        kids.push(h("div", { class: "cell empty" }));
        continue;
      }
      const cell = h("div", {
        class: "cell" + (archiveElite && archiveElite.id === c.id ? " picked" : ""),
        "data-id": c.id,
        tabindex: 0,
        title: `elite ${c.id} · score ${c.score.toFixed(3)} · ${c.geometry}`,
        style: `background:${scoreColour(c.score, lo, archive.best)}`,
      });
      cell.onmouseenter = () => hoverElite(c, cell);
      cell.onmouseleave = () => ($("#archive-hover").hidden = true);
      cell.onclick = () => openElite(c);
      cell.onkeydown = (e) => e.key === "Enter" && openElite(c);
      kids.push(cell);
    }
  }
  kids.push(h("span", {}), ...ax.ticks.map((t) => h("span", { class: "tick" }, t)));
  map.replaceChildren(...kids);
  $("#archive-axes").textContent =
    `rows: ${ay.label} (high at the top) · columns: ${ax.label} · colour: score ${lo.toFixed(2)} (blue) → ${archive.best.toFixed(2)} (amber)`;
}

function hoverElite(c, cell) {
  const box = $("#archive-hover");
  if (!c.thumb) return;
  $("#archive-hover img").src = c.thumb;
  $("#archive-hover span").textContent = `elite ${c.id} · ${c.score.toFixed(3)}`;
  const r = cell.getBoundingClientRect();
  box.style.left = `${r.right + scrollX + 6}px`;
  box.style.top = `${r.top + scrollY}px`;
  box.hidden = false;
}

function openElite(c) {
  archiveElite = c;
  const panel = $("#archive-elite");
  panel.hidden = false;
  $("#archive-elite-img").src = `/api/archive/elite/${c.id}/image.png?size=256`; // the thumb is small
  $("#archive-elite-cap").textContent =
    `elite ${c.id} · score ${c.score.toFixed(3)} · ${c.geometry} · cell ${c.cell.join(", ")}`;
  document.querySelectorAll("#archive-map .cell.picked").forEach((x) => x.classList.remove("picked"));
  const cell = document.querySelector(`#archive-map .cell[data-id="${c.id}"]`);
  cell && cell.classList.add("picked");
}

async function keepElite() {
  if (!archiveElite) return;
  try {
    const r = await api("/api/archive/keep", { method: "POST", json: { id: archiveElite.id } });
    toast(`kept elite ${archiveElite.id} as ${r.file} line ${r.line} (${r.id})`);
    resetGrid();
  } catch (e) {
    toast(e.message, true);
  }
}

jobHandlers.archive = {
  start() {
    $("#explore-log").textContent = "";
    $("#explore-run").disabled = $("#archive-more").disabled = true;
  },
  event(ev) {
    logLine($("#explore-log"), ev.line);
    if (/^(renders|seeded) /.test(ev.line)) loadArchive(); // the archive is saved after each step
  },
  done(res) {
    toast(`the archive grew: ${res.new.length} new elites, ${res.cells_filled} cells; ${res.ids.length} new results`);
    loadArchive();
    resetGrid();
  },
  failed(msg) {
    logLine($("#explore-log"), `error: ${msg}`);
    toast(msg, true);
  },
  end() {
    $("#explore-run").disabled = $("#archive-more").disabled = false;
  },
};

function growArchive(like) {
  const json = { renders: +$("#archive-renders").value, n: +$("#explore-n").value, like };
  return startJob("/api/archive/grow", { method: "POST", json }, "archive");
}
