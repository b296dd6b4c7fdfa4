// The catalogue page: a manifest (and a photos zip) and the cuts wanted, checked by
// catalogue-check.js; then the batch sent, followed live until every video is final, with
// its CSV export and a cancel button. The page uses the session the main page saved
// (docs/catalogues.md has the API).

import { authHeaders, errorMessage, loadConfig, loadSession, newIdempotencyKey, saveSession } from "./api.js";
import { renderBatch } from "./batch-table.js";
import { followBatch } from "./batch-follow.js";
import { initCheck, quotedRequest, refused, resetCheck } from "./catalogue-check.js";
import { $, setText, show } from "./dom.js";

const BATCHES = "/api/v1/batches";
const SESSION_ENDED = "Your session has ended; sign in again on the main page.";
// The job views' signed links last DOWNLOAD_URL_TTL_SECONDS (10 min by default): read
// them again when they are older than this.
const LINKS_FRESH_MS = 4 * 60 * 1000;

// One key per attempt at sending these inputs: a double click or a retry after a network
// error names the same batch; any change of the inputs is a new request, with a new key.
let pendingKey = null;
let follower = null;
let lastSnapshot = null;
// job id → {url, poster_url, at} or "pending"
const jobLinks = new Map();

function signedOut(message) {
  saveSession(null);
  if (follower) follower.stop();
  for (const id of ["account", "catalogue", "check", "batch"]) show($(id), false);
  if (message) setText($("signed-out-why"), message);
  show($("signed-out"), true);
}

// ---------- sending ----------

async function send() {
  const request = quotedRequest();
  if (!request) return;
  const button = $("send");
  button.disabled = true;
  show($("send-error"), false);
  pendingKey = pendingKey || newIdempotencyKey();
  const label = button.textContent;
  setText(button, "Sending…");
  let keepKey = false;
  try {
    const response = await fetch(BATCHES, {
      method: "POST",
      body: request,
      headers: { "Idempotency-Key": pendingKey, ...authHeaders() },
    });
    const body = await response.json().catch(() => null);
    if (response.status === 401) {
      signedOut(SESSION_ENDED);
      return;
    }
    if (response.ok && body) {
      startBatch(body.id, body);
      return;
    }
    const details = body && body.error && Array.isArray(body.error.details) ? body.error.details : [];
    if (response.status === 422 && details.length) {
      // The links are fetched only now: a photo that could not be read is a row's problem.
      refused(response, body, details);
      return;
    }
    setText($("send-error"), errorMessage(response, body));
    show($("send-error"), true);
  } catch {
    keepKey = true; // the batch may have been made: the same key asks for it again
    setText($("send-error"), "Could not reach the server. Check your connection and press the button again.");
    show($("send-error"), true);
  } finally {
    if (!keepKey) pendingKey = null;
    setText(button, label);
    button.disabled = !quotedRequest();
  }
}

// ---------- the batch, live ----------

// Reads each newly completed job's signed links once (and again once they are old), then
// draws the table again.
function fetchLinks(snapshot) {
  const now = Date.now();
  for (const row of snapshot.rows) {
    for (const job of row.jobs) {
      const known = jobLinks.get(job.id);
      if (job.status !== "completed" || known === "pending" || (known && now - known.at < LINKS_FRESH_MS)) continue;
      jobLinks.set(job.id, "pending");
      fetch(`/api/v1/jobs/${encodeURIComponent(job.id)}`, { headers: authHeaders() })
        .then((response) => (response.ok ? response.json() : null))
        .then((view) => {
          if (view && view.video) {
            jobLinks.set(job.id, { url: view.video.url, poster_url: view.video.poster_url, at: Date.now() });
            if (lastSnapshot) renderBatch(lastSnapshot, jobLinks);
          } else jobLinks.delete(job.id);
        })
        .catch(() => jobLinks.delete(job.id));
    }
  }
}

// The one place a batch snapshot arrives, whoever read it (the poller, a cancel's answer,
// the batch WebSocket later).
function onSnapshot(snapshot) {
  lastSnapshot = snapshot;
  renderBatch(snapshot, jobLinks);
  fetchLinks(snapshot);
}

function startBatch(batchId, snapshot = null) {
  history.replaceState(null, "", `#batch=${encodeURIComponent(batchId)}`);
  show($("catalogue"), false);
  show($("check"), false);
  show($("batch-error"), false);
  show($("batch"), true);
  $("export").href = `${BATCHES}/${encodeURIComponent(batchId)}/export.csv`;
  $("export").dataset.batch = batchId;
  if (snapshot) onSnapshot(snapshot);
  if (follower) follower.stop();
  if (snapshot && snapshot.status !== "running") return;
  follower = followBatch(batchId, {
    onSnapshot,
    onConnection(ok) {
      setText($("batch-connection"), ok ? "" : "Cannot reach the server; trying again…");
    },
    onGone(response, body) {
      if (response.status === 401) signedOut(SESSION_ENDED);
      else showBatchError(errorMessage(response, body));
    },
  });
}

function showBatchError(message) {
  setText($("batch-error"), message);
  show($("batch-error"), true);
}

async function cancelBatch() {
  const button = $("cancel-batch");
  const batchId = $("export").dataset.batch;
  button.disabled = true;
  show($("batch-error"), false);
  try {
    const response = await fetch(`${BATCHES}/${encodeURIComponent(batchId)}/cancel`, {
      method: "POST",
      headers: authHeaders(),
    });
    const body = await response.json().catch(() => null);
    if (response.status === 401) signedOut(SESSION_ENDED);
    else if (response.ok && body) onSnapshot(body);
    else showBatchError(errorMessage(response, body));
  } catch {
    showBatchError("Could not reach the server. Check your connection and try again.");
  } finally {
    button.disabled = false;
  }
}

// The export needs the session's header, so the link is followed here and the file saved
// from memory; the link itself stays a real one (copy it for the API).
async function downloadExport(event) {
  event.preventDefault();
  const link = event.currentTarget;
  show($("batch-error"), false);
  try {
    const response = await fetch(link.href, { headers: authHeaders(), cache: "no-store" });
    if (!response.ok) {
      showBatchError(errorMessage(response, await response.json().catch(() => null)));
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const save = document.createElement("a");
    save.href = url;
    save.download = `batch-${link.dataset.batch}.csv`;
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch {
    showBatchError("Could not reach the server. Check your connection and try again.");
  }
}

function anotherCatalogue() {
  if (follower) follower.stop();
  follower = null;
  lastSnapshot = null;
  history.replaceState(null, "", location.pathname);
  show($("batch"), false);
  resetCheck();
  show($("catalogue"), true);
  $("manifest").focus();
}

async function main() {
  await loadConfig();
  const session = loadSession();
  if (!session) {
    signedOut("");
    return;
  }
  setText($("account-email"), session.email);
  show($("account"), true);
  initCheck({
    changed() {
      pendingKey = null; // a changed request is a new request, with a new key
    },
    sessionEnded: () => signedOut(SESSION_ENDED),
  });
  $("send").addEventListener("click", send);
  $("cancel-batch").addEventListener("click", cancelBatch);
  $("export").addEventListener("click", downloadExport);
  $("new-batch").addEventListener("click", anotherCatalogue);

  const resumed = new URLSearchParams(location.hash.slice(1)).get("batch");
  if (resumed) startBatch(resumed);
  else show($("catalogue"), true);
}

main();

