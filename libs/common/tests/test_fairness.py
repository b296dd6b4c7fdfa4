"""Which job is owed the next slot of a worker pool, against a real MongoDB-protocol server."""

from datetime import UTC, datetime, timedelta

from common.events import JobStatus
from common.fairness import StagePool, owed_instead
from common.jobs import new_job_id

POOL = StagePool(ready=JobStatus.PROMPT_READY, working=(JobStatus.GENERATING, JobStatus.STORING))
READY = JobStatus.PROMPT_READY
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _jobs(db, owner: str, status: JobStatus, n: int, minute: int = 0) -> list[str]:  # type: ignore[no-untyped-def]
    ids = [new_job_id() for _ in range(n)]
    at = T0 + timedelta(minutes=minute)
    await db["jobs"].insert_many(
        [{"_id": i, "owner": owner, "status": status.value, "updated_at": at} for i in ids]
    )
    return ids


async def _owed(db, owner: str) -> str | None:  # type: ignore[no-untyped-def]
    """What a worker handed one of `owner`'s ready jobs is told to take instead."""
    job = await db["jobs"].find_one({"owner": owner, "status": READY.value})
    assert job is not None, f"{owner} has no job ready"
    return await owed_instead(db["jobs"], job_id=job["_id"], stage=POOL)


async def test_an_owner_alone_keeps_every_turn(mongo_db) -> None:
    await _jobs(mongo_db, "a", READY, 50)
    await _jobs(mongo_db, "a", JobStatus.GENERATING, 2)
    await _jobs(mongo_db, "a", JobStatus.STORING, 1)
    assert await _owed(mongo_db, "a") is None


async def test_the_turn_goes_to_the_oldest_job_of_the_owner_with_the_fewest_running(
    mongo_db,
) -> None:
    await _jobs(mongo_db, "a", READY, 50)
    await _jobs(mongo_db, "a", JobStatus.GENERATING, 2)
    await _jobs(mongo_db, "b", JobStatus.GENERATING, 1)
    await _jobs(mongo_db, "b", READY, 1, minute=1)
    c_later = await _jobs(mongo_db, "c", READY, 1, minute=3)
    c_first = await _jobs(mongo_db, "c", READY, 1, minute=2)
    assert await _owed(mongo_db, "a") == c_first[0]  # c runs none, b one, a two
    assert await _owed(mongo_db, "c") is None  # c has the fewest: its own job goes
    await _jobs(mongo_db, "c", JobStatus.STORING, 1)
    assert await _owed(mongo_db, "a") in {c_later[0], *await _b_ready(mongo_db)}
    assert await _owed(mongo_db, "b") is None  # one each: first come, first served


async def _b_ready(db) -> list[str]:  # type: ignore[no-untyped-def]
    return [j["_id"] async for j in db["jobs"].find({"owner": "b", "status": READY.value})]


async def test_finished_jobs_and_owners_with_nothing_ready_do_not_count(mongo_db) -> None:
    await _jobs(mongo_db, "a", READY, 5)
    await _jobs(mongo_db, "b", JobStatus.GENERATING, 3)  # b runs but waits for nothing
    await _jobs(mongo_db, "c", JobStatus.COMPLETED, 4)
    c_ready = await _jobs(mongo_db, "c", READY, 1)
    assert await _owed(mongo_db, "a") is None  # c waits, but a runs nothing either
    await _jobs(mongo_db, "a", JobStatus.GENERATING, 1)
    assert await _owed(mongo_db, "a") == c_ready[0]


async def test_a_ready_job_with_a_retry_hint_still_gets_its_turn(mongo_db) -> None:
    # A duplicate of B's event, found busy while B's job was given its turn in the stage
    # before, leaves `retry_at` ahead on the job: B's turn here must not wait for it.
    await _jobs(mongo_db, "a", READY, 5)
    await _jobs(mongo_db, "a", JobStatus.GENERATING, 1)
    b_ready = await _jobs(mongo_db, "b", READY, 1)
    later = datetime.now(UTC) + timedelta(minutes=2)
    await mongo_db["jobs"].update_one({"_id": b_ready[0]}, {"$set": {"retry_at": later}})
    assert await _owed(mongo_db, "a") == b_ready[0]


async def test_the_turn_asked_for_by_a_job_id(mongo_db) -> None:
    # What a worker asks with the event it was handed: the same answer as for its owner,
    # and none for a job past its turn (working, a poll) or unknown.
    a_ready = await _jobs(mongo_db, "a", READY, 3)
    a_working = await _jobs(mongo_db, "a", JobStatus.GENERATING, 1)

    async def instead(job_id: str) -> str | None:
        return await owed_instead(mongo_db["jobs"], job_id=job_id, stage=POOL)

    assert await instead(a_ready[0]) is None  # a alone waits
    b_ready = await _jobs(mongo_db, "b", READY, 1)
    assert await instead(a_ready[0]) == b_ready[0]  # b runs none, a one
    assert await instead(b_ready[0]) is None
    assert await instead(a_working[0]) is None
    assert await instead("no-such-job") is None
