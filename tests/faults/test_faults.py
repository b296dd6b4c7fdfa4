"""Fault injection: N jobs run while a fault is injected again and again; afterwards
every job is completed or failed with a reason, none is lost or in progress, none made
a second chat call, paid for a second provider job or stored a second clip (counted at
the fake OpenRouter and in storage, see harness.check), and every WebSocket watcher saw
contiguous `seq` up to the final state. Each scenario prints its figures
(`pytest tests/faults -s`)."""

import asyncio
import time
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from common.events import JobStatus, JobStatusChanged, JobSubmitted, PromptReady, RoutingKey
from common.messaging import make_broker
from common.settings import CommonSettings
from common.topology import Topology
from tests.faults.harness import (
    CHAT,
    N_JOBS,
    POLL,
    assert_sound,
    chat_title,
    check,
    hold,
    leased,
    release,
    restart,
    submit_and_watch,
    wait_for_status,
)
from tests.support import client as user
from tests.support.fake_openrouter import FakeOpenRouter, Recorded
from tests.support.observe import metric
from tests.support.processes import System, wait_ready

pytestmark = pytest.mark.timeout(300)

# Slow enough that a kill lands in the middle of a call, and sure to.
CHAT_SECONDS = 2.0
POLL_SECONDS = 1.5
PROMPT_KILLS = 2
VIDEO_KILLS = 3
# A kill waits for a call this far into its answer, with none answered this recently
# (a call answered just before the kill may not have been saved yet).
INTO_CALL = 0.4
QUIET = 0.4


async def kill_mid_call(
    system: System,
    db: AsyncDatabase,
    fake: FakeOpenRouter,
    *,
    service: str,
    route: str,
    duration: float,
    held_by: Any,
    dead: set[str],
    quiet: bool,
) -> tuple[float, list[dict[str, Any]]]:
    """SIGKILL `service` (and start a new one) at a moment when it is in the middle of a
    call to `route` for a job it holds with a live lease: some call at least INTO_CALL
    seconds old; with `quiet`, also none about to be answered or answered in the last
    QUIET seconds (an answer the worker may not have saved yet would be lost with it).
    `held_by(in_flight)` gives the query of the jobs those calls are for. Returns the
    kill's time and the jobs the killed worker held."""

    async def moment() -> list[dict[str, Any]] | None:
        now = time.monotonic()
        calls = fake.calls(route)
        flying = [r for r in calls if r.answered_at is None]
        if not flying or max(now - r.at for r in flying) < INTO_CALL:
            return None
        if quiet:
            answered = [r.answered_at for r in calls if r.answered_at is not None]
            if (answered and now - max(answered) < QUIET) or any(
                now - r.at > duration - QUIET for r in flying
            ):
                return None
        jobs = await leased(db, held_by(flying), not_by=dead)
        return jobs or None

    held = await user.wait_for(moment, within=120, what=f"{service} mid-call", interval=0.05)
    killed_at = restart(system, service)
    dead.update(j["lease"]["holder"] for j in held)
    return killed_at, held


async def test_worker_killed_mid_job_and_restarted(
    fault_system: System,
    fault_api: httpx.AsyncClient,
    database: AsyncDatabase,
    fake: FakeOpenRouter,
) -> None:
    fake.delays[CHAT] = CHAT_SECONDS
    fake.delays[POLL] = POLL_SECONDS
    hold(fake)
    run = await submit_and_watch(fault_system, fault_api)
    ids = run.ids
    dead: set[str] = set()
    faults = 0

    # The prompt worker, while chat calls it makes are on their way.
    def prompting(flying: list[Recorded]) -> dict[str, Any]:
        texts = [chat_title(r) for r in flying]
        titles = [t for t in run.titles.values() if any(t in text for text in texts)]
        return {"_id": {"$in": ids}, "title": {"$in": titles}, "status": "prompting"}

    prompt_kills = []
    for _ in range(PROMPT_KILLS):
        killed_at, held = await kill_mid_call(
            fault_system,
            database,
            fake,
            service="prompt",
            route=CHAT,
            duration=CHAT_SECONDS,
            held_by=prompting,
            dead=dead,
            quiet=True,
        )
        prompt_kills.append(killed_at)
        faults += 1
        print(f"[faults] prompt worker killed holding {len(held)} job(s) in prompting")

    # The video worker, while it polls provider jobs it holds (every job submitted by
    # then: a kill during POST /videos would fail the job as provider_unconfirmed).
    async def all_submitted() -> bool:
        return await database["jobs"].count_documents(
            {"_id": {"$in": ids}, "provider_job.id": {"$exists": True}}
        ) == len(ids)

    await user.wait_for(all_submitted, within=120, what="every job submitted to the provider")

    def polling(flying: list[Recorded]) -> dict[str, Any]:
        video_ids = [r.path.split("/")[2] for r in flying]
        return {"_id": {"$in": ids}, "provider_job.id": {"$in": video_ids}, "status": "generating"}

    for _ in range(VIDEO_KILLS):
        _, held = await kill_mid_call(
            fault_system,
            database,
            fake,
            service="video",
            route=POLL,
            duration=POLL_SECONDS,
            held_by=polling,
            dead=dead,
            quiet=False,
        )
        faults += 1
        print(f"[faults] video worker killed holding {len(held)} job(s) in generating")
    last_fault = time.monotonic()
    release(fake)
    figures = await check(
        "worker SIGKILL",
        run,
        database,
        fake,
        fault_system,
        faults=faults,
        last_fault_at=last_fault,
        prompt_kills=prompt_kills,
    )
    assert_sound(figures)
    assert figures.completed == N_JOBS
    # The calls killed in flight were made again, and only those.
    assert figures.chat_calls == N_JOBS + figures.chat_answers_lost
    assert figures.chat_answers_lost >= PROMPT_KILLS
    assert figures.paid_jobs == N_JOBS


async def test_duplicated_and_reordered_events(
    fault_system: System,
    fault_api: httpx.AsyncClient,
    database: AsyncDatabase,
    fake: FakeOpenRouter,
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
        await wait_for_status(database, run.ids, "completed", 120)
        for accepted in run.accepted:
            await send(PromptReady(job_id=accepted["id"]), RoutingKey.PROMPT_READY)
            faults += 1
    figures = await check(
        "duplicated and reordered events",
        run,
        database,
        fake,
        fault_system,
        faults=faults,
        last_fault_at=last_fault,
    )
    assert_sound(figures)
    assert figures.completed == N_JOBS
    assert figures.chat_calls == N_JOBS and figures.paid_jobs == N_JOBS

    # The services count the same: one prompt written and one clip made per job.
    def ok(labels: dict[str, str]) -> bool:
        return labels["outcome"] == "ok"

    assert await metric(fault_system["prompt"], "pv_provider_calls_total", ok) == N_JOBS
    assert await metric(fault_system["video"], "pv_provider_calls_total", ok) == N_JOBS
    await asyncio.to_thread(wait_ready, fault_system)
