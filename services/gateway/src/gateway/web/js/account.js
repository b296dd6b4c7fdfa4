// The account page: API keys, webhook endpoints and their deliveries, sessions.
// A plain ES module (no build step), with the DOM helpers of dom.js. It uses the session the main page
// saved; every text from the server is set with textContent, never parsed as HTML.

import { $, columnHeadings, el, labelCells, show } from "./dom.js";

const SESSION_KEY = "productVideos.session";
const API = "/api/v1";

function loadSession() {
  try {
    const saved = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    return saved && typeof saved.token === "string" && typeof saved.email === "string" ? saved : null;
  } catch {
    return null;
  }
}

const session = loadSession();
// The endpoint whose deliveries are shown (null: none).
let shownEndpoint = null;

function button(label, onClick, className = "secondary small") {
  const node = el("button", label, { type: "button", class: className });
  node.addEventListener("click", onClick);
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

class RequestFailed extends Error {}

// A call to the API with the session; the error's message is the server's.
async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${API}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    signedOut();
    throw new RequestFailed("Your session has ended; sign in again.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error;
    const detail = error && Array.isArray(error.details) && error.details[0] && error.details[0].message;
    throw new RequestFailed(detail || (error && error.message) || `The server answered ${response.status}.`);
  }
  return data;
}

// Runs `action`, showing its failure in `errorElement`.
async function guarded(errorElement, action) {
  show(errorElement, false);
  try {
    await action();
  } catch (error) {
    errorElement.textContent = error instanceof RequestFailed ? error.message : "Something went wrong; try again.";
    show(errorElement, true);
  }
}

