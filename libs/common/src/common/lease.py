"""Keeping a job's lease while its clip is made, so no other worker takes it over."""

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from common.jobs import JobRepository

T = TypeVar("T")


class LeaseLost(Exception):
    """Another worker holds the job now (our lease ran out): stop and leave it to them."""


async def holding_lease(
    repo: JobRepository, job_id: str, *, holder: str, seconds: float, work: Awaitable[T]
) -> T:
    """Run `work`, renewing the lease every third of its length; if a renewal finds the
    lease taken, cancel the work and raise LeaseLost."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=seconds / 3)
            if done:
                return task.result()
            if not await repo.renew_lease(job_id, holder=holder, lease_seconds=seconds):
                raise LeaseLost(job_id)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
