"""RabbitMQ restarted again and again while 20 jobs run: the services reconnect by
themselves, all four say not ready (`/readyz` 503) while it is down, every job ends
completed or failed with a reason, none lost or doubled (harness.check), and a job
submitted after the last restart completes.

The scenario runs a RabbitMQ node of its own (its own node name, ports, data and logs;
the shared broker on 5672 is never touched) and restarts its `rabbit` application."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
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
from tests.support.fake_openrouter import FakeOpenRouter
from tests.support.rabbit_node import RabbitNode, private_node

pytestmark = pytest.mark.timeout(300)

RESTARTS = 3
DOWN_SECONDS = 2.0


@pytest.fixture
def own_broker() -> Iterator[RabbitNode]:
    with private_node("pvfault") as node:
        yield node


@pytest.fixture
def broker_fault_system(
    request: pytest.FixtureRequest,
    fault_env: dict[str, str],
    own_broker: RabbitNode,
    tmp_path: Path,
) -> Iterator[processes.System]:
    env = {**fault_env, "AMQP_URL": own_broker.url}
    yield from _run(request, env, tmp_path / "logs", processes.ALL)


@pytest.fixture
async def fault_client(broker_fault_system: processes.System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=broker_fault_system.gateway.url, timeout=30) as c:
        yield c


async def test_rabbitmq_restarted_mid_run(
    broker_fault_system: processes.System,
    fault_client: httpx.AsyncClient,
    own_broker: RabbitNode,
    database: AsyncDatabase,
    fake: FakeOpenRouter,
) -> None:
    system = broker_fault_system
    hold(fake)
    run = await submit_and_watch(system, fault_client)
    ids = run.ids

    await watchers_subscribed(system)
    faults = 0
    for _ in range(RESTARTS):
        await wait_for_status(database, ids, "generating", within=90)
        # Some provider jobs end now: their clips are stored and announced meanwhile.
        release(fake, N_JOBS // (RESTARTS + 1))
        if faults == 0:
            # Off the event loop: the WebSocket watchers run on it meanwhile.
            await asyncio.to_thread(own_broker.ctl, "stop_app")
            # Checked once: every service says it is not ready.
            await all_not_ready(system, processes.ALL)
            await asyncio.to_thread(own_broker.ctl, "start_app")
            await asyncio.to_thread(own_broker.wait_up)
        else:
            await asyncio.to_thread(own_broker.restart_app, DOWN_SECONDS)
        faults += 1
    last_fault = time.monotonic()
    release(fake)
    # After the last restart a new job goes all the way: the gateway publishes again and
    # the consumers resume.
    await asyncio.to_thread(processes.wait_ready, system)
    late = await submit_and_watch(system, fault_client, 1, first=N_JOBS)
    run.extend(late)
    figures = await check(
        "RabbitMQ restarted",
        run,
        database,
        fake,
        system,
        faults=faults,
        last_fault_at=last_fault,
    )
    assert_sound(figures)
    assert figures.completed == N_JOBS + 1
    processes.wait_ready(system)
