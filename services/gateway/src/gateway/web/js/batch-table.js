// The live table of a batch, drawn from one batch snapshot (the JSON of
// GET /api/v1/batches/{id}): progress, counts, cost so far, each row's jobs. Whoever has a
// newer snapshot (the poller today, the notifier's batch subscription later) calls
// renderBatch again; nothing here knows where it came from.

import { STATUS_LABELS, config } from "./api.js";
import { $, el, labelCells, setText, show } from "./dom.js";

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

function link(text, href, attributes = {}) {
  return el("a", text, { href, target: "_blank", rel: "noopener", ...attributes });
}

// One job's cell: its status, its links once done (links: the job's signed file links, or
// undefined while they are fetched), why it failed.
function jobCellContent(job, links, variant) {
  const box = el("div", "", { class: "job-cell" });
  box.append(el("span", STATUS_LABELS[job.status] || job.status, { class: "job-status", "data-status": job.status }));
  if (job.status === "completed" && links) {
    const row = el("span", "", { class: "links" });
    row.append(
      link("Video", links.url, { "aria-label": `Video ${variant}` }),
      link("Poster", links.poster_url, { "aria-label": `Poster ${variant}` }),
    );
    box.append(row);
  }
  if (job.error) box.append(el("span", job.error.message, { class: "hint" }));
  return box;
}

// The batch whose rows are in the table, and its job cells by job id: a new snapshot only
// redraws the cells that changed, so a focused link or a screen reader's place stays put.
let drawn = null;
const jobCells = new Map();

function drawRows(snapshot, variants) {
  drawn = snapshot.id;
  jobCells.clear();
  const headings = ["Row", "SKU", "Title", ...variants];
  $("batch-head").replaceChildren(...headings.map((label) => el("th", label, { scope: "col" })));
  $("batch-rows").replaceChildren(
    ...snapshot.rows.map((row) => {
      const tr = el("tr", "", { "data-row": String(row.row) });
      tr.append(el("td", String(row.row)), el("th", row.sku, { scope: "row", dir: "auto" }));
      tr.append(el("td", row.title, { dir: "auto", class: "name" }));
      for (const job of row.jobs) {
        const td = el("td", "", { "data-job": job.id });
        jobCells.set(job.id, td);
        tr.append(td);
      }
      return labelCells(tr, headings);
    }),
  );
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
  const text = summary(snapshot);
  if ($("batch-summary").textContent !== text) setText($("batch-summary"), text); // announced once
  show($("cancel-batch"), snapshot.status === "running");

  const labels = presetLabels();
  const variants = snapshot.variants.map((v) => variantLabel(v, labels));
  if (drawn !== snapshot.id) drawRows(snapshot, variants);
  for (const row of snapshot.rows) {
    for (const job of row.jobs) {
      const td = jobCells.get(job.id);
      const found = links.get(job.id);
      const jobLinks = found && typeof found === "object" ? found : undefined; // else still being read
      const shown = [job.status, jobLinks && jobLinks.url, job.error && job.error.message].join("|");
      if (!td || td.dataset.shown === shown) continue;
      td.dataset.shown = shown;
      td.replaceChildren(jobCellContent(job, jobLinks, `${row.sku} ${variants[job.variant] || ""}`));
    }
  }
}
