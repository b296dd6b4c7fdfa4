"""Status changes that are stored and then announced: the one way a service
moves a job, so no transition can forget its `job.status` event or metrics."""

import logging
from collections.abc import Iterable
from typing import Any

from common.batches import BatchRepository
from common.errors import user_message
from common.events import (
    BatchCompleted,
    JobCompleted,
    JobFailed,
    JobStatus,
    JobSubmitted,
    PromptReady,
    RoutingKey,
)
from common.jobs import Job, JobRepository, now
from common.messaging import Publishers
from common.metrics import JOB_SECONDS, JOBS_FINISHED, STAGE_SECONDS

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, repo: JobRepository, publishers: Publishers) -> None:
        self.repo = repo
        self.publishers = publishers
        self.batches = BatchRepository(repo.jobs.database)

    async def announce(self, job: Job) -> None:
        await self.publishers.status(job)

    async def _stored(self, job: Job) -> None:
        """After a transition was stored: time the status it left, then announce it."""
        _time_left_stage(job)
        await self.announce(job)

    async def announce_final_again(self, job: Job | None) -> None:
        """A duplicate delivery found the job final: say so once more, in case the first
        announcement was lost between the database write and the publish (watchers
        drop a `seq` they have already seen; webhook deliveries are keyed by the event
        and `seq`, so a second `job.completed` makes no second delivery)."""
        if job is not None and JobStatus(job["status"]).is_final:
            await self.announce(job)
            await self._announce_end(job)

    async def _announce_end(self, job: Job) -> None:
        """`job.completed` or `job.failed` for a job that ended so (none for canceled);
        then, for a job of a batch, the batch's end if this was its last job."""
        if job["status"] == JobStatus.COMPLETED:
            await self.publishers.job_completed.publish(JobCompleted(job_id=job["_id"]))
        elif job["status"] == JobStatus.FAILED:
            code = (job.get("error") or {}).get("code", "")
            await self.publishers.job_failed.publish(JobFailed(job_id=job["_id"], error_code=code))
        if job.get("batch_id"):
            await self.end_batch_if_done(job["batch_id"])

    async def end_batch_if_done(self, batch_id: str) -> bool:
        """Once every job of the batch is final: mark it ended and announce
        `batch.completed`. The conditional update in `claim_end` picks one announcer
        among racing callers; True for that one."""
        if await self.batches.claim_end(batch_id) is None:
            return False
        await self.announce_batch(batch_id)
        return True

    async def announce_batch(self, batch_id: str) -> None:
        """Publish `batch.completed`, then note it. A crash in between leaves the batch
        `announced: false` for the reconciler, which announces it (again, at worst:
        the webhook deliveries are keyed by batch, so a receiver gets one)."""
        await self.publishers.batch_completed.publish(BatchCompleted(batch_id=batch_id))
        await self.batches.mark_announced(batch_id)
        log.info("batch %s ended; batch.completed published", batch_id)

    async def advance(
        self,
        job_id: str,
        *,
        expected: Iterable[JobStatus],
        to: JobStatus,
        progress: int,
        fields: dict[str, Any] | None = None,
        unset: Iterable[str] = (),
        holder: str | None = None,
    ) -> Job | None:
        """Store the transition, then publish `job.status`; None when it did not apply
        (with `holder`: also when that holder no longer has the job's lease)."""
        job = await self.repo.transition(
            job_id,
            expected=expected,
            to=to,
            progress=progress,
            fields=fields,
            unset=unset,
            holder=holder,
        )
        if job is not None:
            await self._stored(job)
            if to is JobStatus.COMPLETED:
                self._count_final(job)
                await self._announce_end(job)
        return job

    async def fail(
        self,
        job_id: str,
        *,
        code: str,
        detail: str,
        retryable: bool = False,
        expected: Iterable[JobStatus] | None = None,
    ) -> Job | None:
        """Fail the job (not final yet, or in one of `expected`). Its owner reads the
        stable message of `code`; `detail` (a provider's answer, ffmpeg's output, an
        endpoint: words for operators) goes only to the log, with the job id."""
        job = await self.repo.fail(
            job_id, code=code, message=user_message(code), retryable=retryable, expected=expected
        )
        if job is not None:
            log.warning("job failed (%s): %s", code, detail, extra={"job_id": job_id})
            await self._stored(job)
            self._count_final(job)
            await self._announce_end(job)
        return job

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel the job (any non-final status) and announce it; None if it was final."""
        job = await self.repo.cancel(job_id)
        if job is not None:
            await self._stored(job)
            self._count_final(job)
            await self._announce_end(job)
        return job

    async def retry(self, job_id: str) -> Job | None:
        """Restart a failed job from its failed stage and publish that stage's work event."""
        job = await self.repo.retry(job_id)
        if job is not None:
            await self._stored(job)
            await self.redrive(job)
        return job

    async def redrive(self, job: Job) -> bool:
        """Publish the work event that moves the job on from where it stands (the
        handlers are idempotent, so a second one is harmless); False when none applies."""
        event = redrive_event(job["status"])
        if event is None:
            return False
        if event is RoutingKey.JOB_SUBMITTED:
            await self.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))
        else:
            await self.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
        return True

    @staticmethod
    def _count_final(job: Job) -> None:
        error_code = (job.get("error") or {}).get("code", "")
        JOBS_FINISHED.labels(status=job["status"], error_code=error_code).inc()
        JOB_SECONDS.labels(status=job["status"]).observe(
            (now() - job["created_at"]).total_seconds()
        )


def _time_left_stage(job: Job) -> None:
    """When the job has just left an active status, observe how long it was in it (from
    the first history entry of that status to the new one): the time per stage, waits
    and retries included, whichever service moved it on."""
    history = job.get("history") or []
    if len(history) < 2 or history[-1]["status"] == history[-2]["status"]:
        return  # a progress update within the status, or nothing left yet
    left = history[-2]["status"]
    if JobStatus(left).is_final:
        return  # a retry of a failed job: not a stage
    entered = history[-2]
    for entry in reversed(history[:-2]):
        if entry["status"] != left:
            break
        entered = entry
    STAGE_SECONDS.labels(stage=left).observe((history[-1]["at"] - entered["at"]).total_seconds())


# The work event that drives a job on from each non-final status: the stage that takes
# it from there (or resumes it when its worker died) listens for it.
_REDRIVE = {
    JobStatus.QUEUED: RoutingKey.JOB_SUBMITTED,
    JobStatus.PROMPTING: RoutingKey.JOB_SUBMITTED,
    JobStatus.PROMPT_READY: RoutingKey.PROMPT_READY,
    JobStatus.GENERATING: RoutingKey.PROMPT_READY,
    JobStatus.STORING: RoutingKey.PROMPT_READY,
}


def redrive_event(status: str) -> RoutingKey | None:
    return _REDRIVE.get(JobStatus(status))
