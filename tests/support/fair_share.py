"""The fair-scheduling measurement (docs/scheduling.md), shared by the test and
`make bench-fair`: owner A queues a batch on the local renderer; while A is alone, how
many of the video worker's slots A's jobs hold; then owner B submits single jobs one after
another, and how long each waits from `queued` to `generating`, against how long one of A's
renders takes (`generating` → `completed`). B cancels each job once it has started, and
submits the next once A's jobs hold every slot again: so each try finds B idle and the pool
full of A's renders, and takes one of A's renders at most, not two."""

import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support.processes import System

# Short raw clips: the smallest duration, no finishing (captions, music), square; each one
# made anew (the same photo and text would otherwise reuse an earlier clip at once).
CLIP = {"aspect_ratio": "1:1", "duration": 3, "form": {"finish": "false", "regenerate": "true"}}
RUNNING = ["generating", "storing"]


@dataclass
class Figures:
    batch: int
    pool: int
    # A alone: A's jobs in the video stage, sampled every SAMPLE_EVERY seconds.
    busy_samples: list[int] = field(default_factory=list)
    # B: seconds from `queued` to `generating`, one per try.
    waits: list[float] = field(default_factory=list)
    # B: how many of A's jobs entered `generating` while B's job was ready for the stage
    # (`prompt_ready` → `generating`), one per try: first come, first served lets all of
    # A's queued jobs go first; a fair turn none, or one already being claimed.
    overtaken: list[int] = field(default_factory=list)
    # A: seconds from `generating` to `completed`, one per finished job.
    renders: list[float] = field(default_factory=list)
    # A's jobs still waiting for the video stage when B's last job started.
    a_waiting_at_end: int = 0
    # Jobs that entered `generating` more than once (a second render; progress updates
    # within the stage repeat its status in the history, they are not entries).
    rendered_twice: list[str] = field(default_factory=list)

    @property
    def render(self) -> float:
        return statistics.median(self.renders)

    @property
    def busy_share(self) -> float:
        """The share of samples in which A held every slot."""
        full = sum(1 for n in self.busy_samples if n >= self.pool)
        return full / len(self.busy_samples)


SAMPLE_EVERY = 0.25


def _at(job: dict[str, Any], status: str) -> datetime | None:
    return next((h["at"] for h in job.get("history", []) if h["status"] == status), None)


async def _started_between(jobs: Any, ids: list[str], after: datetime, before: datetime) -> int:
    """How many of the jobs entered `generating` between the two times."""
    started = 0
    async for job in jobs.find({"_id": {"$in": ids}}, {"history": 1}):
        at = _at(job, "generating")
        if at is not None and after < at < before:
            started += 1
    return started


async def _submit_batch(client: httpx.AsyncClient, photo: bytes, n: int) -> list[str]:
    gate = asyncio.Semaphore(4)

    async def one(i: int) -> str:
        async with gate:
            accepted = await user.submitted(client, photo, title=f"Mug no. {i}", **CLIP)
            return str(accepted["id"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def measure(
    system: System,
    db: AsyncDatabase,
    *,
    batch: int,
    tries: int,
    pool: int,
    alone_seconds: float = 4.0,
    wait_limit: float = 120.0,
    progress: bool = False,
) -> Figures:
    jobs = db["jobs"]
    figures = Figures(batch=batch, pool=pool)
    photo = user.product_photo(7)
    async with (
        httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as a,
        httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as b,
    ):
        owner_a, owner_b = user.new_email(), user.new_email()
        await user.sign_in(a, owner_a)
        b_token = await user.sign_in(b, owner_b)
        a_jobs = await _submit_batch(a, photo, batch)
        if progress:
            print(f"fair: A's {batch} jobs queued", flush=True)

        async def a_running() -> int:
            return await jobs.count_documents({"owner": owner_a, "status": {"$in": RUNNING}})

        async def pool_full() -> bool:
            return await a_running() >= pool

        await user.wait_for(pool_full, within=120, what="A's batch filling the pool")
        if progress:
            print("fair: A's jobs fill the pool", flush=True)
        deadline = time.monotonic() + alone_seconds
        while time.monotonic() < deadline:
            figures.busy_samples.append(await a_running())
            await asyncio.sleep(SAMPLE_EVERY)

        for n in range(tries):
            accepted = await user.submitted(b, photo, title=f"The one mug, take {n + 1}", **CLIP)
            job_id = accepted["id"]

            async def started(job_id: str = job_id) -> dict[str, Any] | None:
                job = await jobs.find_one({"_id": job_id})
                return job if job and _at(job, "generating") else None

            job = await user.wait_for(started, within=wait_limit, what=f"B's try {n + 1} started")
            queued, generating = _at(job, "queued"), _at(job, "generating")
            assert queued and generating
            figures.waits.append((generating - queued).total_seconds())
            ready = _at(job, "prompt_ready")
            assert ready
            figures.overtaken.append(await _started_between(jobs, a_jobs, ready, generating))
            if n == tries - 1:
                figures.a_waiting_at_end = await jobs.count_documents(
                    {"owner": owner_a, "status": {"$in": ["queued", "prompting", "prompt_ready"]}}
                )
            # B is done with it: cancelled, so B is idle again for the next try (and the
            # renderer lets the slot go at its next progress report).
            canceled = await b.post(f"{user.API}/jobs/{job_id}/cancel", headers=user.auth(b_token))
            assert canceled.status_code == 200, canceled.text
            # and A's jobs hold the whole pool again before B's next one (the slot B's job let
            # go must not be waiting for it).
            await user.wait_for(pool_full, within=wait_limit, what="A's jobs back in every slot")
            if progress:
                print(f"fair: B's try {n + 1}/{tries}: waited {figures.waits[-1]:.2f}s", flush=True)

    async for job in jobs.find({"_id": {"$in": [*a_jobs]}}):
        started_at, done_at = _at(job, "generating"), _at(job, "completed")
        if started_at and done_at:
            figures.renders.append((done_at - started_at).total_seconds())
    async for job in jobs.find({"owner": {"$in": [owner_a, owner_b]}}):
        steps = [h["status"] for h in job.get("history", [])]
        entered = [b for a, b in itertools.pairwise(steps) if a != b == "generating"]
        if len(entered) > 1:
            figures.rendered_twice.append(job["_id"])
    return figures
