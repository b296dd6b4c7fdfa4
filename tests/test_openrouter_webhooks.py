"""Webhook mode end to end: OpenRouter's signed callback reaches the gateway, which wakes
the video worker, which finishes the job at once instead of at its next poll (a minute
away here). Badly signed and stale callbacks are refused."""

import time

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support.fake_openrouter import FakeOpenRouter, VideoPlan
from tests.support.processes import System

pytestmark = pytest.mark.timeout(180)

# What a production deployment would set: the gateway's public URL.
CALLBACK_URL = "https://videos.example/api/v1/webhooks/openrouter"
POLL = "GET /videos/{id}"
NEXT_POLL = 60  # seconds: far beyond the time the test allows for the job to finish


@pytest.fixture
def system_env(service_env: dict[str, str], fake: FakeOpenRouter) -> dict[str, str]:
    # A retry tier as long as the poll interval, so the next poll is really a minute away.
    # Set on `service_env` itself: its teardown deletes the retry queues it names.
    service_env["RETRY_DELAYS"] = f"[1,2,{NEXT_POLL}]"
    return {
        **service_env,
        **fake.env(),
        "PROMPT_PROVIDER": "",
        "VIDEO_PROVIDER": "",
        "OPENROUTER_POLL_INTERVAL_SECONDS": str(NEXT_POLL),
        "OPENROUTER_POLL_MAX_INTERVAL_SECONDS": str(NEXT_POLL),
        "OPENROUTER_WEBHOOK_URL": CALLBACK_URL,
        "OPENROUTER_WEBHOOK_SECRET": fake.webhook_secret,
    }


async def test_a_signed_callback_completes_the_job_without_waiting_for_the_next_poll(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase, fake: FakeOpenRouter
) -> None:
    fake.video_plan = VideoPlan(polls=("pending",), hold=True)
    accepted = await user.submitted(api, user.product_photo(seed=41))

    async def waiting_for_next_poll() -> bool:
        # Polled once, and the job handed back until the next poll (no lease held).
        job = await database["jobs"].find_one({"_id": accepted["id"]})
        polled = len(fake.calls(POLL)) >= 1
        return polled and job is not None and "provider_job" in job and "lease" not in job

    await user.wait_for(waiting_for_next_poll, within=60, what="the first poll of the video job")
    [video_id] = fake.jobs
    assert fake.calls("POST /videos")[0].json["callback_url"] == CALLBACK_URL
    fake.finish(video_id)
    url = f"{system.gateway.url}/api/v1/webhooks/openrouter"

    # Forged, tampered with, or replayed too late: refused, and nothing happens.
    for options in (
        {"secret": "whsec-not-ours"},
        {"tamper": True},
        {"timestamp": int(time.time()) - 301},
    ):
        refused = await fake.deliver_webhook(url, video_id, **options)
        assert refused.status_code == 401, options
        assert refused.json()["error"]["code"] == "invalid_signature"

    woken = time.monotonic()
    response = await fake.deliver_webhook(url, video_id)
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    followed = await user.follow(system.ws_url, accepted["id"], accepted["token"], within=30)
    assert followed.final_status == "completed", followed.final
    assert time.monotonic() - woken < NEXT_POLL / 2
    assert len(fake.calls(POLL)) == 2, "one poll when submitted, one when woken"
    assert len(fake.calls("POST /videos")) == 1

    # OpenRouter retrying the same callback is dropped as a duplicate.
    again = await fake.deliver_webhook(url, video_id)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    job = await database["jobs"].find_one({"_id": accepted["id"]})
    assert job is not None and job["provider_job"]["cost"] == 0.35