function checked(name) {
  return [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((input) => input.value);
}

// ---------- API keys ----------

async function loadKeys() {
  const { keys } = await call("GET", "/api-keys");
  const list = $("keys-list");
  const headings = columnHeadings($("keys-table"));
  list.replaceChildren(
    ...keys.map((key) => {
      const row = el("tr", "", { "data-key-id": key.id });
      row.append(
        el("td", key.name),
        el("td", `${key.prefix}…`),
        el("td", key.scopes.join(", ")),
        el("td", when(key.last_used_at)),
      );
      const actions = el("td");
      actions.append(
        button("Revoke", () =>
          guarded($("keys-error"), async () => {
            await call("DELETE", `/api-keys/${encodeURIComponent(key.id)}`);
            await loadKeys();
          }),
        ),
      );
      row.append(actions);
      return labelCells(row, headings);
    }),
  );
  show($("keys-table"), keys.length > 0);
  show($("no-keys"), keys.length === 0);
}

async function createKey(event) {
  event.preventDefault();
  await guarded($("keys-error"), async () => {
    const created = await call("POST", "/api-keys", { name: $("key-name").value.trim(), scopes: checked("scope") });
    $("new-key-value").textContent = created.key;
    show($("new-key"), true);
    $("key-form").reset();
    await loadKeys();
  });
}

// ---------- webhooks ----------

function endpointItem(endpoint) {
  const item = el("li", "", { "data-endpoint-id": endpoint.id });
  item.append(el("div", endpoint.url, { class: "url", dir: "auto" }));
  const facts = [endpoint.events.join(", ")];
  if (endpoint.description) facts.push(endpoint.description);
  item.append(el("div", facts.join(" · "), { class: "hint" }));
  const state = endpoint.enabled ? "Enabled" : `Disabled: ${endpoint.disabled_reason || ""}`;
  item.append(el("div", state, { class: "state", "data-enabled": String(endpoint.enabled) }));
  const id = encodeURIComponent(endpoint.id);
  const errors = $("webhooks-error");
  const row = el("div", "", { class: "button-row" });
  row.append(
    button("Deliveries", () => guarded(errors, () => showDeliveries(endpoint))),
    button(endpoint.enabled ? "Disable" : "Enable", () =>
      guarded(errors, async () => {
        await call("PATCH", `/webhook-endpoints/${id}`, { enabled: !endpoint.enabled });
        await loadEndpoints();
      }),
    ),
    button("Rotate secret", () =>
      guarded(errors, async () => {
        const rotated = await call("POST", `/webhook-endpoints/${id}/rotate-secret`);
        $("new-secret-value").textContent = rotated.secret;
        show($("new-secret"), true);
      }),
    ),
    button("Delete", () =>
      guarded(errors, async () => {
        await call("DELETE", `/webhook-endpoints/${id}`);
        if (shownEndpoint && shownEndpoint.id === endpoint.id) {
          shownEndpoint = null;
          show($("deliveries"), false);
        }
        await loadEndpoints();
      }),
    ),
  );
  item.append(row);
  return item;
}

async function loadEndpoints() {
  const { endpoints } = await call("GET", "/webhook-endpoints");
  $("endpoints-list").replaceChildren(...endpoints.map(endpointItem));
  show($("no-endpoints"), endpoints.length === 0);
}

async function createEndpoint(event) {
  event.preventDefault();
  await guarded($("webhooks-error"), async () => {
    const body = { url: $("endpoint-url").value.trim(), events: checked("event") };
    const description = $("endpoint-description").value.trim();
    if (description) body.description = description;
    const created = await call("POST", "/webhook-endpoints", body);
    $("new-secret-value").textContent = created.secret;
    show($("new-secret"), true);
    $("endpoint-form").reset();
    await loadEndpoints();
  });
}

function lastAnswer(delivery) {
  const last = delivery.attempts[delivery.attempts.length - 1];
  if (!last) return "";
  const answer = last.status_code ? `${last.status_code}` : last.error || "";
  return `${answer} (${last.duration_ms} ms, ${when(last.at)})`;
}

async function showDeliveries(endpoint) {
  shownEndpoint = endpoint;
  const id = encodeURIComponent(endpoint.id);
  const { deliveries } = await call("GET", `/webhook-endpoints/${id}/deliveries`);
  $("deliveries-url").textContent = endpoint.url;
  const headings = columnHeadings($("deliveries-table"));
  $("deliveries-list").replaceChildren(
    ...deliveries.map((delivery) => {
      const row = el("tr", "", { "data-delivery-id": delivery.id });
      row.append(
        el("td", delivery.type),
        el("td", delivery.job_id ?? delivery.batch_id, { class: "id" }),
        el("td", delivery.status, { class: "status" }),
        el("td", String(delivery.attempts.length), { class: "attempts" }),
        el("td", lastAnswer(delivery)),
      );
      const actions = el("td");
      if (delivery.status === "delivered" || delivery.status === "failed") {
        actions.append(
          button("Redeliver", () =>
            guarded($("webhooks-error"), async () => {
              await call("POST", `/webhook-endpoints/${id}/deliveries/${encodeURIComponent(delivery.id)}/redeliver`);
              await showDeliveries(endpoint);
            }),
          ),
        );
      }
      row.append(actions);
      return labelCells(row, headings);
    }),
  );
  show($("no-deliveries"), deliveries.length === 0);
  show($("deliveries"), true);
}

// ---------- sessions ----------

async function loadSessions() {
  const { sessions } = await call("GET", "/auth/sessions");
  $("sessions-list").replaceChildren(
    ...sessions.map((s) =>
      el("li", `Signed in ${when(s.created_at)}, until ${when(s.expires_at)}${s.current ? " (this browser)" : ""}`),
    ),
  );
}

async function signOutEverywhere() {
  try {
    await call("DELETE", "/auth/sessions");
  } finally {
    signedOut();
  }
}

function signedOut() {
  try {
    localStorage.removeItem(SESSION_KEY);
  } catch {
    // Nothing stored.
  }
  window.location.assign("/");
}

// ---------- start ----------

async function main() {
  if (!session) {
    show($("signed-out"), true);
    return;
  }
  $("account-email").textContent = session.email;
  show($("account"), true);
  for (const id of ["keys", "webhooks", "sessions"]) show($(id), true);
  $("key-form").addEventListener("submit", createKey);
  $("endpoint-form").addEventListener("submit", createEndpoint);
  $("sign-out-everywhere").addEventListener("click", signOutEverywhere);
  $("deliveries-refresh").addEventListener("click", () =>
    guarded($("webhooks-error"), () => (shownEndpoint ? showDeliveries(shownEndpoint) : Promise.resolve())),
  );
  await guarded($("keys-error"), loadKeys);
  await guarded($("webhooks-error"), loadEndpoints);
  await guarded($("webhooks-error"), loadSessions);
}

main();
