"""Keeps the database and the broker consistent, and no job in progress forever.

A job can be stored while its work event never reached the broker (a crash or a broker
outage between the two writes), or its worker can die holding it. Every worker runs this
loop; a lease document in MongoDB (`locks`, `_id: "reconciler"`) lets one replica act at a
time. Each round it looks at every non-final job and

- fails it as `timeout` ("timed out in <status>") when it has been in its status longer
  than that status's deadline (`STAGE_DEADLINES`);
- otherwise, when nothing happened to it for `RECONCILE_STALE_SECONDS`, no live worker
  holds its lease and no delayed retry is due, re-publishes the work event of its stage
  (`Pipeline.redrive`). Handlers are idempotent, so re-driving is always safe.

Then it looks at batches: one whose jobs are all final but whose end nobody claimed (the
last job's worker died before checking) is ended and announced; one claimed but left
unannounced for `RECONCILE_STALE_SECONDS` (a crash between the claim and the publish) has
its `batch.completed` published now.
"""

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from common.events import FINAL_STATUSES, JobStatus
from common.jobs import Job, JobRepository, now
from common.logs import job_id_var
from common.metrics import RECONCILER_ACTIONS
from common.pipeline import Pipeline
from common.settings import CommonSettings

log = logging.getLogger(__name__)

LOCK_ID = "reconciler"
ACTIVE = [s.value for s in JobStatus if s not in FINAL_STATUSES]


def stage_started(job: Job) -> datetime:
    """When the job entered its current status (progress steps within it do not count)."""
    started = job.get("updated_at") or job["created_at"]
    for entry in reversed(job.get("history") or []):
        if entry["status"] != job["status"]:
            break
        started = entry["at"]
    return started


class Reconciler:
    def __init__(
        self, settings: CommonSettings, repo: JobRepository, pipeline: Pipeline, holder: str
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.pipeline = pipeline
        self.holder = holder
        self.locks = repo.jobs.database["locks"]

    async def acquire(self) -> bool:
        """Take or keep the lock for a few rounds; False when another replica holds it."""
        until = now() + timedelta(seconds=self.settings.reconcile_interval_seconds * 3)
        try:
            lock = await self.locks.find_one_and_update(
                {
                    "_id": LOCK_ID,
                    "$or": [{"holder": self.holder}, {"until": {"$lt": now()}}],
                },
                {"$set": {"holder": self.holder, "until": until}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the lock exists and is another replica's
            return False
        return lock is not None and lock.get("holder") == self.holder

    async def release(self) -> None:
        await self.locks.delete_one({"_id": LOCK_ID, "holder": self.holder})

    async def run_once(self) -> dict[str, int]:
        """One pass over the non-final jobs; counts of what was done, by action."""
        done = {"timed_out": 0, "redriven": 0, "batch_announced": 0}
        stamp = now()
        stale = timedelta(seconds=self.settings.reconcile_stale_seconds)
        cursor = self.repo.jobs.find(
            {"status": {"$in": ACTIVE}},
            {
                "status": 1,
                "seq": 1,
                "history": 1,
                "lease": 1,
                "retry_at": 1,
                "reconciled_at": 1,
                "updated_at": 1,
                "created_at": 1,
            },
        )
        async for job in cursor:
            token = job_id_var.set(job["_id"])  # its log lines name the job
            try:
                action = await self._reconcile(job, stamp, stale)
            finally:
                job_id_var.reset(token)
            if action:
                done[action] += 1
                RECONCILER_ACTIONS.labels(action=action, status=job["status"]).inc()
        done["batch_announced"] = await self._announce_batches(stamp - stale)
        return done

    async def _announce_batches(self, ended_before: datetime) -> int:
        """Batches whose `batch.completed` was missed: ended unclaimed, or claimed and
        never published. The number announced."""
        batches = self.pipeline.batches
        announced = 0
        async for batch in batches.maybe_ended():
            if await self.pipeline.end_batch_if_done(batch["_id"]):
                announced += 1
                RECONCILER_ACTIONS.labels(action="batch_announced", status=batch["status"]).inc()
        async for batch in batches.unannounced(ended_before):
            log.info("batch %s ended unannounced; announcing it", batch["_id"])
            await self.pipeline.announce_batch(batch["_id"])
            announced += 1
            RECONCILER_ACTIONS.labels(action="batch_announced", status=batch["status"]).inc()
        return announced

    async def _reconcile(self, job: Job, stamp: datetime, stale: timedelta) -> str | None:
        status = job["status"]
        deadline = self.settings.stage_deadlines.get(status)
        if deadline is not None and stamp - stage_started(job) > timedelta(seconds=deadline):
            failed = await self.pipeline.fail(
                job["_id"],
                code="timeout",
                detail=f"timed out in {status}",
                expected=[JobStatus(status)],
            )
            if failed is not None:
                log.warning("job %s timed out in %s", job["_id"], status)
                return "timed_out"
            return None
        lease: dict[str, Any] | None = job.get("lease")
        if lease and lease["until"] > stamp:
            return None  # a live worker has it
        if job.get("retry_at") and job["retry_at"] > stamp - stale:
            return None  # its event waits in a retry queue
        last = max(t for t in (job.get("updated_at"), job.get("reconciled_at")) if t)
        if stamp - last < stale:
            return None
        # Marked first: if the publish fails the next round tries again after `stale`.
        marked = await self.repo.jobs.update_one(
            {"_id": job["_id"], "status": status, "seq": job["seq"]},
            {"$set": {"reconciled_at": stamp}},
        )
        if marked.modified_count != 1:
            return None  # it moved meanwhile: not stale after all
        if await self.pipeline.redrive(job):
            log.info(
                "job %s was stale in %s; its work event is published again", job["_id"], status
            )
            return "redriven"
        return None

    async def run(self) -> None:
        """Forever: every interval, act if this replica holds the lock."""
        interval = self.settings.reconcile_interval_seconds
        try:
            while True:
                try:
                    if await self.acquire():
                        await self.run_once()
                except (PyMongoError, OSError) as e:
                    log.warning("reconciler round skipped: %s: %s", type(e).__name__, e)
                except Exception:  # a bug here must not end the loop of a healthy worker
                    log.exception("reconciler round failed")
                await asyncio.sleep(interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.release())
