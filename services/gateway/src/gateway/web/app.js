// Product Videos web client: sign in with a code sent by email, upload a photo, then
// watch the job live over the notifier's WebSocket; list my earlier videos. Plain ES
// module, no build step. Every text that came from a user or the server is set with
// textContent, never parsed as HTML.

const STEPS = ["queued", "prompting", "prompt_ready", "generating", "storing", "completed"];
const FINAL = new Set(["completed", "failed", "canceled"]);
// Errors after which watching this job cannot succeed: forget it.
const FATAL_CODES = new Set(["unauthorized", "forbidden", "job_not_found", "not_found", "invalid_token"]);
const LAST_JOB_KEY = "productVideos.lastJob";
const SESSION_KEY = "productVideos.session";
const STATUS_LABELS = {
  queued: "Queued",
  prompting: "Writing the prompt",
  prompt_ready: "Prompt ready",
  generating: "Generating",
  storing: "Saving",
  completed: "Done",
  failed: "Failed",
  canceled: "Canceled",
};
const FIELD_LABELS = {
  image: "Photo",
  title: "Title",
  description: "Description",
  aspect_ratio: "Aspect ratio",
  duration: "Duration",
  style: "Style",
  "Idempotency-Key": "Request",
};

const $ = (id) => document.getElementById(id);

let config = {
  ws_url: "ws://localhost:8001/ws",
  max_upload_bytes: 20 * 1024 * 1024,
  durations: { min: 3, max: 10, default: 5 },
  limits: { min_image_side: 256, title_max_length: 120, description_max_length: 2000 },
};
let watcher = null;
let previewUrl = null;
// The signed-in user: { token, email }, kept in localStorage across visits.
let session = null;
// The address a code was sent to, while the code is being typed.
let pendingEmail = null;
// Where the next page of "My videos" starts (null: no more).
let jobsCursor = null;
// One key per distinct submission: a retry after a network error can never make a second job.
let pendingKey = null;

// ---------- small helpers ----------

