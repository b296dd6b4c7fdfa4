"""The OpenRouter video provider misbehaving while 20 jobs run (the fake OpenRouter of
tests/support, speaking the real protocol): bursts of OpenRouter's JSON 5xx and 429 on
submissions and polls, and on polls also dropped connections, polls that hang past the
client's timeout, a proxy's HTML 502 and a 200 that is not JSON. Afterwards every job is
completed or failed with a reason, none lost or doubled: one chat call, one paid provider
job and one clip per job (harness.check).

Hangs, drops and answers that are not JSON are injected on polls only: a submission
without a readable answer cannot be told apart from one OpenRouter started (no
idempotency key on POST /videos), so it fails its job as `provider_unconfirmed` by
design, see docs/reliability.md. Polls are safe to repeat."""

import asyncio
import time

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.faults.harness import (
    CREATE,
    N_JOBS,
    POLL,
    assert_sound,
    check,
    hold,
    release,
    submit_and_watch,
    wait_for_status,
)
from tests.support.fake_openrouter import FakeOpenRouter, Fault
from tests.support.processes import System

pytestmark = pytest.mark.timeout(300)

ROUNDS = 3
# Each round: what the next submissions and polls get instead of their answer.
SUBMISSION_FAULTS = (Fault(503), Fault(429, retry_after=1), Fault(502), Fault(500))
POLL_FAULTS = (
    Fault(503),
    Fault(drop=True),
    Fault(delay=4),  # past OPENROUTER_VIDEO_TIMEOUT_SECONDS
    Fault(429, retry_after=1),
    Fault(502, body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
    Fault(200, body=b"upstream connect error", content_type="text/plain"),
)


# One job may meet every scripted fault (a submission retried into each round's burst,
# as seen in a run): it must still have an attempt left to complete.
EVERY_FAULT = len(SUBMISSION_FAULTS) * (ROUNDS + 1) + len(POLL_FAULTS) * ROUNDS


@pytest.fixture
def fault_env(fault_env: dict[str, str]) -> dict[str, str]:
    # A hanging poll is given up after this long (then polled again later).
    return {
        **fault_env,
        "OPENROUTER_VIDEO_TIMEOUT_SECONDS": "2",
        "MAX_ATTEMPTS": str(EVERY_FAULT + 1),
    }


async def test_video_provider_failing_and_hanging(
    fault_system: System,
    fault_api: httpx.AsyncClient,
    database: AsyncDatabase,
    fake: FakeOpenRouter,
) -> None:
    hold(fake)
    # The first submissions meet a burst at once.
    fake.fail(CREATE, *SUBMISSION_FAULTS)
    scripted = len(SUBMISSION_FAULTS)
    run = await submit_and_watch(fault_system, fault_api)
    for _ in range(ROUNDS):
        await wait_for_status(database, run.ids, "generating", within=90)
        fake.fail(CREATE, *SUBMISSION_FAULTS)
        fake.fail(POLL, *POLL_FAULTS)
        scripted += len(SUBMISSION_FAULTS) + len(POLL_FAULTS)
        # Some provider jobs end now: their polls, downloads and uploads meet the burst.
        release(fake, N_JOBS // (ROUNDS + 1))
        await asyncio.sleep(2)  # the gap between bursts, not a check
    last_fault = time.monotonic()
    release(fake)
    await asyncio.gather(*run.watchers, return_exceptions=True)
    # Faults scripted for submissions that were all made already were never served.
    unserved = {route: len(left) for route, left in fake.faults.items()}
    faults = scripted - sum(unserved.values())
    assert unserved.get(POLL, 0) == 0, unserved
    assert unserved.get(CREATE, 0) < len(SUBMISSION_FAULTS) * (ROUNDS + 1), "none on POST /videos"
    figures = await check(
        "video provider 5xx/429/hangs",
        run,
        database,
        fake,
        fault_system,
        faults=faults,
        last_fault_at=last_fault,
    )
    assert_sound(figures)
    assert figures.completed == N_JOBS
    # The scripted errors did reach the services: fake answers that made no job.
    refused = [r for r in fake.calls(CREATE) if r.status != 202]
    assert len(refused) == len(SUBMISSION_FAULTS) * (ROUNDS + 1) - unserved.get(CREATE, 0)
    assert figures.paid_jobs == N_JOBS == len(fake.accepted())
