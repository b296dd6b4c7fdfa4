"""The database server restarted again and again while 20 jobs run: the services
reconnect by themselves, `/readyz` says not ready while it is down, and every job ends
completed or failed with a reason, none lost or doubled.

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
from tests.faults.harness import FAULT_ENV, N_JOBS, check, submit_and_watch, wait_for_status
from tests.faults.test_faults import assert_sound
from tests.support import client as user
from tests.support import processes
from tests.support.backends import SecantusDaemon
from tests.support.observe import metric

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
    system_env: dict[str, str],
    own_db: SecantusDaemon,
    tmp_path: Path,
) -> Iterator[processes.System]:
    env = {**system_env, **FAULT_ENV, "MONGODB_URL": own_db.url}
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


async def not_ready(service: processes.Service) -> bool:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.get(f"{service.url}/readyz")
    return response.status_code == 503


async def test_database_restarted_mid_run(
    db_fault_system: processes.System, own_db: SecantusDaemon, own_database: AsyncDatabase
) -> None:
    system = db_fault_system
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        run = await submit_and_watch(system, api)
    ids = [a["id"] for a in run.accepted]
    faults = 0

    async def subscribed() -> bool:  # a subscription reads the job: not while it is down
        snapshots = await metric(
            system.notifier,
            "pv_ws_messages_pushed_total",
            lambda labels: labels["type"] == "snapshot",
        )
        return snapshots >= N_JOBS

    await user.wait_for(subscribed, within=60, what="every watcher subscribed")
    for _ in range(RESTARTS):
        await wait_for_status(own_database, ids, "generating", within=90)
        # Off the event loop: the WebSocket watchers run on it meanwhile.
        await asyncio.to_thread(own_db.stop)
        faults += 1
        if faults == 1:
            # Checked once: a gateway and a worker both say they are not ready.
            assert await not_ready(system.gateway)
            assert await not_ready(system["video"])
        else:
            await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(own_db.start)
    last_fault = time.monotonic()
    figures = await check(
        "database restarted", run, own_database, faults=faults, last_fault_at=last_fault
    )
    assert_sound(figures)
    assert figures.completed == N_JOBS
    processes.wait_ready(system)
