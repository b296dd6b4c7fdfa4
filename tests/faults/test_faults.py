"""Fault injection: N jobs run while a fault is injected again and again; afterwards
every job is completed or failed with a reason, none is lost or in progress, none made
a stage twice, and every WebSocket watcher saw contiguous `seq` up to the final state.
Each scenario prints its figures (`pytest tests/faults -s`)."""

import asyncio
import time

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from common.events import JobStatus, JobStatusChanged, JobSubmitted, PromptReady, RoutingKey
from common.messaging import make_broker
from common.settings import CommonSettings
from common.topology import Topology
from tests.faults.harness import (
    N_JOBS,
    check,
    restart,
    submit_and_watch,
    wait_for_status,
)
from tests.support.observe import metric
from tests.support.processes import System, wait_ready

pytestmark = pytest.mark.timeout(300)


def assert_sound(figures) -> None:  # type: ignore[no-untyped-def]
    assert figures.lost == 0 and figures.duplicated == 0, figures.problems
    assert not figures.problems, figures.problems
    assert figures.completed + figures.failed_with_reason == figures.jobs


async def test_worker_killed_mid_job_and_restarted(
    fault_system: System, fault_api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    run = await submit_and_watch(fault_system, fault_api)
    ids = [a["id"] for a in run.accepted]
    faults = 0
    restart(fault_system, "prompt")  # while it works through the submissions
    faults += 1
    for _ in range(3):
        await wait_for_status(database, ids, "generating", within=90)
        await asyncio.sleep(0.3)  # mid-render
        restart(fault_system, "video")
        faults += 1
    last_fault = time.monotonic()
    figures = await check("worker SIGKILL", run, database, faults=faults, last_fault_at=last_fault)
    assert_sound(figures)
    assert figures.completed == N_JOBS


async def test_duplicated_and_reordered_events(
    fault_system: System, fault_api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    settings = CommonSettings(
        amqp_url=fault_system.env["AMQP_URL"], amqp_prefix=fault_system.env["AMQP_PREFIX"]
    )
    exchange = Topology(settings).exchange
    broker = make_broker(settings)
    run = await submit_and_watch(fault_system, fault_api)
    faults = 0
    async with broker:
        await broker.connect()

        async def send(event: object, key: RoutingKey) -> None:
            await broker.publish(
                event, exchange=exchange, routing_key=key.value, persist=True, mandatory=True
            )

        for accepted in run.accepted:
            job_id = accepted["id"]
            # Reordered: prompt.ready before the prompt exists, and a stale status event.
            await send(PromptReady(job_id=job_id), RoutingKey.PROMPT_READY)
            await send(
                JobStatusChanged(job_id=job_id, seq=1, status=JobStatus.QUEUED, progress=0),
                RoutingKey.JOB_STATUS,
            )
            # Duplicated: the submission twice more.
            await send(JobSubmitted(job_id=job_id), RoutingKey.JOB_SUBMITTED)
            await send(JobSubmitted(job_id=job_id), RoutingKey.JOB_SUBMITTED)
            faults += 4
        last_fault = time.monotonic()
        # And every work event once more after the jobs moved on.
        await wait_for_status(database, [a["id"] for a in run.accepted], "completed", 120)
        for accepted in run.accepted:
            await send(PromptReady(job_id=accepted["id"]), RoutingKey.PROMPT_READY)
            faults += 1
    figures = await check(
        "duplicated and reordered events", run, database, faults=faults, last_fault_at=last_fault
    )
    assert_sound(figures)
    assert figures.completed == N_JOBS
    # One prompt call and one render per job, whatever arrived twice.
    assert await metric(fault_system["prompt"], "pv_provider_calls_total") == N_JOBS
    assert await metric(fault_system["video"], "pv_provider_calls_total") == N_JOBS
    wait_ready(fault_system)
