// The job view: the steps ticking by live and the brief while the clip renders, then the
// finished ad with its sound (or why it failed).

import { STATUS_LABELS, fetchJob, forget } from "./api.js";
import { renderBrief } from "./brief.js";
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
  $("watch").dataset.outcome = failed ? "failed" : view.status === "completed" ? "done" : "working";
  if (failed) setText($("progress-label"), STATUS_LABELS[view.status]);

  const promptText = view.prompt && view.prompt.text;
  if (promptText) setText($("prompt-text"), promptText);
  show($("prompt-box"), Boolean(promptText));

  renderBrief(view);
  renderNotes(view.notes);

  const error = $("job-error");
  if (failed) {
    const message = view.error ? view.error.message : "The job was canceled.";
    setText(error, `This video could not be made: ${message}`);
  }
  show(error, failed);

  if (view.status === "completed") showVideo(job, view);
  else show($("result"), false);
}

// What the job says its owner should know (a length outside the platform's best, …).
function renderNotes(notes) {
  const list = $("job-notes");
  list.replaceChildren();
  for (const note of Array.isArray(notes) ? notes : []) {
    const item = document.createElement("li");
    item.textContent = note;
    list.append(item);
  }
  show(list, list.children.length > 0);
}

function number(value, digits = 1) {
  // A real minus sign: "−14.0 LUFS".
  return value.toFixed(digits).replace("-", "\u2212");
}

function soundFact(audio) {
  if (audio === null) return "No sound track";
  const parts = [String(audio.codec || "audio").toUpperCase()];
  if (audio.sample_rate) parts.push(`${audio.sample_rate / 1000} kHz`);
  if (audio.channels) parts.push(audio.channels === 2 ? "stereo" : audio.channels === 1 ? "mono" : `${audio.channels} channels`);
  if (typeof audio.loudness_lufs === "number") parts.push(`${number(audio.loudness_lufs)} LUFS`);
  if (typeof audio.true_peak_dbtp === "number") parts.push(`true peak ${number(audio.true_peak_dbtp)} dBTP`);
  return `Sound: ${parts.join(", ")}`;
}

// The finished video's facts: finished or raw, its sound, how well it kept the product.
function renderVideoFacts(video) {
  const facts = [];
  if (video.finished === true) facts.push("Finished ad: captions, music and an end card");
  else if (video.finished === false) facts.push("Raw clip: no captions, music or end card");
  if (video.audio !== undefined) facts.push(soundFact(video.audio));
  if (typeof video.fidelity === "number") facts.push(`Product match: ${Math.round(video.fidelity * 100)} %`);
  if (video.reused_from) facts.push("Made before: the clip of your earlier video with the same photo, text and options, at no cost");
  const list = $("video-facts");
  list.replaceChildren();
  for (const fact of facts) {
    const item = document.createElement("li");
    item.textContent = fact;
    list.append(item);
  }
  show(list, facts.length > 0);
  const warning = $("fidelity-warning");
  setText(
    warning,
    "The product in this clip may not look exactly like your photo (labels or logos can drift): watch it before you post it.",
  );
  show(warning, video.fidelity_warning === true);
}

function showVideo(job, view) {
  const player = $("player");
  const ratio = (view.options && view.options.aspect_ratio) || "9:16";
  $("player-frame").dataset.ratio = ratio;
  // The view's links expire within minutes (no token ever rides in a URL): a player that
  // fails on a stale one (a seek later on) asks for the job again and resumes where it was.
  if (player.dataset.jobId !== job.id) {
    player.dataset.jobId = job.id;
    player.poster = view.video.poster_url;
    // The ad has sound: the player starts unmuted (the user presses play; nothing autoplays).
    player.muted = false;
    player.defaultMuted = false;
    player.src = view.video.url;
  }
  player.onerror = () => refreshVideo(job);
  player.setAttribute("aria-label", `Video: ${view.title}`);
  renderVideoFacts(view.video || {});
  $("download").href = view.video.download_url;
  show($("result"), true);
}

async function refreshVideo(job) {
  const player = $("player");
  const at = player.currentTime;
  player.onerror = null; // one fresh try per failure, not a loop
  try {
    const view = await fetchJob(job);
    if (player.dataset.jobId !== job.id || !view.video) return;
    player.onloadedmetadata = () => {
      player.onloadedmetadata = null;
      player.currentTime = at;
      player.onerror = () => refreshVideo(job); // armed again once the fresh link works
    };
    player.poster = view.video.poster_url;
    player.src = view.video.url;
    $("download").href = view.video.download_url;
  } catch {
    // Offline or signed out: the player keeps showing its error.
  }
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
  show($("brief"), false);
  show($("job-notes"), false);
  const player = $("player");
  player.removeAttribute("src");
  player.onerror = null;
  delete player.dataset.jobId;
  setText($("job-title"), initialView ? initialView.title : "Loading…");
  $("watch").dataset.outcome = "working";
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
