// The catalogue page's check: the cuts picked, the manifest previewed in a table, and the
// same request sent to POST /api/v1/batches/quote on every change; its problems are shown
// beside their rows, its quote under the table. Nothing is sent before every row is good.

import { authHeaders, config, errorMessage } from "./api.js";
import { $, columnHeadings, el, labelCells, setText, show } from "./dom.js";
import { readManifest } from "./manifest-preview.js";

const CHECK_DELAY_MS = 300;
const FIELD_LABELS = {
  sku: "SKU",
  title: "Title",
  description: "Description",
  image: "Photo",
  cta: "Call to action",
  price: "Price",
  style: "Style",
  row: "Row",
  manifest: "Manifest",
  photos: "Photos zip",
  max_cost_usd: "Spend at most",
};


let checkTimer = null;
// Answers to older checks are dropped: only the latest input's answer is shown.
let checkSeq = 0;
// The request the last good quote was for (null: nothing to send yet).
let quoted = null;
let hooks = { changed() {}, sessionEnded() {} };

function problemText(problem) {
  const label = FIELD_LABELS[problem.field] || problem.field;
  return label ? `${label}: ${problem.message}` : problem.message;
}

// ---------- the cuts: one checkbox per preset of /api/v1/config, with an optional length ----------

function buildVariantPicker() {
  const box = $("variant-list");
  const presets = Array.isArray(config.presets) ? config.presets : [];
  const first = presets.find((p) => p.aspect_ratio === (config.default_aspect_ratio || "9:16")) || presets[0];
  for (const preset of presets) {
    const row = el("div", "", { class: "variant" });
    const check = el("label", "", { class: "check" });
    const input = el("input", "", { type: "checkbox", name: "variant", value: preset.name });
    input.checked = preset === first;
    const best = Array.isArray(preset.best) ? ` · best ${preset.best[0]}–${preset.best[1]} s` : "";
    const text = el("span", `${preset.label} `);
    text.append(el("small", `${preset.aspect_ratio}${best}`));
    check.append(input, text);
    const range = preset.durations || config.durations;
    const lengthId = `length-${preset.name}`;
    const lengthLabel = el("label", "Length in seconds", { for: lengthId });
    const length = el("input", "", {
      id: lengthId,
      type: "number",
      min: String(range.min),
      max: String(range.max),
      step: "1",
      placeholder: String(range.default),
      inputmode: "numeric",
      "aria-label": `${preset.label}: length in seconds`,
    });
    row.append(check, lengthLabel, length);
    box.append(row);
  }
}

function chosenVariants() {
  const variants = [];
  for (const input of document.querySelectorAll('input[name="variant"]:checked')) {
    const variant = { preset: input.value };
    const length = $(`length-${input.value}`).value.trim();
    if (length) variant.duration = Number(length);
    variants.push(variant);
  }
  return variants;
}

// The multipart request the quote and the batch both take.
function requestData() {
  const data = new FormData();
  data.set("manifest", $("manifest").files[0]);
  const photos = $("photos").files[0];
  if (photos) data.set("photos", photos);
  const variants = chosenVariants();
  if (variants.length) data.set("variants", JSON.stringify(variants));
  const cap = $("max-cost").value.trim();
  if (cap) data.set("max_cost_usd", cap);
  return data;
}

// ---------- the check: the preview table and the server's quote ----------

function previewRow(row, headings) {
  const tr = el("tr", "", { "data-row": String(row.number) });
  const values = row.values;
  tr.append(
    el("td", String(row.number)),
    el("th", values.sku || "", { scope: "row", dir: "auto" }),
    el("td", values.title || "", { dir: "auto", class: "name" }),
    el("td", values.image || ""),
    el("td", values.price || "", { dir: "auto" }),
    el("td", "Checking…", { class: "row-check" }),
  );
  return labelCells(tr, headings);
}

async function renderPreview(file) {
  const list = $("rows-list");
  list.replaceChildren();
  try {
    const rows = await readManifest(file);
    const headings = columnHeadings($("rows-table"));
    list.append(...rows.map((row) => previewRow(row, headings)));
    show($("rows-table"), rows.length > 0);
  } catch {
    show($("rows-table"), false); // the server's check says what is wrong with the file
  }
}

function markRows(problems) {
  const byRow = new Map();
  for (const problem of problems) {
    if (problem.row == null) continue;
    if (!byRow.has(problem.row)) byRow.set(problem.row, []);
    byRow.get(problem.row).push(problem);
  }
  const unplaced = problems.filter((p) => p.row == null);
  for (const tr of $("rows-list").children) {
    const found = byRow.get(Number(tr.dataset.row)) || [];
    byRow.delete(Number(tr.dataset.row));
    const checkCell = tr.querySelector(".row-check");
    checkCell.replaceChildren();
    if (found.length) {
      const list = el("ul", "", { class: "problems" });
      for (const problem of found) list.append(el("li", problemText(problem)));
      checkCell.append(list);
      tr.dataset.state = "bad";
    } else {
      checkCell.append(el("span", "OK", { class: "ok" }));
      tr.dataset.state = "ok";
    }
  }
  // Rows the preview could not show (a file it read otherwise) are listed with the rest.
  for (const [row, found] of byRow) {
    for (const problem of found) unplaced.push({ ...problem, message: `Row ${row}: ${problem.message}` });
  }
  return unplaced;
}

