"""Keeping a job's lease while its clip is made, so no other worker takes it over."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
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

    async def renew() -> bool:
        return await repo.renew_lease(job_id, holder=holder, lease_seconds=seconds)

    return await renewing(renew, seconds=seconds, work=work, lost=LeaseLost(job_id))


async def renewing(
    renew: Callable[[], Awaitable[bool]],
    *,
    seconds: float,
    work: Awaitable[T],
    lost: Exception,
) -> T:
    """Run `work`, calling `renew` every third of `seconds`; when it answers False (the
    lease is someone else's now), cancel the work and raise `lost`. Any lease: a job's,
    a product's (services/prompt products.py)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=seconds / 3)
            if done:
                return task.result()
            if not await renew():
                raise lost
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
