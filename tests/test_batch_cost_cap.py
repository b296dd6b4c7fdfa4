"""A batch's `max_cost_usd` under 4 video workers running as real processes (the way
replicas run) on the real broker, database and storage, with OpenRouter faked: the fake
is paid for exactly the clips the cap fits, the other jobs of the batch fail as
`budget_exhausted` with the owner's message (and the detail in the workers' log), and jobs
outside the batch, or in a batch without a cap, are not held back.

The batches are stored directly, as the gateway's batch endpoint stores them."""

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from common.errors import user_message
from common.events import PromptReady
from common.settings import CommonSettings
from common.worker import WorkerContext
from services.video.tests.images import mug
from services.video.tests.support import Worker, eventually
from services.video.tests.test_budget import add_batch
from tests.support import processes
from tests.support.backends import free_port
from tests.support.fake_openrouter import FakeOpenRouter, VideoPlan
from tests.support.processes import System

pytestmark = pytest.mark.timeout(300)

WORKERS = 4
# Every clip reserves the fake model's price: 0.07 $/s × 4 s.
ESTIMATE_USD = 0.28
FITS = 3
IN_BATCH = 8


@contextmanager
def video_workers(env: dict[str, str], log_dir: Path, count: int) -> Iterator[System]:
    """`count` video workers, each its own process on its own port."""
    log_dir.mkdir(parents=True, exist_ok=True)
    system = System(env)
    try:
        for n in range(count):
            port = free_port()
            system.services[f"video-{n}"] = processes._start(
                processes.SPECS["video"], port, env, log_dir
            )
        processes.wait_ready(system)
        yield system
    finally:
        for service in system.services.values():
            service.stop()


@pytest.fixture
def workers(service_env: dict[str, str], fake: FakeOpenRouter, tmp_path: Path) -> Iterator[System]:
    # The OpenRouter video provider (chosen by the key), 4 deliveries at once per worker.
    env = {**service_env, **fake.env(), "VIDEO_PROVIDER": "", "PREFETCH": "4"}
    try:
        with video_workers(env, tmp_path / "logs", WORKERS) as system:
            yield system
    finally:
        with MongoClient[dict[str, Any]](env["MONGODB_URL"]) as client:
            client.drop_database(env["MONGODB_DATABASE"])


@pytest.fixture
async def driver(settings: CommonSettings) -> AsyncIterator[Worker]:
    """This test's hand on the system: stores jobs at prompt_ready and publishes their
    events, consuming nothing itself."""
    ctx = WorkerContext.create(settings)
    await ctx.broker.start()
    await ctx.topology.declare(ctx.broker)
    try:
        yield Worker(ctx, provider=None)  # type: ignore[arg-type]
    finally:
        await ctx.broker.stop()
        await ctx.stop()


async def add_job(driver: Worker, batch_id: str | None) -> str:
    job = await driver.add_job(mug(), owner="shop@example.com")
    if batch_id:
        await driver.ctx.db["jobs"].update_one(
            {"_id": job["_id"]}, {"$set": {"batch_id": batch_id}}
        )
    return job["_id"]


async def settled(driver: Worker, job_ids: list[str]) -> list[dict[str, Any]]:
    """Every job failed or with its paid job's id saved (the clips are held at the fake)."""

    async def read() -> list[dict[str, Any]]:
        return [await driver.ctx.repo.get(job_id) for job_id in job_ids]  # type: ignore[misc]

    def done(jobs: list[dict[str, Any]]) -> bool:
        return all(j["status"] == "failed" or (j.get("provider_job") or {}).get("id") for j in jobs)

    jobs: list[dict[str, Any]] = await eventually(read, done, within=120)
    return jobs


async def test_a_batchs_cap_holds_under_four_workers(
    workers: System, driver: Worker, fake: FakeOpenRouter
) -> None:
    # Clips wait at the fake until every job has been submitted or refused, so none is
    # settled to its cost while others still reserve.
    fake.video_plan = VideoPlan(polls=("pending",), hold=True, cost=0.21)
    capped = await add_batch(driver.ctx.db, FITS * ESTIMATE_USD)
    uncapped = await add_batch(driver.ctx.db, None)
    in_batch = [await add_job(driver, capped) for _ in range(IN_BATCH)]
    others = [await add_job(driver, None), await add_job(driver, uncapped)]
    for job_id in [*in_batch, *others]:
        await driver.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job_id))

    jobs = await settled(driver, in_batch + others)
    batch_jobs, other_jobs = jobs[:IN_BATCH], jobs[IN_BATCH:]
    paid = [j for j in batch_jobs if j["status"] != "failed"]
    refused = [j for j in batch_jobs if j["status"] == "failed"]
    # Exactly the clips the cap fits were paid for, and the jobs outside it too.
    assert len(paid) == FITS, [j.get("error") for j in refused]
    assert len(fake.calls("POST /videos")) == FITS + len(others)
    assert all(j["status"] != "failed" for j in other_jobs), [j.get("error") for j in other_jobs]
    for job in refused:
        assert job["error"]["code"] == "budget_exhausted", job["error"]
        assert job["error"]["message"] == user_message("budget_exhausted")
        assert "cost cap set for this batch" in job["error"]["message"]
        assert "id" not in (job.get("provider_job") or {})
    # The operators' detail names the batch and its cap, once per refused job.
    logs = workers.logs()
    assert logs.count(f"batch {capped}: this clip") == IN_BATCH - FITS, logs[-3000:]
    assert "max_cost_usd of $0.84" in logs
    # And the workers shared the batch: the race was real.
    busy = [
        name
        for name, service in workers.services.items()
        if "OpenRouter accepted video job" in service.log() or f"batch {capped}" in service.log()
    ]
    assert len(busy) >= 2, busy

    for video_id in list(fake.jobs):
        fake.finish(video_id)
    for job in paid + other_jobs:
        done = await driver.wait_for_status(job["_id"], "completed", "failed", within=120)
        assert done["status"] == "completed", done.get("error")
    # The batch's reservations were settled to what the clips cost (0.21 $ each).
    batch = await driver.ctx.db["batches"].find_one({"_id": capped})
    assert batch is not None and batch["cost_reserved_micros"] == FITS * 210_000
    unlimited = await driver.ctx.db["batches"].find_one({"_id": uncapped})
    assert unlimited is not None and "cost_reserved_micros" not in unlimited
