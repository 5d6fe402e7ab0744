// senti_lit's page: plain JS against the server's own API (GET /info, POST /predict, POST /read); nothing external.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;            // GET /info's "model"
let fileRows = [];          // the uploaded file's rows, and their answers, for the downloads
let fileAnswers = [];
let fileName = "predictions";

function apiKey() { return sessionStorage.getItem("senti_lit_key") || ""; }

async function call(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) {
    $("key-box").hidden = false;
    showError("key-status", apiKey() ? "This key was refused (401): check it and try again."
                                     : "This server needs an API key.");
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

const pct = (p) => `${(100 * p).toFixed(1)}%`;

async function loadInfo() {
  try {
    const data = await call("/info");
    info = data.model;
  } catch (e) {
    $("model-name").textContent = "model information unavailable";
    showError("error", e.message);
    return;
  }
  $("key-box").hidden = true;
  showError("key-status", "");
  showError("error", "");  // an earlier 401 (or other) message no longer applies
  $("model-name").textContent = info.name;
  const meta = $("model-meta");
  meta.replaceChildren();
  meta.append(el("span", { text: `${info.task} · ${info.backbone}${info.method ? " · " + info.method : ""}` }));
  for (const label of info.labels) meta.append(el("span", { class: "chip", text: label }));
  const names = { "test/acc": "test accuracy", "test/macro_f1": "test macro-F1", "test/micro_f1": "test micro-F1",
                  "test/ece": "test ECE" };
  for (const [key, name] of Object.entries(names)) {
    if (info.metrics && typeof info.metrics[key] === "number") {
      meta.append(el("span", { class: "metric" }, `${name} `, el("b", { text: info.metrics[key].toFixed(3) })));
    }
  }
  meta.title = `max ${info.max_length} tokens per text; decision: ${info.decision.rule}`;
}

function showError(id, message) {
  const box = $(id);
  box.textContent = message;
  box.hidden = !message;
}

function predicted(answer) {
  if ("labels" in answer) return answer.labels.length ? answer.labels.join(", ") : "no label";
  return answer.label;
}

function isOn(answer, name) {
  return "labels" in answer ? answer.labels.includes(name) : answer.label === name;
}

function bars(answer) {
  const box = el("div", { class: "bars" });
  const ranked = Object.entries(answer.probs).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of ranked) {
    box.append(el("div", { class: `bar-row${isOn(answer, name) ? " on" : ""}`, "data-label": name,
                           "data-prob": String(p) },
      el("span", { class: "name", text: name }),
      el("div", { class: "track" }, el("div", { class: "fill", style: `width:${(100 * p).toFixed(2)}%` })),
      el("span", { class: "pct", text: pct(p) })));
  }
  return box;
}

function truncatedNote() {
  return el("div", { class: "note", text: `Longer than the model's ${info ? info.max_length : "maximum"} tokens: ` +
    "only its beginning was read (truncated as in training)." });
}

function renderOne(answer) {
  const confidence = "confidence" in answer ? `confidence ${pct(answer.confidence)}` : "multi-label";
  return el("div", { class: "answer" },
    el("div", { class: "verdict" }, el("span", { class: "label", id: "label", text: predicted(answer) }),
       el("span", { class: "confidence", text: confidence })),
    bars(answer), answer.truncated ? truncatedNote() : null);
}

function renderTable(rows, answers) {
  const head = el("tr", {}, el("th", { text: rows[0].line ? "line" : "#" }), el("th", { text: "text" }),
                  el("th", { text: "label" }), el("th", { text: "probability" }));
  const body = el("tbody");
  rows.forEach((row, i) => {
    const a = answers[i];
    const p = "confidence" in a ? a.confidence : Math.max(...Object.values(a.probs));
    body.append(el("tr", { "data-label": predicted(a) },
      el("td", { class: "num", text: String(row.line || i + 1) }),
      el("td", { class: "text" }, row.text, a.truncated ? el("span", { class: "tag", text: "truncated" }) : null),
      el("td", { class: "pred", text: predicted(a) }),
      el("td", { class: "conf" }, el("span", { class: "pct", text: pct(p) }),
         el("div", { class: "track" }, el("div", { class: "fill", style: `width:${(100 * p).toFixed(2)}%` })))));
  });
  return el("table", {}, el("thead", {}, head), body);
}

// Texts go to /predict in requests within the server's limits (max_texts, max_chars).
async function predictAll(rows, status) {
  const limits = (info && info.limits) || { max_texts: 64, max_chars: 100000 };
  const answers = [];
  let start = 0;
  while (start < rows.length) {
    let end = start, chars = 0;
    while (end < rows.length && end - start < limits.max_texts &&
           (end === start || chars + rows[end].text.length + (rows[end].knowledge || "").length <= limits.max_chars)) {
      chars += rows[end].text.length + (rows[end].knowledge || "").length;
      end += 1;
    }
    const chunk = rows.slice(start, end);
    const body = { texts: chunk.map((r) => r.text) };
    if (chunk.some((r) => r.knowledge != null)) body.knowledge = chunk.map((r) => r.knowledge ?? null);
    const data = await call("/predict", { method: "POST", headers: { "Content-Type": "application/json" },
                                          body: JSON.stringify(body) });
    answers.push(...data.predictions);
    start = end;
    if (status) status.textContent = `${answers.length} / ${rows.length} predicted…`;
  }
  return answers;
}