function formatBytes(bytes) {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / (1024 * 1024))} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function wsUrl(configured) {
  if (configured.startsWith("/")) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${configured}`;
  }
  return configured;
}


function remember(job) {
  try {
    localStorage.setItem(LAST_JOB_KEY, JSON.stringify({ id: job.id, token: job.token }));
  } catch {
    // Private mode or storage full: resuming after a reload is a nicety.
  }
}

function forget() {
  try {
    localStorage.removeItem(LAST_JOB_KEY);
  } catch {
    // See remember().
  }
}

function remembered() {
  try {
    const saved = JSON.parse(localStorage.getItem(LAST_JOB_KEY) || "null");
    return saved && typeof saved.id === "string" && typeof saved.token === "string" ? saved : null;
  } catch {
    return null;
  }
}

function loadSession() {
  try {
    const saved = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    return saved && typeof saved.token === "string" && typeof saved.email === "string" ? saved : null;
  } catch {
    return null;
  }
}

function saveSession(value) {
  session = value;
  try {
    if (value) localStorage.setItem(SESSION_KEY, JSON.stringify(value));
    else localStorage.removeItem(SESSION_KEY);
  } catch {
    // Without storage the session lasts as long as the page.
  }
}

function authHeaders() {
  return session ? { Authorization: `Bearer ${session.token}` } : {};
}

async function postJson(path, data, headers = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(data),
  });
  const body = await response.json().catch(() => null);
  return { response, body };
}

function errorMessage(response, body) {
  const error = body && body.error;
  if (!error) return `The server answered ${response.status}.`;
  if (response.status === 429) {
    const after = Number(response.headers.get("Retry-After"));
    if (after > 0 && !(error.details && error.details.resets_at)) {
      return `${error.message} (You can try again in ${after < 90 ? `${after} s` : `${Math.ceil(after / 60)} min`}.)`;
    }
  }
  return error.message;
}

function show(element, visible) {
  element.hidden = !visible;
}

function setText(element, text) {
  element.textContent = text;
}

// ---------- configuration ----------

async function loadConfig() {
  try {
    const response = await fetch("/api/v1/config");
    if (response.ok) config = await response.json();
  } catch {
    // Keep the defaults: the server will still check every limit.
  }
  const { limits, durations } = config;
  $("title").maxLength = limits.title_max_length;
  $("description").maxLength = limits.description_max_length;
  if (limits.style_max_length) $("style").maxLength = limits.style_max_length;
  setText($("min-side"), String(limits.min_image_side));
  setText($("max-size"), formatBytes(config.max_upload_bytes));
  const duration = $("duration");
  duration.min = String(durations.min);
  duration.max = String(durations.max);
  duration.value = String(durations.default);
  setText($("duration-value"), duration.value);
  if (Array.isArray(config.aspect_ratios)) {
    for (const input of document.querySelectorAll('input[name="aspect_ratio"]')) {
      input.closest("label").hidden = !config.aspect_ratios.includes(input.value);
      input.checked = input.value === (config.default_aspect_ratio || "9:16");
    }
  }
}

// ---------- signing in ----------

function showSigninError(message) {
  const box = $("signin-error");
  setText(box, message);
  show(box, Boolean(message));
}

function showEmailStep() {
  pendingEmail = null;
  show($("email-form"), true);
  show($("code-form"), false);
  $("email").focus();
}

function showCodeStep(sent) {
  pendingEmail = sent.email;
  const minutes = Math.round(sent.expires_in / 60);
  setText($("code-sent"), `We sent a 6-digit code to ${sent.email}. It is valid for ${minutes} minutes.`);
  $("code").value = "";
  show($("email-form"), false);
  show($("code-form"), true);
  $("code").focus();
}

async function askForCode(email) {
  showSigninError("");
  const { response, body } = await postJson("/api/v1/auth/email", { email });
  if (response.status === 202 && body) {
    showCodeStep(body);
    return;
  }
  showSigninError(errorMessage(response, body));
}

async function onEmailSubmit(event) {
  event.preventDefault();
  const email = $("email").value.trim();
  if (!email || !email.includes("@")) {
    showSigninError("Enter your email address.");
    return;
  }
  const button = $("email-submit");
  button.disabled = true;
  try {
    await askForCode(email);
  } catch {
    showSigninError("Could not reach the server. Check your connection and try again.");
  } finally {
    button.disabled = false;
  }
}

async function onCodeSubmit(event) {
  event.preventDefault();
  const code = $("code").value.replace(/\s+/g, "");
  if (!/^[0-9]{6}$/.test(code)) {
    showSigninError("The code has 6 digits.");
    return;
  }
  const button = $("code-submit");
  button.disabled = true;
  try {
    const { response, body } = await postJson("/api/v1/auth/verify", { email: pendingEmail, code });
    if (response.ok && body) {
      saveSession({ token: body.token, email: body.email });
      showSigninError("");
      signedIn();
      return;
    }
    showSigninError(errorMessage(response, body));
  } catch {
    showSigninError("Could not reach the server. Check your connection and try again.");
  } finally {
    button.disabled = false;
  }
}

function signedIn() {
  show($("signin"), false);
  setText($("account-email"), session.email);
  show($("account"), true);
  if ($("watch").hidden) show($("create"), true);
  loadMyJobs();
}

function showSignin(message = "") {
  show($("account"), false);
  show($("create"), false);
  show($("my-jobs"), false);
  show($("signin"), true);
  showEmailStep();
  showSigninError(message);
}

function signedOut(message = "") {
  stopWatching();
  forget();
  saveSession(null);
  show($("watch"), false);
  $("jobs-list").replaceChildren();
  showSignin(message);
}

async function signOut() {
  const headers = authHeaders();
  signedOut();
  try {
    // Revokes the token on the server too; the page has forgotten it already.
    await fetch("/api/v1/auth/logout", { method: "POST", headers });
  } catch {
    // Offline: the token expires on its own.
  }
}

// ---------- my videos ----------

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
  button.addEventListener("click", () => {
    const opened = { id: job.id, token: job.token };
    remember(opened);
    startWatching(opened, job);
    $("watch").scrollIntoView?.({ block: "start", behavior: "smooth" });
  });
  item.append(button);
  return item;
}

async function loadMyJobs(more = false) {
  if (!session) return;
  const params = new URLSearchParams({ limit: "10" });
  if (more && jobsCursor) params.set("cursor", jobsCursor);
  let response;
  try {
    response = await fetch(`/api/v1/jobs?${params}`, { headers: authHeaders() });
  } catch {
    return; // offline: the list stays as it was
  }
  if (response.status === 401) {
    signedOut("Your session has ended; please sign in again.");
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

// ---------- the form ----------

function updateCounter(input, counter) {
  const max = input.maxLength;
  setText(counter, max > 0 ? `${input.value.length} / ${max}` : "");
}

function clearFormErrors() {
  show($("form-error"), false);
  for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function showFormError(message, details = []) {
  const box = $("form-error");
  box.replaceChildren();
  const lead = document.createElement("span");
  lead.textContent = message;
  box.append(lead);
  if (details.length) {
    const list = document.createElement("ul");
    for (const detail of details) {
      const item = document.createElement("li");
      const label = FIELD_LABELS[detail.field] || detail.field || "";
      item.textContent = label ? `${label}: ${detail.message}` : detail.message;
      list.append(item);
      const field = detail.field && document.getElementsByName(detail.field)[0];
      if (field) field.setAttribute("aria-invalid", "true");
    }
    box.append(list);
  }
  show(box, true);
  box.scrollIntoView?.({ block: "nearest", behavior: "smooth" });
}

function checkBeforeUpload() {
  const problems = [];
  const file = $("image").files[0];
  if (!file) problems.push({ field: "image", message: "Choose a photo of the product." });
  else if (file.size > config.max_upload_bytes)
    problems.push({ field: "image", message: `The photo is larger than ${formatBytes(config.max_upload_bytes)}.` });
  if (!$("title").value.trim()) problems.push({ field: "title", message: "Give the product a title." });
  if (!$("description").value.trim()) problems.push({ field: "description", message: "Describe the product." });
  return problems;
}

function onPhotoChosen() {
  const file = $("image").files[0];
  const preview = $("preview");
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = file ? URL.createObjectURL(file) : null;
  if (!previewUrl) {
    show(preview, false);
    return;
  }
  preview.onload = () => {
    const min = config.limits.min_image_side;
    if (Math.min(preview.naturalWidth, preview.naturalHeight) < min) {
      showFormError(`This photo is ${preview.naturalWidth}×${preview.naturalHeight} pixels; both sides must be at least ${min}.`);
    }
  };
  preview.src = previewUrl;
  preview.alt = `Preview of ${file.name}`;
  show(preview, true);
}

async function onSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearFormErrors();
  const problems = checkBeforeUpload();
  if (problems.length) {
    showFormError("Please check the form.", problems);
    return;
  }
  const data = new FormData(form);
  if (!String(data.get("style") || "").trim()) data.delete("style");
  pendingKey = pendingKey || newIdempotencyKey();

  const button = $("submit");
  button.disabled = true;
  setText(button, "Uploading…");
  try {
    const response = await fetch("/api/v1/jobs", {
      method: "POST",
      body: data,
      headers: { "Idempotency-Key": pendingKey, ...authHeaders() },
    });
    const body = await response.json().catch(() => null);
    if (response.status === 401) {
      signedOut("Your session has ended; please sign in again.");
      return;
    }
    if (!response.ok) {
      const error = body && body.error;
      showFormError(errorMessage(response, body), (error && Array.isArray(error.details) && error.details) || []);
      if (response.status === 409 || response.status === 503) pendingKey = null;
      return;
    }
    pendingKey = null;
    const job = { id: body.id, token: body.token };
    remember(job);
    startWatching(job, body.job);
    loadMyJobs();
  } catch {
    showFormError("Could not reach the server. Check your connection and press “Create video” again.");
  } finally {
    button.disabled = false;
    setText(button, "Create video");
  }
}

// ---------- the job view ----------

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
  // The view's links expire within minutes (no token ever rides in a URL): a player that
  // fails on a stale one (a seek later on) asks for the job again and resumes where it was.
  if (player.dataset.jobId !== job.id) {
    player.dataset.jobId = job.id;
    player.poster = view.video.poster_url;
    player.src = view.video.url;
  }
  player.onerror = () => refreshVideo(job);
  player.setAttribute("aria-label", `Video: ${view.title}`);
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

async function fetchJob(job) {
  const response = await fetch(`/api/v1/jobs/${encodeURIComponent(job.id)}`, {
    headers: { Authorization: `Bearer ${job.token}` },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const code = body && body.error ? body.error.code : "";
    throw Object.assign(new Error(body && body.error ? body.error.message : `HTTP ${response.status}`), { code });
  }
  return body;
}

// ---------- live updates ----------

class JobWatcher {
  constructor(job, handlers) {
    this.job = job;
    this.handlers = handlers;
    this.lastSeq = 0;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
  }

  connect() {
    if (this.stopped) return;
    let socket;
    try {
      socket = new WebSocket(wsUrl(config.ws_url));
    } catch {
      this.reconnectLater();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      const message = { op: "subscribe", job_id: this.job.id, token: this.job.token };
      if (this.lastSeq > 0) message.after_seq = this.lastSeq;
      socket.send(JSON.stringify(message));
      this.handlers.connection("Live");
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handle(message);
    });
    socket.addEventListener("close", () => {
      if (this.socket === socket) this.socket = null;
      if (!this.stopped) this.reconnectLater();
    });
  }

  handle(message) {
    switch (message.type) {
      case "snapshot":
        if (message.job && message.job.seq >= this.lastSeq) {
          this.lastSeq = message.job.seq;
          this.handlers.job(message.job);
        }
        break;
      case "status":
        if (message.seq <= this.lastSeq) return;
        this.lastSeq = message.seq;
        if (message.job) this.handlers.job(message.job);
        else this.handlers.status(message);
        break;
      case "error":
        this.handlers.error(message);
        if (FATAL_CODES.has(message.code)) this.stop();
        break;
      case "ping":
        break; // heartbeat: the server's way of keeping the connection open
      default:
        break;
    }
  }

  async reconnectLater() {
    // Exponential backoff with jitter: 1 s, 2 s, 4 s … up to 30 s.
    const base = Math.min(30_000, 1000 * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt += 1;
    this.handlers.connection(`Connection lost; reconnecting in ${Math.ceil(delay / 1000)} s…`);
    this.timer = setTimeout(() => this.connect(), delay);
    // Meanwhile the REST API keeps the page current.
    try {
      const view = await fetchJob(this.job);
      if (!this.stopped && view.seq >= this.lastSeq) {
        this.lastSeq = view.seq;
        this.handlers.job(view);
      }
    } catch (error) {
      if (FATAL_CODES.has(error.code)) {
        this.stop();
        this.handlers.error({ code: error.code, message: error.message });
      }
    }
  }
}

function stopWatching() {
  if (watcher) watcher.stop();
  watcher = null;
}

function startWatching(job, initialView = null) {
  stopWatching();
  show($("create"), false);
  show($("watch"), true);
  show($("result"), false);
  show($("job-error"), false);
  const player = $("player");
  player.removeAttribute("src");
  player.onerror = null;
  delete player.dataset.jobId;
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
    loadMyJobs();
  }
  watcher = current;
  if (initialView) {
    current.lastSeq = initialView.seq;
    renderJob(job, initialView);
  }
  if (!initialView || !FINAL.has(initialView.status)) current.start();
}

async function resume(job) {
  try {
    const view = await fetchJob(job);
    startWatching(job, view);
  } catch (error) {
    if (FATAL_CODES.has(error.code)) {
      forget();
      return;
    }
    // The API is unreachable right now: watch anyway, the watcher retries.
    startWatching(job);
  }
}

function newJob() {
  stopWatching();
  forget();
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  show($("watch"), false);
  show($("create"), Boolean(session));
  $("job-form").reset();
  show($("preview"), false);
  setText($("duration-value"), $("duration").value);
  updateCounter($("title"), $("title-count"));
  updateCounter($("description"), $("description-count"));
  clearFormErrors();
  $("image").focus();
}

// ---------- start ----------

async function main() {
  await loadConfig();
  const form = $("job-form");
  form.addEventListener("submit", onSubmit);
  form.addEventListener("input", () => {
    pendingKey = null; // a changed request is a new request
  });
  $("image").addEventListener("change", onPhotoChosen);
  $("duration").addEventListener("input", (e) => setText($("duration-value"), e.target.value));
  for (const [input, counter] of [["title", "title-count"], ["description", "description-count"]]) {
    $(input).addEventListener("input", () => updateCounter($(input), $(counter)));
    updateCounter($(input), $(counter));
  }
  $("new-job").addEventListener("click", newJob);
  $("email-form").addEventListener("submit", onEmailSubmit);
  $("code-form").addEventListener("submit", onCodeSubmit);
  $("code-resend").addEventListener("click", () => pendingEmail && askForCode(pendingEmail));
  $("code-other-email").addEventListener("click", showEmailStep);
  $("sign-out").addEventListener("click", signOut);
  $("more-jobs").addEventListener("click", () => loadMyJobs(true));

  session = loadSession();
  if (session) signedIn();
  else showSignin();

  // A job shared by its link token, or the last one watched, opens without signing in.
  const saved = remembered();
  if (saved) await resume(saved);
}

main();
