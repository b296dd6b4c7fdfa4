"""The receiver examples of docs/integrations.md (Python and Node) accept what the
notifier signs and refuse the rest: a tampered body, an old timestamp, a wrong secret;
a second delivery under one `webhook-id` is handled once."""

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.webhooks import new_secret, sign
from tests.support.backends import free_port, wait_for_port

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
RECEIVERS = {
    "python": [sys.executable, str(EXAMPLES / "webhook_receiver.py")],
    "node": ["node", str(EXAMPLES / "webhook-receiver.mjs")],
}
EVENT = {
    "type": "job.completed",
    "timestamp": "2026-01-01T00:00:00+00:00",
    "data": {"id": "j1", "title": "Red mug", "video": {"url": "https://x.example/v.mp4"}},
}


@pytest.fixture(params=sorted(RECEIVERS))
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, subprocess.Popen]]:
    command = RECEIVERS[request.param]
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    secret, port = new_secret(), free_port()
    process = subprocess.Popen(
        command,
        env={"WEBHOOK_SECRET": secret, "PORT": str(port), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://127.0.0.1:{port}", secret, process
    finally:
        process.terminate()
        process.wait(10)


def post(url: str, body: bytes, message_id: str, stamp: int, signature: str) -> int:
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
    }
    return httpx.post(url, content=body, headers=headers).status_code


def test_a_receiver_example_checks_signatures_and_handles_an_event_once(receiver):
    url, secret, process = receiver
    body = json.dumps(EVENT).encode()
    now = int(time.time())
    good = sign(secret, "msg_1", now, body)
    assert post(url, body, "msg_1", now, good) == 204
    assert post(url, body, "msg_1", now, good) == 204  # a retry: accepted, not handled again
    # While a secret rotates, the old and the new one both sign.
    assert (
        post(
            url,
            body,
            "msg_2",
            now,
            f"{sign(new_secret(), 'msg_2', now, body)} {sign(secret, 'msg_2', now, body)}",
        )
        == 204
    )
    assert post(url, body + b" ", "msg_3", now, sign(secret, "msg_3", now, body)) == 401
    old = now - 3600
    assert post(url, body, "msg_4", old, sign(secret, "msg_4", old, body)) == 401
    assert post(url, body, "msg_5", now, sign(new_secret(), "msg_5", now, body)) == 401
    process.terminate()
    output = process.communicate(timeout=10)[0]
    assert output.count("clip ready for") == 2, output
