"""A webhook receiver for Product Videos, in plain Python (standard library only).

    WEBHOOK_SECRET=whsec_... PORT=8080 python webhook_receiver.py

It checks each delivery per the Standard Webhooks spec (the `standardwebhooks` package
on PyPI does the same in one call: `Webhook(secret).verify(body, headers)`), answers
204 at once, and handles each event once: retries and redeliveries of one event share
its `webhook-id`. Keep the ids you have handled in your database, not in memory, if
the receiver runs on more than one machine or restarts.
"""

import base64
import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["WEBHOOK_SECRET"]
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
TOLERANCE_SECONDS = 5 * 60  # older (or newer) timestamps are refused: no replays
handled: set[str] = set()


def verified(headers: dict[str, str], body: bytes) -> bool:
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (message_id and timestamp.isdigit() and signatures):
        return False
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    # One signature per live secret ("v1,<base64> v1,<base64>" while a secret rotates).
    return any(
        hmac.compare_digest(expected.encode(), signature.removeprefix("v1,").encode())
        for signature in signatures.split(" ")
        if signature.startswith("v1,")
    )


def handle(event: dict) -> None:
    """Your code: the job's public JSON is in event["data"]; its clip link lives minutes,
    so fetch the clip now (or read the job again later: GET /api/v1/jobs/{id})."""
    job = event["data"]
    if event["type"] == "job.completed":
        print(f"clip ready for {job['title']!r}: {job['video']['url']}", flush=True)
    elif event["type"] == "job.failed":
        print(f"job {job['id']} failed: {job['error']['message']}", flush=True)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        if not verified(headers, body):
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(204)  # answer first: a slow answer is retried as a failure
        self.end_headers()
        message_id = headers["webhook-id"]
        if message_id in handled:
            return  # a retry or a redelivery of an event already handled
        handled.add(message_id)
        handle(json.loads(body))


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Receiver)
    print(f"listening on :{server.server_port}", flush=True)
    server.serve_forever()
