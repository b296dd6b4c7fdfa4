"""OpenRouter's webhook on the gateway, in-process against the real broker and database:
only correctly signed, fresh callbacks are taken; each one wakes the video worker once."""

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from common.jobs import now

SECRET = "whsec-test-secret"
URL = "/api/v1/webhooks/openrouter"


def callback(
    video_id: str,
    *,
    status: str = "completed",
    secret: str = SECRET,
    at: float | None = None,
    tamper: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """A callback as OpenRouter sends it: the raw body and its signed headers."""
    body = json.dumps(
        {
            "type": f"video.generation.{status}",
            "created_at": int(time.time()),
            "data": {"id": video_id, "status": status, "usage": {"cost": 0.35}},
        }
    ).encode()
    stamp = int(time.time() if at is None else at)
    digest = hmac.new(secret.encode(), f"{stamp},".encode() + body, hashlib.sha256).hexdigest()
    if tamper:
        body = body.replace(b"completed", b"cancelled")
    return body, {
        "Content-Type": "application/json",
        "X-OpenRouter-Signature": f"t={stamp},v1={digest}",
        "X-OpenRouter-Idempotency-Key": f"{video_id}-{status}",
    }


async def add_generating_job(gateway: Any, video_id: str) -> str:
    job_id = f"job-{video_id}"
    await gateway.services.repo.jobs.insert_one(
        {
            "_id": job_id,
            "status": "generating",
            "progress": 60,
            "seq": 5,
            "provider_job": {"provider": "openrouter", "id": video_id, "submitted_at": now()},
        }
    )
    return job_id


def video_queue(gateway: Any) -> str:
    return str(gateway.services.topology.video_jobs.queue.name)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"secret": "whsec-someone-else"}, "does not match"),
        ({"tamper": True}, "does not match"),
        ({"at": time.time() - 301}, "more than 300 s off"),
    ],
)
async def test_a_badly_signed_or_stale_callback_is_refused(
    start_gateway: Callable[..., Any], options: dict[str, Any], says: str
) -> None:
    async with start_gateway(openrouter_webhook_secret=SecretStr(SECRET)) as gateway:
        await add_generating_job(gateway, "vid_1")
        body, headers = callback("vid_1", **options)
        response = await gateway.client.post(URL, content=body, headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "invalid_signature" and says in error["message"]
        assert await gateway.queue_depth(video_queue(gateway)) == 0

        del headers["X-OpenRouter-Signature"]
        response = await gateway.client.post(URL, content=body, headers=headers)
        assert response.status_code == 401
        assert "missing" in response.json()["error"]["message"]


async def test_a_signature_of_non_ascii_garbage_is_refused_not_a_crash(
    start_gateway: Callable[..., Any],
) -> None:
    async with start_gateway(openrouter_webhook_secret=SecretStr(SECRET)) as gateway:
        body, headers = callback("vid_1")
        headers["X-OpenRouter-Signature"] = f"t={int(time.time())},v1=\u00e9\u00e9".encode(
            "latin-1"
        )
        response = await gateway.client.post(URL, content=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_signature"


async def test_a_good_callback_wakes_the_video_worker_once(
    start_gateway: Callable[..., Any],
) -> None:
    async with start_gateway(openrouter_webhook_secret=SecretStr(SECRET)) as gateway:
        job_id = await add_generating_job(gateway, "vid_2")
        body, headers = callback("vid_2")
        response = await gateway.client.post(URL, content=body, headers=headers)
        assert (response.status_code, response.json()) == (200, {"status": "accepted"})
        message = await gateway.next_message(video_queue(gateway))
        assert message is not None
        assert json.loads(message.body)["type"] == "prompt.ready"
        assert json.loads(message.body)["job_id"] == job_id

        # OpenRouter delivering it again changes nothing.
        response = await gateway.client.post(URL, content=body, headers=headers)
        assert (response.status_code, response.json()) == (200, {"status": "duplicate"})
        assert await gateway.queue_depth(video_queue(gateway)) == 0
        seen = await gateway.services.db["webhook_events"].find_one({"_id": "vid_2-completed"})
        assert seen["job_id"] == job_id and seen["status"] == "completed"


async def test_the_unsigned_idempotency_header_cannot_drop_another_jobs_callback(
    start_gateway: Callable[..., Any],
) -> None:
    """A replayed (validly signed) callback whose unsigned header names another job's key
    must not make that job's real callback count as a duplicate."""
    async with start_gateway(openrouter_webhook_secret=SecretStr(SECRET)) as gateway:
        await add_generating_job(gateway, "vid_a")
        victim = await add_generating_job(gateway, "vid_b")
        replayed, headers = callback("vid_a")
        headers["X-OpenRouter-Idempotency-Key"] = "vid_b-completed"
        await gateway.client.post(URL, content=replayed, headers=headers)
        await gateway.next_message(video_queue(gateway))

        body, headers = callback("vid_b")
        response = await gateway.client.post(URL, content=body, headers=headers)
        assert (response.status_code, response.json()) == (200, {"status": "accepted"})
        message = await gateway.next_message(video_queue(gateway))
        assert message is not None and json.loads(message.body)["job_id"] == victim


async def test_a_callback_for_no_job_of_ours_is_acknowledged_and_ignored(
    start_gateway: Callable[..., Any],
) -> None:
    async with start_gateway(openrouter_webhook_secret=SecretStr(SECRET)) as gateway:
        body, headers = callback("vid_unknown")
        response = await gateway.client.post(URL, content=body, headers=headers)
        assert (response.status_code, response.json()) == (200, {"status": "ignored"})
        assert await gateway.queue_depth(video_queue(gateway)) == 0


async def test_without_a_secret_webhooks_are_off(start_gateway: Callable[..., Any]) -> None:
    async with start_gateway(openrouter_webhook_secret=None) as gateway:
        body, headers = callback("vid_3")
        response = await gateway.client.post(URL, content=body, headers=headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
