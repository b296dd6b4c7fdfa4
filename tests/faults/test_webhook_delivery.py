"""Webhooks under faults: 50 jobs complete while the notifier (the worker that sends the
deliveries) is SIGKILLed twice and RabbitMQ is restarted once. Every `job.completed`
reaches the customer's endpoint at least once, each job's event under one `webhook-id`
(a receiver drops the duplicates by it), every signature valid, none lost.

The jobs end the way the video worker ends them (`common.pipeline`: the transition
stored, then `job.completed` published; a publish that fails is made again, as the
worker's redelivered message does), on a RabbitMQ node of the scenario's own; the
gateway and the notifier run as real processes."""

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from standardwebhooks import Webhook

from common.jobs import JobRepository
from common.messaging import Publishers, make_broker
from common.pipeline import Pipeline
from common.settings import CommonSettings
from common.topology import Topology
from tests.conftest import _run
from tests.faults.harness import restart
from tests.faults.test_broker_restart import RabbitNode, own_broker  # noqa: F401 (fixture)
from tests.support import client as user
from tests.support import processes
from tests.support.finished_jobs import complete_job
from tests.support.receiver import Answer, Receiver

pytestmark = pytest.mark.timeout(300)

N_JOBS = 50
WEBHOOK_ENV = {
    "OUTBOUND_ALLOW_PRIVATE": "true",  # the receiver listens on loopback
    "WEBHOOK_RETRY_DELAYS": "[0.5, 1, 2]",
    "WEBHOOK_POLL_SECONDS": "0.5",
    "WEBHOOK_TIMEOUT_SECONDS": "3",
    # A delivery claimed by a killed notifier is sent again after this.
    "WEBHOOK_LEASE_SECONDS": "5",
}


@pytest.fixture
def webhook_system(
    request: pytest.FixtureRequest,
    system_env: dict[str, str],
    own_broker: RabbitNode,  # noqa: F811
    tmp_path: Path,
) -> Iterator[processes.System]:
    env = {**system_env, **WEBHOOK_ENV, "AMQP_URL": own_broker.url}
    yield from _run(request, env, tmp_path / "logs", ("gateway", "notifier"))


async def test_every_event_is_delivered_through_kills_and_a_broker_restart(
    webhook_system: processes.System,
    own_broker: RabbitNode,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = webhook_system
    for key, value in system.env.items():
        monkeypatch.setenv(key, value)
    settings = CommonSettings()
    async with (
        Receiver(lambda _: Answer(200, delay=0.2)) as receiver,
        httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api,
    ):
        email = user.new_email()
        api.headers["Authorization"] = f"Bearer {await user.sign_in(api, email)}"
        created = await api.post(
            f"{user.API}/webhook-endpoints",
            json={"url": f"{receiver.url}/hooks", "events": ["job.completed"]},
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()

        broker = make_broker(settings)
        topology = Topology(settings)
        publishers = Publishers(broker, topology)
        client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
        db = client[settings.mongodb_database]
        repo = JobRepository(db)
        await broker.start()
        try:

            async def produce() -> list[str]:
                ids = []
                for _ in range(N_JOBS):
                    ids.append(await complete_job(repo, Pipeline(repo, publishers), email))
                    await asyncio.sleep(0.1)
                return ids

            producer = asyncio.create_task(produce())

            async def received_at_least(n: int) -> None:
                await receiver.wait_for(n, within=120)

            await received_at_least(5)
            restart(system, "notifier")  # SIGKILL, mid-send most likely
            await received_at_least(15)
            await asyncio.to_thread(own_broker.restart_app, 2.0)
            await received_at_least(25)
            restart(system, "notifier")
            last_fault = time.monotonic()
            ids = await producer
            live = processes.System(system.env, {n: system[n] for n in ("gateway", "notifier")})
            await asyncio.to_thread(processes.wait_ready, live)

            async def all_arrived() -> bool:
                seen = {r.json()["data"]["id"] for r in receiver.received}
                return seen >= set(ids)

            await user.wait_for(all_arrived, within=120, what="every job's webhook")
            recovery = time.monotonic() - last_fault
        finally:
            await broker.stop()

        webhook_ids: dict[str, set[str]] = defaultdict(set)
        verifier = Webhook(endpoint["secret"])
        for request in receiver.received:
            payload: dict[str, Any] = verifier.verify(request.body, request.headers)
            assert payload["type"] == "job.completed"
            webhook_ids[payload["data"]["id"]].add(request.headers["webhook-id"])
        assert set(webhook_ids) == set(ids)
        doubled = {job: hooks for job, hooks in webhook_ids.items() if len(hooks) != 1}
        assert doubled == {}, "a job's event went out under more than one webhook-id"
        deliveries = db["webhook_deliveries"]

        async def all_recorded() -> bool:  # the last answers are being written
            query = {"endpoint_id": endpoint["id"], "status": "delivered"}
            return await deliveries.count_documents(query) == N_JOBS

        await user.wait_for(all_recorded, within=30, what="every delivery recorded")
        assert await deliveries.count_documents({"endpoint_id": endpoint["id"]}) == N_JOBS
        await client.close()
        print(
            f"[faults] webhooks: jobs={N_JOBS} faults=3 requests={len(receiver.received)} "
            f"(duplicates {len(receiver.received) - N_JOBS}, dropped by webhook-id) "
            f"recovery={recovery:.1f}s"
        )
