// The job view: the steps ticking by live, then the finished clip (or why it failed).

import { fetchJob, forget, jobFileUrl } from "./api.js";
import { $, setText, show } from "./dom.js";
import { FATAL_CODES, FINAL, JobWatcher } from "./ws.js";

const STEPS = ["queued", "prompting", "prompt_ready", "generating", "storing", "completed"];

let watcher = null;
let hooks = { finished() {}, newJob() {} };

function failedStep(view) {
  // The step a failed job was in: the last status of its history before "failed".
  const before = (view.history || []).filter((h) => !FINAL.has(h.status));
  return before.length ? before[before.length - 1].status : "queued";
}

function renderSteps(status, failedAt = null) {
  const current = failedAt || status;
  const index = STEPS.indexOf(current);
  for (const item of $("steps").children) {
    const position = STEPS.indexOf(item.dataset.status);
    let state = "pending";
    if (failedAt && position === index) state = "failed";
    else if (status === "completed" || position < index) state = "done";
    else if (position === index) state = "current";
    item.dataset.state = state;
    if (state === "current") item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }
}

function renderProgress(progress) {
  const value = Math.max(0, Math.min(100, Number(progress) || 0));
  $("progress").value = value;
  setText($("progress-label"), `${value}%`);
}

function renderStatus(status, progress) {
  // A failure is drawn from the full view, which knows the step it happened in.
  if (STEPS.includes(status)) renderSteps(status);
  renderProgress(progress);
}

function renderJob(job, view) {
  setText($("job-title"), view.title);
  const failed = view.status === "failed" || view.status === "canceled";
  renderSteps(view.status, failed ? failedStep(view) : null);
  renderProgress(view.progress);

  const promptText = view.prompt && view.prompt.text;
  if (promptText) setText($("prompt-text"), promptText);
  show($("prompt-box"), Boolean(promptText));

  const error = $("job-error");
  if (failed) {
    const message = view.error ? view.error.message : "The job was canceled.";
    setText(error, `This video could not be made: ${message}`);
  }
  show(error, failed);

  if (view.status === "completed") showVideo(job, view);
  else show($("result"), false);
}

function showVideo(job, view) {
  const player = $("player");
  const ratio = (view.options && view.options.aspect_ratio) || "9:16";
  $("player-frame").dataset.ratio = ratio;
  // Gateway links redirect to a fresh signed URL each time, so they never go stale.
  const src = jobFileUrl(job, "video");
  if (player.dataset.src !== src) {
    player.dataset.src = src;
    player.poster = jobFileUrl(job, "poster");
    player.src = src;
  }
  player.setAttribute("aria-label", `Video: ${view.title}`);
  const download = $("download");
  download.href = jobFileUrl(job, "video", true);
  show($("result"), true);
}

function setConnection(text) {
  setText($("connection"), text);
}

export function stopWatching() {
  if (watcher) watcher.stop();
  watcher = null;
}

// Shows a job and follows it until it is final; `initialView` (its JSON) when known already.
export function startWatching(job, initialView = null) {
  stopWatching();
  show($("watch"), true);
  show($("result"), false);
  show($("job-error"), false);
  const player = $("player");
  player.removeAttribute("src");
  delete player.dataset.src;
  setText($("job-title"), initialView ? initialView.title : "Loading…");
  renderStatus("queued", 0);

  const current = new JobWatcher(job, {
    job(view) {
      renderJob(job, view);
      if (FINAL.has(view.status)) finish();
    },
    async status(message) {
      renderStatus(message.status, message.progress);
      if (FINAL.has(message.status)) {
        // The final view (video links, error) comes from the REST API.
        try {
          renderJob(job, await fetchJob(job));
        } catch (error) {
          setConnection(error.message);
        }
        finish();
      }
    },
    error(message) {
      if (FATAL_CODES.has(message.code)) {
        forget();
        setConnection("");
        setText($("job-error"), `This job cannot be shown: ${message.message}`);
        show($("job-error"), true);
      } else {
        setConnection(message.message);
      }
    },
    connection: setConnection,
  });
  function finish() {
    current.stop();
    setConnection("");
    hooks.finished();
  }
  watcher = current;
  if (initialView) {
    current.lastSeq = initialView.seq;
    renderJob(job, initialView);
  }
  if (!initialView || !FINAL.has(initialView.status)) current.start();
}

// Opens a job known by id and token (a reload, a shared link); false when it cannot be shown.
export async function resume(job) {
  try {
    const view = await fetchJob(job);
    startWatching(job, view);
  } catch (error) {
    if (FATAL_CODES.has(error.code)) {
      forget();
      return false;
    }
    // The API is unreachable right now: watch anyway, the watcher retries.
    startWatching(job);
  }
  return true;
}

// Stops watching and hides the view, the player emptied.
export function closeJob() {
  stopWatching();
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  show($("watch"), false);
}

export function isWatching() {
  return !$("watch").hidden;
}

// hooks.finished(): the job reached a final status; hooks.newJob(): "Make another".
export function initJob(given) {
  hooks = given;
  $("new-job").addEventListener("click", () => hooks.newJob());
}
