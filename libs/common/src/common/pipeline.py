"""Status changes that are stored and then announced: the one way a service
moves a job, so no transition can forget its `job.status` event or metrics."""

from collections.abc import Iterable
from typing import Any

from common.events import JobCompleted, JobFailed, JobStatus
from common.jobs import Job, JobRepository, now
from common.messaging import Publishers
from common.metrics import JOB_SECONDS, JOBS_FINISHED


class Pipeline:
    def __init__(self, repo: JobRepository, publishers: Publishers) -> None:
        self.repo = repo
        self.publishers = publishers

    async def announce(self, job: Job) -> None:
        await self.publishers.status(job)

    async def advance(
        self,
        job_id: str,
        *,
        expected: Iterable[JobStatus],
        to: JobStatus,
        progress: int,
        fields: dict[str, Any] | None = None,
        unset: Iterable[str] = (),
    ) -> Job | None:
        """Store the transition, then publish `job.status`; None when it did not apply."""
        job = await self.repo.transition(
            job_id, expected=expected, to=to, progress=progress, fields=fields, unset=unset
        )
        if job is not None:
            await self.announce(job)
            if to is JobStatus.COMPLETED:
                self._count_final(job)
                await self.publishers.job_completed.publish(JobCompleted(job_id=job_id))
        return job

    async def fail(
        self,
        job_id: str,
        *,
        code: str,
        message: str,
        retryable: bool = False,
    ) -> Job | None:
        job = await self.repo.fail(job_id, code=code, message=message, retryable=retryable)
        if job is not None:
            await self.announce(job)
            self._count_final(job)
            await self.publishers.job_failed.publish(JobFailed(job_id=job_id, error_code=code))
        return job

    @staticmethod
    def _count_final(job: Job) -> None:
        error_code = (job.get("error") or {}).get("code", "")
        JOBS_FINISHED.labels(status=job["status"], error_code=error_code).inc()
        JOB_SECONDS.labels(status=job["status"]).observe(
            (now() - job["created_at"]).total_seconds()
        )
