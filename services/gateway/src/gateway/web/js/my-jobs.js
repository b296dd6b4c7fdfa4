// "My videos": the signed-in user's jobs, newest first, a page at a time.

import { STATUS_LABELS, authHeaders, currentSession } from "./api.js";
import { $, show } from "./dom.js";

// Where the next page starts (null: no more).
let jobsCursor = null;
let hooks = { open() {}, sessionEnded() {} };

function jobItem(job) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "job-link";
  button.dataset.status = job.status;
  const title = document.createElement("span");
  title.className = "job-title";
  title.dir = "auto";
  title.textContent = job.title;
  const meta = document.createElement("span");
  meta.className = "job-meta";
  const when = new Date(job.created_at);
  meta.textContent = `${STATUS_LABELS[job.status] || job.status} · ${when.toLocaleDateString()} ${when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  button.append(title, meta);
  button.addEventListener("click", () => hooks.open({ id: job.id, token: job.token }, job));
  item.append(button);
  return item;
}

export async function loadMyJobs(more = false) {
  if (!currentSession()) return;
  const params = new URLSearchParams({ limit: "10" });
  if (more && jobsCursor) params.set("cursor", jobsCursor);
  let response;
  try {
    response = await fetch(`/api/v1/jobs?${params}`, { headers: authHeaders() });
  } catch {
    return; // offline: the list stays as it was
  }
  if (response.status === 401) {
    hooks.sessionEnded();
    return;
  }
  if (!response.ok) return;
  const body = await response.json();
  const list = $("jobs-list");
  if (!more) list.replaceChildren();
  for (const job of body.jobs) list.append(jobItem(job));
  jobsCursor = body.next_cursor;
  show($("more-jobs"), Boolean(jobsCursor));
  show($("no-jobs"), list.children.length === 0);
  show($("my-jobs"), true);
}

export function hideMyJobs() {
  $("jobs-list").replaceChildren();
  show($("my-jobs"), false);
}

// hooks.open(job, view): a listed job was chosen; hooks.sessionEnded(): the API said 401.
export function initMyJobs(given) {
  hooks = given;
  $("more-jobs").addEventListener("click", () => loadMyJobs(true));
}
