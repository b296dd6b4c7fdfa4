// The REST API as every page uses it: the client configuration, the signed-in session,
// JSON requests, error messages and job links.

// What each job status is called on screen.
export const STATUS_LABELS = {
  queued: "Queued",
  prompting: "Writing the prompt",
  prompt_ready: "Prompt ready",
  generating: "Generating",
  storing: "Saving",
  completed: "Done",
  failed: "Failed",
  canceled: "Canceled",
};

const SESSION_KEY = "productVideos.session";
const LAST_JOB_KEY = "productVideos.lastJob";

// The server's /api/v1/config, with defaults for when it cannot be read.
export const config = {
  ws_url: "ws://localhost:8001/ws",
  max_upload_bytes: 20 * 1024 * 1024,
  durations: { min: 3, max: 10, default: 5 },
  limits: { min_image_side: 256, title_max_length: 120, description_max_length: 2000 },
};

export async function loadConfig() {
  try {
    const response = await fetch("/api/v1/config");
    if (response.ok) Object.assign(config, await response.json());
  } catch {
    // Keep the defaults: the server will still check every limit.
  }
  return config;
}

// ---------- the session: { token, email }, kept in localStorage across visits ----------

let session = null;

export function loadSession() {
  try {
    const saved = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    session = saved && typeof saved.token === "string" && typeof saved.email === "string" ? saved : null;
  } catch {
    session = null;
  }
  return session;
}

export function currentSession() {
  return session;
}

export function saveSession(value) {
  session = value;
  try {
    if (value) localStorage.setItem(SESSION_KEY, JSON.stringify(value));
    else localStorage.removeItem(SESSION_KEY);
  } catch {
    // Without storage the session lasts as long as the page.
  }
}

export function authHeaders() {
  return session ? { Authorization: `Bearer ${session.token}` } : {};
}

// ---------- the last job watched: { id, token }, so a reload resumes it ----------

export function remember(job) {
  try {
    localStorage.setItem(LAST_JOB_KEY, JSON.stringify({ id: job.id, token: job.token }));
  } catch {
    // Private mode or storage full: resuming after a reload is a nicety.
  }
}

export function forget() {
  try {
    localStorage.removeItem(LAST_JOB_KEY);
  } catch {
    // See remember().
  }
}

export function remembered() {
  try {
    const saved = JSON.parse(localStorage.getItem(LAST_JOB_KEY) || "null");
    return saved && typeof saved.id === "string" && typeof saved.token === "string" ? saved : null;
  } catch {
    return null;
  }
}

// ---------- requests ----------

export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function postJson(path, data, headers = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(data),
  });
  const body = await response.json().catch(() => null);
  return { response, body };
}

// The message of an error answer ({"error": {"code", "message", "details"?}}).
export function errorMessage(response, body) {
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

// ---------- jobs ----------

// The public view of a job, read with its own token; throws an Error carrying the API's code.
export async function fetchJob(job) {
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
