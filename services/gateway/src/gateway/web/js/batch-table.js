// The live table of a batch, drawn from one batch snapshot (the JSON of
// GET /api/v1/batches/{id}): progress, counts, cost so far, each row's jobs. Whoever has a
// newer snapshot (the poller today, the notifier's batch subscription later) calls
// renderBatch again; nothing here knows where it came from.

import { STATUS_LABELS, config } from "./api.js";
import { $, setText, show } from "./dom.js";

export const FINAL_JOB = new Set(["completed", "failed", "canceled"]);
const BATCH_LABELS = { running: "Making your videos", completed: "All done", canceled: "Canceled" };

function presetLabels() {
  return new Map((Array.isArray(config.presets) ? config.presets : []).map((p) => [p.name, p.label]));
}

// "Instagram Reels 9:16 · 5 s" for a variant of the batch.
export function variantLabel(variant, labels = presetLabels()) {
  const name = variant.preset ? `${labels.get(variant.preset) || variant.preset} ` : "";
  return `${name}${variant.aspect_ratio} · ${variant.duration} s`;
}

function cell(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function link(text, href, attributes = {}) {
  return cell("a", text, { href, target: "_blank", rel: "noopener", ...attributes });
}

// One job's cell: its status, its links once done (links: the job's signed file links, or
// undefined while they are fetched), why it failed.
function jobCell(job, links, variant) {
  const td = cell("td");
  const box = cell("div", "", { class: "job-cell", "data-job": job.id });
  box.append(cell("span", STATUS_LABELS[job.status] || job.status, { class: "job-status", "data-status": job.status }));
  if (job.status === "completed" && links) {
    const row = cell("span", "", { class: "links" });
    row.append(
      link("Video", links.url, { "aria-label": `Video ${variant}` }),
      link("Poster", links.poster_url, { "aria-label": `Poster ${variant}` }),
    );
    box.append(row);
  }
  if (job.error) box.append(cell("span", job.error.message, { class: "hint" }));
  td.append(box);
  return td;
}

function summary(snapshot) {
  const { counts, jobs_total: total } = snapshot;
  const done = counts.completed || 0;
  const parts = [`${done} of ${total} videos done`];
  const working = total - done - (counts.failed || 0) - (counts.canceled || 0);
  if (working > 0) parts.push(`${working} in progress`);
  if (counts.failed) parts.push(`${counts.failed} failed`);
  if (counts.canceled) parts.push(`${counts.canceled} canceled`);
  const cap = snapshot.max_cost_usd == null ? "" : ` of at most $${snapshot.max_cost_usd.toFixed(2)}`;
  return `${parts.join(", ")}. Spent so far: $${snapshot.cost_usd.toFixed(2)}${cap}.`;
}

export function renderBatch(snapshot, links = new Map()) {
  setText($("batch-id"), snapshot.id);
  setText($("batch-title"), BATCH_LABELS[snapshot.status] || snapshot.status);
  $("batch").dataset.status = snapshot.status;

  const final = Object.entries(snapshot.counts)
    .filter(([status]) => FINAL_JOB.has(status))
    .reduce((sum, [, n]) => sum + n, 0);
  const progress = $("batch-progress");
  progress.max = Math.max(1, snapshot.jobs_total);
  progress.value = final;
  setText($("batch-progress-label"), `${final} / ${snapshot.jobs_total}`);
  setText($("batch-summary"), summary(snapshot));
  show($("cancel-batch"), snapshot.status === "running");

  const labels = presetLabels();
  const variants = snapshot.variants.map((v) => variantLabel(v, labels));
  const head = $("batch-head");
  head.replaceChildren(
    cell("th", "Row", { scope: "col" }),
    cell("th", "SKU", { scope: "col" }),
    cell("th", "Title", { scope: "col" }),
    ...variants.map((label) => cell("th", label, { scope: "col" })),
  );
  const body = $("batch-rows");
  body.replaceChildren(
    ...snapshot.rows.map((row) => {
      const tr = cell("tr", "", { "data-row": String(row.row) });
      tr.append(cell("td", String(row.row)), cell("th", row.sku, { scope: "row", dir: "auto" }));
      tr.append(cell("td", row.title, { dir: "auto" }));
      for (const job of row.jobs) {
        tr.append(jobCell(job, links.get(job.id), `${row.sku} ${variants[job.variant] || ""}`));
      }
      return tr;
    }),
  );
}
