// The References view: every ref with its score, stars and remove.
"use strict";

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
      toast(`removed line ${ref.line}: ${ref.describe}`, false, { label: "Undo", run: () => restoreRef(ref) });
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

async function restoreRef(ref) {
  // Undo a remove: the ref goes back to its line (its stars were kept).
  try {
    const r = await api("/api/refs/restore", { method: "POST", json: { params: ref.params, line: ref.line } });
    toast(`restored line ${r.line}: ${ref.describe}`);
  } catch (e) {
    toast(e.message, true);
  }
  loadRefs();
}
