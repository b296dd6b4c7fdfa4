"""The OpenRouter video provider misbehaving while 20 jobs run (the fake OpenRouter of
tests/support, speaking the real protocol): bursts of 5xx and 429 on submissions and
polls, dropped connections and polls that hang past the client's timeout. Afterwards
every job is completed or failed with a reason, none lost or doubled, and no job paid
for two provider jobs.

Hangs are injected on polls only: a submission that hangs after OpenRouter started the
job cannot be told apart from one that never arrived (no idempotency key on POST
/videos), see docs/reliability.md."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.conftest import _run
from tests.faults.harness import FAULT_ENV, N_JOBS, check, submit_and_watch, wait_for_status
from tests.faults.test_faults import assert_sound
from tests.support import processes
from tests.support.fake_openrouter import FakeOpenRouter, Fault, VideoPlan

pytestmark = pytest.mark.timeout(300)

ROUNDS = 3
CREATE = "POST /videos"
POLL = "GET /videos/{id}"
# Each round: what the next submissions and polls get instead of their answer.
SUBMISSION_FAULTS = (Fault(503), Fault(429, retry_after=1), Fault(502), Fault(500))
POLL_FAULTS = (Fault(503), Fault(drop=True), Fault(delay=4), Fault(429, retry_after=1))


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter.running() as server:
        server.video_plan = VideoPlan(polls=("pending", "in_progress"))
        yield server


@pytest.fixture
def provider_system(
    request: pytest.FixtureRequest,
    system_env: dict[str, str],
    fake: FakeOpenRouter,
    tmp_path: Path,
) -> Iterator[processes.System]:
    env = {
        **system_env,
        **FAULT_ENV,
        **fake.env(),
        "VIDEO_PROVIDER": "openrouter",
        "PROMPT_PROVIDER": "template",
        # A hanging poll is given up after this long (then polled again later).
        "OPENROUTER_VIDEO_TIMEOUT_SECONDS": "2",
    }
    yield from _run(request, env, tmp_path / "logs", processes.ALL)


async def test_video_provider_failing_and_hanging(
    provider_system: processes.System, database: AsyncDatabase, fake: FakeOpenRouter
) -> None:
    system = provider_system
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        run = await submit_and_watch(system, api)
    ids = [a["id"] for a in run.accepted]
    faults = 0
    for _ in range(ROUNDS):
        await wait_for_status(database, ids, "generating", within=90)
        fake.fail(CREATE, *SUBMISSION_FAULTS)
        fake.fail(POLL, *POLL_FAULTS)
        faults += len(SUBMISSION_FAULTS) + len(POLL_FAULTS)
        await asyncio.sleep(2)  # the gap between bursts, not a check
    last_fault = time.monotonic()
    await asyncio.gather(*run.watchers, return_exceptions=True)
    # Faults scripted for submissions that were all made already were never served.
    faults -= sum(len(left) for left in fake.faults.values())
    assert faults >= len(POLL_FAULTS) * ROUNDS
    figures = await check(
        "video provider 5xx/429/hangs", run, database, faults=faults, last_fault_at=last_fault
    )
    assert_sound(figures)
    # One paid provider job per job, whatever failed on the way.
    paid = [j async for j in database["jobs"].find({"_id": {"$in": ids}}, {"provider_job": 1})]
    assert len(fake.jobs) == N_JOBS
    assert {j["provider_job"]["id"] for j in paid if j.get("provider_job")} <= set(fake.jobs)
    assert figures.completed == N_JOBS
