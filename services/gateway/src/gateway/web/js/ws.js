// Live updates of one job over the notifier's WebSocket, with the REST API as the fallback
// while the socket is down.

import { config, fetchJob } from "./api.js";

export const FINAL = new Set(["completed", "failed", "canceled"]);
// Errors after which watching this job cannot succeed: forget it.
export const FATAL_CODES = new Set(["unauthorized", "forbidden", "job_not_found", "not_found", "invalid_token"]);

function wsUrl(configured) {
  if (configured.startsWith("/")) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${configured}`;
  }
  return configured;
}

// handlers: job(view), status(message), error({code, message}), connection(text).
export class JobWatcher {
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
