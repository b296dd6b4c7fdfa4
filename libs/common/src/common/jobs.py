"""The job repository: job documents in MongoDB and their status machine.

Every status change is one atomic conditional update on the expected current
status (an update pipeline that also increments `seq`), so concurrent or duplicated
handlers can never both win, and every change appends `{seq, status, progress, at}`
to `history` in the same write: the notifier replays it so that a watcher misses no
step.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.events import FINAL_STATUSES, JobStatus

Job = dict[str, Any]

# One document per owner with a running-jobs limit: `{_id: owner, jobs: [{j: job id, g:
# the job's retries when taken, t: when}]}`, one entry per unfinished job (the gateway's
# `Limiter.reserve` adds it; a job that reaches a final status pulls its own).
RUNNING_JOBS = "running_jobs"


def now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class ClaimOutcome(Enum):
    CLAIMED = "claimed"  # moved from the ready status into the stage: start the work
    RESUMED = "resumed"  # the stage's earlier holder died (lease expired): resume the work
    BUSY = "busy"  # another live holder works on it: try again after its lease
    DONE = "done"  # the job is past this stage (or final): a duplicate, drop it


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    job: Job | None
    retry_in: float = 0.0


class JobRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.jobs = db["jobs"]
        self.running = db[RUNNING_JOBS]

    async def create(self, job: Job) -> tuple[Job, bool]:
        """Insert a new job; with an idempotency key already used by the owner,
        return that job instead. Returns (job, created)."""
        stamp = now()
        doc = {
            "status": JobStatus.QUEUED.value,
            "progress": 0,
            "seq": 1,
            "attempts": 0,
            "history": [{"seq": 1, "status": JobStatus.QUEUED.value, "progress": 0, "at": stamp}],
            "created_at": stamp,
            "updated_at": stamp,
            **job,
        }
        try:
            await self.jobs.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.jobs.find_one(
                {"owner": doc["owner"], "idempotency_key": doc.get("idempotency_key")}
            )
            if existing is None:  # the clash was on _id, not on the key
                raise
            return existing, False
        return doc, True

    async def get(self, job_id: str) -> Job | None:
        return await self.jobs.find_one({"_id": job_id})

    async def transition(
        self,
        job_id: str,
        *,
        expected: Iterable[JobStatus],
        to: JobStatus,
        progress: int | None,
        fields: dict[str, Any] | None = None,
        unset: Iterable[str] = (),
        holder: str | None = None,
    ) -> Job | None:
        """Move the job to `to` if its status is one of `expected` (and, with `holder`,
        while that holder has its lease); None if it is not (a duplicate or late message,
        a lease lost). Progress-only changes use the same status in both; `progress=None`
        keeps the job's own.

        One round trip: an update pipeline matches the expected status, increments `seq`
        and appends the history entry with the new `seq` in the same atomic write, so no
        read comes first and concurrent writers are ordered by the database (every field
        value goes in as a `$literal`: a user's text is never read as an expression)."""
        stamp = now()
        kept = "$progress" if progress is None else {"$literal": progress}
        step: dict[str, Any] = {
            "status": {"$literal": to.value},
            "progress": kept,
            "seq": {"$add": ["$seq", 1]},
            "updated_at": {"$literal": stamp},
            **{name: {"$literal": value} for name, value in (fields or {}).items()},
        }
        entry = {"seq": "$seq", "status": "$status", "progress": "$progress", "at": "$updated_at"}
        pipeline: list[dict[str, Any]] = [
            {"$set": step},
            {"$set": {"history": {"$concatArrays": [{"$ifNull": ["$history", []]}, [entry]]}}},
        ]
        if unset:
            pipeline.append({"$unset": list(unset)})
        where: dict[str, Any] = {"_id": job_id, "status": {"$in": [s.value for s in expected]}}
        if holder is not None:
            where["lease.holder"] = holder
        updated: Job | None = await self.jobs.find_one_and_update(
            where,
            pipeline,
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None and to in FINAL_STATUSES and updated.get("running_slot"):
            await self.release_running(updated)
        return updated

    async def release_running(self, job: Job) -> None:
        """Give back the running-jobs slot of a job that has ended (idempotent; a slot
        lost to a crash right before this is found and dropped by the gateway)."""
        await self.running.update_one(
            {"_id": job["owner"]},
            {"$pull": {"jobs": {"j": job["_id"], "g": job.get("retries", 0)}}},
        )

    async def claim(
        self,
        job_id: str,
        *,
        ready: JobStatus,
        working: tuple[JobStatus, ...],
        progress: int,
        lease_seconds: float,
        holder: str,
        resume_only: bool = False,
    ) -> Claim:
        """Take the job's stage: from `ready` into `working[0]`, or take over a
        `working` job whose holder's lease ran out (its worker died) or was handed back
        (the next poll of a provider's job). One round trip either way: the update
        pipeline moves the status (with its `seq` and history entry) only when the job
        was `ready`, and says which it was in the lease (`lease.resumed`).
        `resume_only` (a poll coming back): a `ready` job is not taken (DONE for this
        delivery): it was retried meanwhile, and its own event takes it in turn."""
        stamp = now()
        working_values = [s.value for s in working]
        takes = working_values if resume_only else [ready.value, *working_values]
        was_ready = {"$eq": ["$status", ready.value]}
        entry = {
            "seq": {"$add": ["$seq", 1]},
            "status": {"$literal": working[0].value},
            "progress": {"$literal": progress},
            "at": {"$literal": stamp},
        }
        history = {"$concatArrays": [{"$ifNull": ["$history", []]}, [entry]]}
        lease = {
            "holder": {"$literal": holder},
            "until": {"$literal": stamp + timedelta(seconds=lease_seconds)},
            "resumed": {"$not": [was_ready]},
        }
        # No `$or` in the filter: SecantusDB then scans the collection instead of using
        # the `_id` index (a claim took 10 ms of its CPU with 300 jobs, 2.5 ms with 30). A
        # job that is `ready` carries no lease (every move into a ready status drops it).
        job = await self.jobs.find_one_and_update(
            {
                "_id": job_id,
                "status": {"$in": takes},
                "lease.until": {"$not": {"$gte": stamp}},  # none, or run out
            },
            [
                {
                    "$set": {
                        "status": {"$cond": [was_ready, working[0].value, "$status"]},
                        "progress": {"$cond": [was_ready, progress, "$progress"]},
                        "seq": {"$cond": [was_ready, {"$add": ["$seq", 1]}, "$seq"]},
                        "history": {"$cond": [was_ready, history, "$history"]},
                        "lease": lease,
                        "updated_at": {"$literal": stamp},
                    }
                }
            ],
            return_document=ReturnDocument.AFTER,
        )
        if job is not None:
            resumed = job["lease"].get("resumed")
            return Claim(ClaimOutcome.RESUMED if resumed else ClaimOutcome.CLAIMED, job)
        job = await self.get(job_id)
        if job is None or job["status"] not in takes:
            return Claim(ClaimOutcome.DONE, job)
        held = job.get("lease")
        if held is None:  # handed back between our two reads: look again shortly
            return Claim(ClaimOutcome.BUSY, job, retry_in=1.0)
        remaining = (held["until"] - now()).total_seconds()
        return Claim(ClaimOutcome.BUSY, job, retry_in=max(remaining, 1.0))

    async def renew_lease(self, job_id: str, *, holder: str, lease_seconds: float) -> bool:
        result = await self.jobs.update_one(
            {"_id": job_id, "lease.holder": holder},
            {"$set": {"lease.until": now() + timedelta(seconds=lease_seconds)}},
        )
        return result.modified_count == 1

    async def update_fields(
        self,
        job_id: str,
        *,
        holder: str,
        fields: dict[str, Any],
        unless_submitted: bool = False,
    ) -> bool:
        """Save stage results (e.g. the provider's job id) while the caller holds the lease.
        `unless_submitted`: only while no provider submission is marked or saved, so of two
        handlers of one job (a redelivery in the same process shares its holder) only one
        ever sends a paid request."""
        where: dict[str, Any] = {"_id": job_id, "lease.holder": holder}
        if unless_submitted:
            where |= {"provider_job.status": {"$ne": "submitting"}, "provider_job.id": None}
        result = await self.jobs.update_one(where, {"$set": {**fields, "updated_at": now()}})
        return result.modified_count == 1

    async def record_submission(
        self, job_id: str, *, holder: str, provider_job: dict[str, Any]
    ) -> bool:
        """Save a paid provider job over this holder's own `submitting` mark, lease or
        not: a submission that outlived its cancelled handler must not lose what was paid
        for (nobody else touches the mark meanwhile: they wait for it)."""
        result = await self.jobs.update_one(
            {
                "_id": job_id,
                "provider_job.status": "submitting",
                "provider_job.holder": holder,
            },
            {"$set": {"provider_job": provider_job, "updated_at": now()}},
        )
        return result.modified_count == 1

    async def fail(
        self,
        job_id: str,
        *,
        code: str,
        message: str,
        retryable: bool = False,
        expected: Iterable[JobStatus] | None = None,
    ) -> Job | None:
        """Fail a job that is not final yet (or only in one of `expected`), saying why."""
        active = [s for s in JobStatus if s not in FINAL_STATUSES]
        return await self.transition(
            job_id,
            expected=active if expected is None else expected,
            to=JobStatus.FAILED,
            progress=None,
            fields={"error": {"code": code, "message": message, "retryable": retryable}},
            unset=["lease"],
        )

    async def record_attempt(
        self, job_id: str, *, holder: str, code: str, message: str
    ) -> int | None:
        """Count a failed attempt, remember its reason and drop our lease; returns the
        attempt count, or None when another worker holds a live lease on the job (this
        delivery was a duplicate: its failure is not that worker's)."""
        job = await self.jobs.find_one_and_update(
            {
                "_id": job_id,
                "$or": [
                    {"lease": {"$exists": False}},
                    {"lease.holder": holder},
                    {"lease.until": {"$lt": now()}},
                ],
            },
            {
                "$inc": {"attempts": 1},
                "$set": {"last_error": {"code": code, "message": message, "at": now()}},
                "$unset": {"lease": ""},
            },
            return_document=ReturnDocument.AFTER,
        )
        if job is None:
            return None if await self.jobs.count_documents({"_id": job_id}, limit=1) else 0
        return int(job["attempts"])

    async def schedule_retry(self, job_id: str, *, seconds: float) -> None:
        """Note when a delayed retry is due, so the reconciler leaves the job alone
        until then (its event waits in a retry queue, it is not lost)."""
        await self.jobs.update_one(
            {"_id": job_id}, {"$set": {"retry_at": now() + timedelta(seconds=seconds)}}
        )

    async def hand_back(self, job_id: str, *, holder: str, retry_in: float | None = None) -> bool:
        """Give up our lease at once (a worker shutting down mid-job), so the
        redelivered event is taken over without waiting for the lease to run out. With
        `retry_in`, also note when the event comes back (`schedule_retry`), in the same
        write: a provider's job polled again later."""
        update: dict[str, Any] = {"$unset": {"lease": ""}}
        if retry_in is not None:
            update["$set"] = {"retry_at": now() + timedelta(seconds=retry_in)}
        result = await self.jobs.update_one({"_id": job_id, "lease.holder": holder}, update)
        return result.modified_count == 1

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a job that is not final yet; None when it is (or does not exist).
        Dropping the lease makes a worker still busy with it stop at its next renewal."""
        active = [s for s in JobStatus if s not in FINAL_STATUSES]
        return await self.transition(
            job_id,
            expected=active,
            to=JobStatus.CANCELED,
            progress=None,
            fields={"canceled_at": now()},
            unset=["lease", "retry_at"],
        )

    async def retry(self, job_id: str) -> Job | None:
        """Restart a failed job from the stage that failed, keeping what is done: with
        a stored prompt it goes back to `prompt_ready`, else to `queued`. `history` and
        `seq` go on; the error, the attempt count and an unfinished provider job are reset
        (a retry the user asks for is a new attempt) and `retries` counts it. None unless
        the job has failed."""
        job = await self.get(job_id)
        if job is None or job["status"] != JobStatus.FAILED.value:
            return None
        has_prompt = bool((job.get("prompt") or {}).get("text"))
        to, progress = (JobStatus.PROMPT_READY, 30) if has_prompt else (JobStatus.QUEUED, 0)
        unset = ["error", "last_error", "lease", "retry_at", "video"]
        # A provider job that finished is paid for: the retry fetches its clip again.
        if (job.get("provider_job") or {}).get("status") != "completed":
            unset.append("provider_job")
        return await self.transition(
            job_id,
            expected=[JobStatus.FAILED],
            to=to,
            progress=progress,
            fields={"attempts": 0, "retried_at": now(), "retries": job.get("retries", 0) + 1},
            unset=unset,
        )