async function classify() {
  const lines = $("text").value.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  showError("error", "");
  $("result").replaceChildren();
  if (!lines.length) { showError("error", "Type a text first."); return; }
  const button = $("classify");
  button.disabled = true;
  $("status").textContent = "classifying…";
  const started = performance.now();
  try {
    if (lines.length === 1) {
      const answer = await call("/predict", { method: "POST", headers: { "Content-Type": "application/json" },
                                              body: JSON.stringify({ text: lines[0] }) });
      $("result").append(renderOne(answer));
    } else {
      const rows = lines.map((text) => ({ text }));
      $("result").append(renderTable(rows, await predictAll(rows, $("status"))));
    }
    $("status").textContent = `${lines.length} text${lines.length > 1 ? "s" : ""} in ` +
      `${Math.round(performance.now() - started)} ms`;
  } catch (e) {
    showError("error", e.message);
    $("status").textContent = "";
  } finally {
    button.disabled = false;
  }
}

async function upload() {
  const file = $("file").files[0];
  if (!file) return;
  showError("file-error", "");
  $("file-report").replaceChildren();
  $("file-result").replaceChildren();
  $("file-actions").hidden = true;
  $("file-status").textContent = `reading ${file.name}…`;
  const form = new FormData();
  form.append("file", file);
  form.append("text_column", $("column").value || "text");
  try {
    const read = await call("/read", { method: "POST", body: form });
    fileName = read.file;
    const report = el("div", { class: `report${read.skipped.length ? " has-skipped" : ""}`, id: "skipped" },
      `${read.file}: ${read.rows.length} row${read.rows.length === 1 ? "" : "s"} read` +
      (read.skipped.length ? `, ${read.skipped.length} skipped:` : ", none skipped."));
    if (read.skipped.length) {
      const list = el("ul");
      for (const bad of read.skipped.slice(0, 50)) list.append(el("li", { text: `line ${bad.line}: ${bad.reason}` }));
      if (read.skipped.length > 50) list.append(el("li", { text: `… and ${read.skipped.length - 50} more` }));
      report.append(list);
    }
    $("file-report").append(report);
    fileRows = read.rows;
    fileAnswers = read.rows.length ? await predictAll(read.rows, $("file-status")) : [];
    if (fileRows.length) {
      $("file-result").append(renderTable(fileRows, fileAnswers));
      $("file-actions").hidden = false;
    }
    $("file-status").textContent = `${fileRows.length} predicted`;
  } catch (e) {
    showError("file-error", e.message);
    $("file-status").textContent = "";
  } finally {
    $("file").value = "";  // choosing the same file again reads it again
  }
}

function save(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// The same records as `senti_lit.predict input=... output=...`: the row's line, its text, the answer.
function downloadJsonl() {
  const lines = fileRows.map((row, i) => JSON.stringify(Object.assign({ line: row.line, text: row.text },
                                                                      fileAnswers[i])));
  save(lines.join("\n") + "\n", `${fileName}.predictions.jsonl`, "application/x-ndjson");
}

// OWASP's CSV-injection rule: a text cell starting with = + - @ tab or CR is prefixed with ' so that a spreadsheet
// shows it instead of running it as a formula (numbers, negative ones included, stay numbers)
function csvCell(value) {
  let s = String(value ?? "");
  if (typeof value !== "number" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function downloadCsv() {
  const labels = info ? info.labels : Object.keys(fileAnswers[0].probs);
  const header = ["line", "text", "label", "confidence", ...labels.map((l) => `p_${l}`), "truncated"];
  const lines = [header.map(csvCell).join(",")];
  fileRows.forEach((row, i) => {
    const a = fileAnswers[i];
    lines.push([row.line, row.text, predicted(a), a.confidence ?? "", ...labels.map((l) => a.probs[l]),
                a.truncated].map(csvCell).join(","));
  });
  // a byte-order mark so spreadsheet programs read the Chinese as UTF-8
  save("\ufeff" + lines.join("\r\n") + "\r\n", `${fileName}.predictions.csv`, "text/csv");
}

$("classify").addEventListener("click", classify);
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) classify(); });
$("file").addEventListener("change", upload);
$("download-jsonl").addEventListener("click", downloadJsonl);
$("download-csv").addEventListener("click", downloadCsv);
function useKey() {
  sessionStorage.setItem("senti_lit_key", $("key").value.trim());
  showError("key-status", "Checking the key…");
  loadInfo();
}
$("key-save").addEventListener("click", useKey);
$("key").addEventListener("keydown", (e) => { if (e.key === "Enter") useKey(); });
loadInfo();
