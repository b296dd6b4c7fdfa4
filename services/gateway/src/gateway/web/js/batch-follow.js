// Following a batch until it is final: each new snapshot (the JSON of
// GET /api/v1/batches/{id}) goes to onSnapshot. Today by reading the batch every 2 s.
// The notifier's batch subscription ({"op":"subscribe","batch_id":…}, issue 11) plugs in
// here: its first `snapshot` message and each progress message merged into the last
// snapshot go to the same onSnapshot, and the polling below stays as the fallback while
// the socket is down.

import { authHeaders } from "./api.js";

export const POLL_MS = 2000;

// hooks: onSnapshot(batch), onConnection(ok: boolean), onGone(response, body) for an answer
// that will not change by asking again (401, 404). Returns stop().
export function followBatch(batchId, hooks) {
  let timer = null;
  let stopped = false;

  async function poll() {
    timer = null;
    let response;
    let body = null;
    try {
      response = await fetch(`/api/v1/batches/${encodeURIComponent(batchId)}`, {
        headers: authHeaders(),
        cache: "no-store",
      });
      body = await response.json().catch(() => null);
    } catch {
      response = null; // offline: try again at the next tick
    }
    if (stopped) return;
    if (response && (response.status === 401 || response.status === 404)) {
      hooks.onGone(response, body);
      return;
    }
    hooks.onConnection(Boolean(response && response.ok));
    if (response && response.ok && body) {
      hooks.onSnapshot(body);
      if (body.status !== "running") return; // final: nothing more will change
    }
    timer = setTimeout(poll, POLL_MS);
  }

  poll();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
