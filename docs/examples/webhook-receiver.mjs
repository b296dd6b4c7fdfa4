// A webhook receiver for Product Videos, in plain Node.js (no dependencies).
//
//     WEBHOOK_SECRET=whsec_... PORT=8080 node webhook-receiver.mjs
//
// It checks each delivery per the Standard Webhooks spec (the `standardwebhooks` npm
// package does the same: `new Webhook(secret).verify(body, headers)`), answers 204 at
// once, and handles each event once: retries and redeliveries of one event share its
// `webhook-id`. Keep the ids you have handled in your database, not in memory, if the
// receiver runs on more than one machine or restarts.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const KEY = Buffer.from(process.env.WEBHOOK_SECRET.replace(/^whsec_/, ""), "base64");
const TOLERANCE_SECONDS = 5 * 60; // older (or newer) timestamps are refused: no replays
const handled = new Set();

function verified(headers, body) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !/^\d+$/.test(timestamp || "") || !signatures) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) return false;
  const expected = createHmac("sha256", KEY)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]))
    .digest();
  // One signature per live secret ("v1,<base64> v1,<base64>" while a secret rotates).
  return signatures.split(" ").some((signature) => {
    if (!signature.startsWith("v1,")) return false;
    const given = Buffer.from(signature.slice(3), "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

// Your code: the job's public JSON is in event.data; its clip link lives minutes, so
// fetch the clip now (or read the job again later: GET /api/v1/jobs/{id}).
function handle(event) {
  const job = event.data;
  if (event.type === "job.completed") console.log(`clip ready for "${job.title}": ${job.video.url}`);
  else if (event.type === "job.failed") console.log(`job ${job.id} failed: ${job.error.message}`);
}

const server = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks);
    if (request.method !== "POST" || !verified(request.headers, body)) {
      response.writeHead(401).end();
      return;
    }
    response.writeHead(204).end(); // answer first: a slow answer is retried as a failure
    const id = request.headers["webhook-id"];
    if (handled.has(id)) return; // a retry or a redelivery of an event already handled
    handled.add(id);
    handle(JSON.parse(body));
  });
});

server.listen(Number(process.env.PORT || 8080), () => {
  console.log(`listening on :${server.address().port}`);
});
