"""The database server restarted again and again while 20 jobs run: the services
reconnect by themselves, all four say not ready (`/readyz` 503) while it is down, every
job ends completed or failed with a reason, none lost or doubled (harness.check), and a
job submitted after the last restart completes.

The scenario runs its own SecantusDB daemon (same port and storage path on each start),
so restarting it disturbs no other test."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.conftest import _run
from tests.faults.harness import (
    N_JOBS,
    all_not_ready,
    assert_sound,
    check,
    hold,
    release,
    submit_and_watch,
    wait_for_status,
    watchers_subscribed,
)
from tests.support import processes
from tests.support.backends import SecantusDaemon
from tests.support.fake_openrouter import FakeOpenRouter

pytestmark = pytest.mark.timeout(300)

RESTARTS = 3
DOWN_SECONDS = 2.0


@pytest.fixture
def own_db(tmp_path: Path) -> Iterator[SecantusDaemon]:
    daemon = SecantusDaemon(tmp_path / "secantus" / "data")
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def db_fault_system(
    request: pytest.FixtureRequest,
    fault_env: dict[str, str],
    own_db: SecantusDaemon,
    tmp_path: Path,
) -> Iterator[processes.System]:
    env = {**fault_env, "MONGODB_URL": own_db.url}
    yield from _run(request, env, tmp_path / "logs", processes.ALL)


@pytest.fixture
async def own_database(
    db_fault_system: processes.System, own_db: SecantusDaemon
) -> AsyncIterator[AsyncDatabase]:
    client: AsyncMongoClient = AsyncMongoClient(
        own_db.url, tz_aware=True, serverSelectionTimeoutMS=15000
    )
    yield client[db_fault_system.env["MONGODB_DATABASE"]]
    await client.close()


async def test_database_restarted_mid_run(
    db_fault_system: processes.System,
    own_db: SecantusDaemon,
    own_database: AsyncDatabase,
    fake: FakeOpenRouter,
) -> None:
    system = db_fault_system
    hold(fake)
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        run = await submit_and_watch(system, api)
        ids = run.ids
        faults = 0

        await watchers_subscribed(system)
        outages = []
        for _ in range(RESTARTS):
            await wait_for_status(own_database, ids, "generating", within=90)
            # Some provider jobs end now: their clips are fetched and stored meanwhile.
            release(fake, N_JOBS // (RESTARTS + 1))
            # Off the event loop: the WebSocket watchers run on it meanwhile.
            down_at = time.monotonic()
            await asyncio.to_thread(own_db.stop)
            faults += 1
            if faults == 1:
                # Checked once: every service says it is not ready.
                await all_not_ready(system, processes.ALL)
            else:
                await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(own_db.start)
            outages.append((down_at, time.monotonic()))
        last_fault = time.monotonic()
        release(fake)
        # After the last restart a new job goes all the way: the gateway writes and
        # publishes again, the workers read and consume again.
        await asyncio.to_thread(processes.wait_ready, system)
        late = await submit_and_watch(system, api, 1, first=N_JOBS)
        run.extend(late)
    figures = await check(
        "database restarted",
        run,
        own_database,
        fake,
        system,
        faults=faults,
        last_fault_at=last_fault,
        outages=outages,
    )
    assert_sound(figures)
    # Every job completes, the late one too: a provider job accepted while the database
    # was down keeps its id in memory until it can be saved (video's save_checkpoint).
    assert figures.completed == N_JOBS + 1, figures.failures
    late_job = await own_database["jobs"].find_one({"_id": late.ids[0]})
    assert late_job is not None and late_job["status"] == "completed", late_job
    processes.wait_ready(system)
