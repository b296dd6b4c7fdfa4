"""The job status machine against a real MongoDB-protocol server."""

import asyncio

from common import db
from common.events import JobStatus
from common.jobs import ClaimOutcome, JobRepository, new_job_id


def _job(**extra: object) -> dict[str, object]:
    return {
        "_id": new_job_id(),
        "owner": "anon:127.0.0.1",
        "title": "Mug",
        "description": "A mug",
        **extra,
    }


async def test_create_is_idempotent_per_owner_and_key(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    first, created = await repo.create(_job(idempotency_key="k1"))
    again, created_again = await repo.create(_job(idempotency_key="k1"))
    other, other_created = await repo.create(_job(idempotency_key="k1", owner="anon:10.0.0.9"))
    assert created and not created_again and other_created
    assert again["_id"] == first["_id"] and other["_id"] != first["_id"]
    # Jobs without a key never collide with each other.
    assert (await repo.create(_job()))[1] and (await repo.create(_job()))[1]


async def test_transition_applies_once_and_records_history(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    job, _ = await repo.create(_job())
    moved = await repo.transition(
        job["_id"], expected=[JobStatus.QUEUED], to=JobStatus.PROMPTING, progress=10
    )
    duplicate = await repo.transition(
        job["_id"], expected=[JobStatus.QUEUED], to=JobStatus.PROMPTING, progress=10
    )
    assert moved is not None and moved["seq"] == 2 and duplicate is None
    assert [(h["seq"], h["status"]) for h in moved["history"]] == [(1, "queued"), (2, "prompting")]


async def test_concurrent_transitions_have_one_winner(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    job, _ = await repo.create(_job())
    results = await asyncio.gather(
        *[
            repo.transition(
                job["_id"], expected=[JobStatus.QUEUED], to=JobStatus.PROMPTING, progress=10
            )
            for _ in range(8)
        ]
    )
    assert sum(r is not None for r in results) == 1
    stored = await repo.get(job["_id"])
    assert stored["seq"] == 2 and len(stored["history"]) == 2


async def test_claim_lease_busy_then_resumed_after_expiry(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    job, _ = await repo.create(_job())
    args = {"ready": JobStatus.QUEUED, "working": (JobStatus.PROMPTING,), "progress": 10}
    first = await repo.claim(job["_id"], holder="a", lease_seconds=0.3, **args)
    busy = await repo.claim(job["_id"], holder="b", lease_seconds=0.3, **args)
    assert first.outcome is ClaimOutcome.CLAIMED and busy.outcome is ClaimOutcome.BUSY
    await asyncio.sleep(0.4)
    resumed = await repo.claim(job["_id"], holder="b", lease_seconds=5, **args)
    assert resumed.outcome is ClaimOutcome.RESUMED
    assert resumed.job["lease"]["holder"] == "b" and resumed.job["seq"] == 2
    await repo.transition(
        job["_id"],
        expected=[JobStatus.PROMPTING],
        to=JobStatus.PROMPT_READY,
        progress=30,
        unset=["lease"],
    )
    done = await repo.claim(job["_id"], holder="c", lease_seconds=5, **args)
    assert done.outcome is ClaimOutcome.DONE


async def test_a_poll_coming_back_only_resumes_its_job(mongo_db) -> None:
    """A delivery marked as a job's return to its stage (a poll) resumes a job handed
    back in the stage, but does not take one found ready (retried meanwhile): that one
    waits for its own event, which takes a fair turn first."""
    repo = JobRepository(mongo_db)
    args = {"ready": JobStatus.QUEUED, "working": (JobStatus.PROMPTING,), "progress": 10}
    ready, _ = await repo.create(_job())
    skipped = await repo.claim(ready["_id"], holder="a", lease_seconds=5, resume_only=True, **args)
    assert skipped.outcome is ClaimOutcome.DONE
    assert (await repo.get(ready["_id"]))["status"] == "queued"  # untouched

    assert (await repo.claim(ready["_id"], holder="a", lease_seconds=5, **args)).outcome is (
        ClaimOutcome.CLAIMED
    )
    await repo.hand_back(ready["_id"], holder="a", retry_in=1)
    back = await repo.claim(ready["_id"], holder="a", lease_seconds=5, resume_only=True, **args)
    assert back.outcome is ClaimOutcome.RESUMED and back.job["status"] == "prompting"


async def test_fail_only_from_active_states_and_says_why(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    job, _ = await repo.create(_job())
    failed = await repo.fail(job["_id"], code="bad_image", message="The photo is unreadable.")
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "bad_image",
        "message": "The photo is unreadable.",
        "retryable": False,
    }
    assert await repo.fail(job["_id"], code="x", message="again") is None


async def test_a_duplicate_deliverys_failure_leaves_the_working_lease_alone(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    job, _ = await repo.create(_job())
    args = {"ready": JobStatus.QUEUED, "working": (JobStatus.PROMPTING,), "progress": 10}
    await repo.claim(job["_id"], holder="a", lease_seconds=30, **args)

    # Worker b's duplicate delivery failed (say its claim hit a database hiccup).
    assert await repo.record_attempt(job["_id"], holder="b", code="x", message="hiccup") is None
    kept = await repo.get(job["_id"])
    assert kept["lease"]["holder"] == "a" and kept.get("attempts", 0) == 0

    # a's own failure counts, and frees the job for the retry.
    assert await repo.record_attempt(job["_id"], holder="a", code="x", message="slow") == 1
    assert "lease" not in await repo.get(job["_id"])


async def test_a_paid_id_lands_on_its_own_submitting_mark_without_the_lease(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    job, _ = await repo.create(_job())
    args = {"ready": JobStatus.QUEUED, "working": (JobStatus.PROMPTING,), "progress": 10}
    await repo.claim(job["_id"], holder="a", lease_seconds=30, **args)
    mark = {"provider": "openrouter", "holder": "a", "status": "submitting"}
    assert await repo.update_fields(job["_id"], holder="a", fields={"provider_job": mark})
    await repo.hand_back(job["_id"], holder="a")  # a's handler was cancelled meanwhile

    paid = {"provider": "openrouter", "holder": "a", "id": "vid_1", "status": "pending"}
    assert not await repo.record_submission(job["_id"], holder="b", provider_job=paid)
    assert await repo.record_submission(job["_id"], holder="a", provider_job=paid)
    assert (await repo.get(job["_id"]))["provider_job"] == paid
    # Only over a mark: a saved id is never replaced this way.
    assert not await repo.record_submission(job["_id"], holder="a", provider_job=mark)


async def test_an_owners_list_has_an_index_for_its_order_and_the_old_one_goes(mongo_db) -> None:
    """`GET /api/v1/jobs` pages by (created_at, _id) newest first: the index holds both, and
    a database made before it loses the index it replaces."""
    jobs = mongo_db["jobs"]
    await jobs.drop_index("owner_created_id")
    await jobs.create_index([("owner", 1), ("created_at", -1)], name="owner_created")
    await db.ensure_indexes(mongo_db)
    await db.ensure_indexes(mongo_db)  # again, as every start does
    indexes = await jobs.index_information()
    assert "owner_created" not in indexes
    assert indexes["owner_created_id"]["key"] == [("owner", 1), ("created_at", -1), ("_id", -1)]


async def test_result_reuse_has_a_whole_index_and_the_partial_one_goes(mongo_db) -> None:
    """The lookup's index covers every job (SecantusDB uses no partial compound index), and
    a database made before it loses the partial index it replaces."""
    jobs = mongo_db["jobs"]
    await jobs.drop_index("owner_result_status")
    await jobs.create_index(
        [("owner", 1), ("result_key", 1), ("status", 1), ("updated_at", -1)],
        partialFilterExpression={"result_key": {"$type": "string"}},
        name="owner_result_key",
    )
    await db.ensure_indexes(mongo_db)
    await db.ensure_indexes(mongo_db)
    indexes = await jobs.index_information()
    assert "owner_result_key" not in indexes
    index = indexes["owner_result_status"]
    assert index["key"] == [("owner", 1), ("result_key", 1), ("status", 1), ("updated_at", -1)]
    assert "partialFilterExpression" not in index
