// The Predict view: upload, make predict's settings, the stages, target | result.
"use strict";

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
