"""Every query the services make for a job uses an index (issue 12): jobs run through the
four services on the fake OpenRouter (prompt, video polls, a webhook callback, a cancel,
the reconciler's rounds), every command captured at the database by its profiler,
reduced to shapes, and each shape's plan asked of the database with `explain`. A shape
without an index would scan the whole collection, slower with every job stored.

The table in docs/benchmarks.md ("Queries and their indexes") is what this test prints
(`uv run pytest tests/test_query_indexes.py -s`)."""

import asyncio

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support import query_shapes
from tests.support.fake_openrouter import FakeOpenRouter, VideoPlan
from tests.support.processes import System

pytestmark = pytest.mark.timeout(300)

WEBHOOK = "/api/v1/webhooks/openrouter"


@pytest.fixture
def system_env(service_env: dict[str, str], fake: FakeOpenRouter) -> dict[str, str]:
    return {
        **service_env,
        **fake.env(),
        "PROMPT_PROVIDER": "",
        "VIDEO_PROVIDER": "",
        "OPENROUTER_POLL_INTERVAL_SECONDS": "1",
        "OPENROUTER_POLL_MAX_INTERVAL_SECONDS": "1",
        "OPENROUTER_WEBHOOK_URL": f"https://videos.example{WEBHOOK}",
        "OPENROUTER_WEBHOOK_SECRET": fake.webhook_secret,
        # Rounds of the reconciler within the test, re-driving what waits a few seconds.
        "RECONCILE_INTERVAL_SECONDS": "1",
        "RECONCILE_STALE_SECONDS": "3",
    }


async def test_every_query_of_a_job_uses_an_index(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase, fake: FakeOpenRouter
) -> None:
    await query_shapes.start(database)
    fake.video_plan = VideoPlan(polls=("pending", "in_progress"), hold=True)
    photo = user.product_photo(seed=71)
    jobs = [await user.submitted(api, photo, title=f"Mug {i}") for i in range(3)]
    follows = [
        asyncio.create_task(user.follow(system.ws_url, j["id"], j["token"], within=120))
        for j in jobs
    ]
    await user.wait_for(lambda: _async(len(fake.jobs) == 3), within=120, what="3 video jobs")
    await asyncio.sleep(3)  # a few polls of each held job
    first, second = [(await provider_job(database, j["id"])) for j in jobs[:2]]
    fake.finish(first)  # seen at the next poll
    fake.finish(second)  # and this one called back at once
    callback = await fake.deliver_webhook(f"{system.gateway.url}{WEBHOOK}", second)
    assert callback.status_code == 200, callback.text
    canceled = await api.post(f"/api/v1/jobs/{jobs[2]['id']}/cancel")
    assert canceled.status_code in (200, 202), canceled.text
    followed = await asyncio.gather(*follows)
    assert [f.final_status for f in followed] == ["completed", "completed", "canceled"]
    for job in jobs:  # the browser's reads
        await user.get_job(api, job["id"], job["token"])
    assert (await api.get("/api/v1/jobs")).status_code == 200
    await asyncio.sleep(3)  # reconciler rounds

    pids = {name: s.process.pid for name, s in system.services.items()}
    queries = await query_shapes.captured(database, pids)
    print("\n" + query_shapes.table(queries))
    scans = [f"{q.shape}: {q.filter}" for q in queries if not q.indexed]
    assert not scans, "query shapes without an index:\n" + "\n".join(scans)
    services = {q.shape.service for q in queries}
    assert set(pids) <= services, f"queries seen from {services} only"


async def _async(value: bool) -> bool:
    return value


async def provider_job(database: AsyncDatabase, job_id: str) -> str:
    job = await database["jobs"].find_one({"_id": job_id})
    assert job is not None
    return str(job["provider_job"]["id"])
