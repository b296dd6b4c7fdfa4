"""Fair shares of a worker pool between owners (docs/scheduling.md).

The work queues are FIFO, so an owner's batch of hundreds sits in front of everyone
else's job. Before a worker starts the job of the event it was handed, it asks
`owed_instead`: does another owner have a job ready for this stage while holding fewer
of the stage's jobs than this job's owner? If so, that job gets the slot now (the worker
claims it the usual way, `JobRepository.claim`) and the event it was handed goes back to
the end of the queue. The owed job's own event, when it comes, finds its job taken and is
dropped as a duplicate, like any redelivery.

An owner alone, or no further ahead than anyone waiting, always keeps their turn, so a
batch still fills the whole pool when nobody else waits. Taking the owed job by its id
(instead of passing over every event in front of it) costs one swap per turn given, however
long the queue, and does not depend on the owed job's event being anywhere in particular.
"""

from dataclasses import dataclass

from pymongo.asynchronous.collection import AsyncCollection

from common.events import JobStatus


@dataclass(frozen=True)
class StagePool:
    """The statuses of one stage: a job `ready` for it waits for a slot; a job in one
    of `working` holds one (or waits on a provider, for OpenRouter's clips)."""

    ready: JobStatus
    working: tuple[JobStatus, ...]


async def owed_instead(jobs: AsyncCollection, *, job_id: str, stage: StagePool) -> str | None:
    """The job owed the slot that `job_id`'s event was handed, or None when `job_id` may
    go ahead (or is past its turn: running, a duplicate). One read while fewer than two
    owners have jobs ready (a ready job's owner is one of them, so nobody else waits);
    only then is the job itself read, for its owner."""
    waiting = [o for o in await jobs.distinct("owner", {"status": stage.ready.value}) if o]
    if len(waiting) < 2:
        return None
    job = await jobs.find_one({"_id": job_id}, {"owner": 1, "status": 1})
    owner = (job or {}).get("owner")
    if job is None or job.get("status") != stage.ready.value or not owner:
        return None
    return await _owed(jobs, owner=owner, waiting=[o for o in waiting if o != owner], stage=stage)


async def _owed(
    jobs: AsyncCollection, *, owner: str, waiting: list[str], stage: StagePool
) -> str | None:
    """The job that should take the next slot instead of one of `owner`'s: the oldest
    ready job of the `waiting` owner with the fewest jobs in the stage, if that is fewer
    than `owner` has; None when `owner`'s job may go ahead."""
    if not waiting:
        return None
    counts = {o: 0 for o in [owner, *waiting]}
    cursor = await jobs.aggregate(
        [
            {
                "$match": {
                    "status": {"$in": [s.value for s in stage.working]},
                    "owner": {"$in": list(counts)},
                }
            },
            {"$group": {"_id": "$owner", "n": {"$sum": 1}}},
        ]
    )
    async for row in cursor:
        counts[row["_id"]] = row["n"]
    neediest = min(waiting, key=lambda o: counts[o])
    if counts[neediest] >= counts[owner]:
        return None
    # Whatever its `retry_at` says: on a ready job that is only a duplicate event's hint
    # (a provider's backoff is waited out by jobs already working, never by ready ones).
    job = await jobs.find_one(
        {"status": stage.ready.value, "owner": neediest},
        {"_id": 1},
        sort=[("updated_at", 1)],
    )
    return None if job is None else str(job["_id"])