function showRequestProblems(message, problems = []) {
  const box = $("request-problems");
  box.replaceChildren();
  if (!message && !problems.length) {
    show(box, false);
    return;
  }
  if (message) box.append(el("p", message));
  if (problems.length) {
    const list = el("ul");
    for (const problem of problems) list.append(el("li", problemText(problem)));
    box.append(list);
  }
  show(box, true);
}

function money(usd) {
  return `$${Number(usd).toFixed(2)}`;
}

function showQuote(quote) {
  const rows = quote.rows === 1 ? "1 product" : `${quote.rows} products`;
  const cuts = quote.variants.length === 1 ? "1 cut" : `${quote.variants.length} cuts`;
  const videos = quote.jobs === 1 ? "1 video" : `${quote.jobs} videos`;
  setText($("quote-summary"), `${rows} × ${cuts}: ${videos}, estimated cost ${money(quote.cost.total_usd)}.`);
  const refusedList = $("quote-refused");
  refusedList.replaceChildren(...quote.refused.map((r) => el("li", `Row ${r.row} (${r.sku}), cut ${r.variant + 1}: ${r.message}`)));
  show(refusedList, quote.refused.length > 0);
  show($("quote"), true);
  setText($("send"), quote.jobs === 1 ? "Make 1 video" : `Make ${quote.jobs} videos`);
}

// What is being asked, to tell a real change from an event that changed nothing (a
// number field's "change" when it loses focus to the send button, say).
function inputs() {
  return {
    manifest: $("manifest").files[0],
    photos: $("photos").files[0],
    variants: JSON.stringify(chosenVariants()),
    cap: $("max-cost").value.trim(),
  };
}

let lastInputs = null;

function sameInputs(a, b) {
  return Boolean(a && b) && Object.keys(a).every((name) => a[name] === b[name]);
}

function scheduleCheck() {
  const now = inputs();
  if (sameInputs(now, lastInputs)) return;
  lastInputs = now;
  quoted = null;
  hooks.changed(); // a changed request is a new request
  $("send").disabled = true;
  clearTimeout(checkTimer);
  checkTimer = setTimeout(check, CHECK_DELAY_MS);
}

async function check() {
  const file = $("manifest").files[0];
  const seq = ++checkSeq;
  show($("send-error"), false);
  show($("quote"), false);
  if (!file) {
    show($("check"), false);
    return;
  }
  show($("check"), true);
  setText($("check-status"), "Checking every row…");
  showRequestProblems("");
  await renderPreview(file);
  if (seq !== checkSeq) return;
  let response;
  let body = null;
  const data = requestData();
  try {
    response = await fetch("/api/v1/batches/quote", { method: "POST", body: data, headers: authHeaders() });
    body = await response.json().catch(() => null);
  } catch {
    if (seq === checkSeq) setText($("check-status"), "Could not reach the server. Check your connection and choose the file again.");
    return;
  }
  if (seq !== checkSeq) return;
  if (response.status === 401) {
    hooks.sessionEnded();
    return;
  }
  if (response.ok && body) {
    markRows([]);
    setText($("check-status"), "Every row is good.");
    showQuote(body);
    quoted = data;
    $("send").disabled = false;
    return;
  }
  const details = body && body.error && Array.isArray(body.error.details) ? body.error.details : [];
  const count = details.length;
  if (!count) {
    // Refused as a whole (too large, no price right now, …): no verdict on any row.
    for (const cell of $("rows-list").querySelectorAll(".row-check")) cell.replaceChildren();
    setText($("check-status"), "");
    showRequestProblems(errorMessage(response, body));
    return;
  }
  const unplaced = markRows(details);
  setText($("check-status"), `${count === 1 ? "1 problem" : `${count} problems`} to fix; nothing was sent.`);
  showRequestProblems(unplaced.length ? errorMessage(response, body) : "", unplaced);
}


// The request the last good quote was for, or null: nothing can be sent yet.
export function quotedRequest() {
  return quoted;
}

// The batch itself was refused (a photo link that could not be read): its problems beside
// their rows, as the quote's, and nothing to send until the inputs change.
export function refused(response, body, details) {
  showRequestProblems(errorMessage(response, body), markRows(details));
  quoted = null;
}

// An empty form again, for the next catalogue.
export function resetCheck() {
  $("batch-form").reset();
  lastInputs = null;
  quoted = null;
  show($("check"), false);
}

// hooks.changed(): the inputs changed; hooks.sessionEnded(): the API said 401.
export function initCheck(given) {
  hooks = given;
  buildVariantPicker();
  const form = $("batch-form");
  form.addEventListener("change", scheduleCheck);
  form.addEventListener("input", scheduleCheck);
  form.addEventListener("submit", (event) => event.preventDefault());
}
