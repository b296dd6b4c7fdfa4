"""Progress during generation, stored and announced now and then (40 → 85), not on
every frame: each change is a database write and a `job.status` event."""

import time

from common.events import JobStatus
from common.lease import LeaseLost
from common.pipeline import Pipeline

LOW, HIGH = 40, 85
MIN_STEP = 5  # percentage points
MIN_INTERVAL = 1.0  # seconds


class ProgressReporter:
    def __init__(self, pipeline: Pipeline, job_id: str, *, reported: int = LOW) -> None:
        self.pipeline = pipeline
        self.job_id = job_id
        # A job resumed on a later delivery (a provider polling again) starts from where it
        # stands; the first step is due at once (a poll reports once per delivery).
        self.reported = reported
        self.at = float("-inf")

    @staticmethod
    def percent(fraction: float) -> int:
        """The job's progress for a provider's fraction."""
        return LOW + int((HIGH - LOW) * min(max(fraction, 0.0), 1.0))

    async def __call__(self, fraction: float) -> None:
        progress = self.percent(fraction)
        now = time.monotonic()
        if progress - self.reported < MIN_STEP or now - self.at < MIN_INTERVAL:
            return
        self.reported, self.at = progress, now
        moved = await self.pipeline.advance(
            self.job_id, expected=[JobStatus.GENERATING], to=JobStatus.GENERATING, progress=progress
        )
        if moved is None:
            job = await self.pipeline.repo.get(self.job_id)
            if job is None or JobStatus(job["status"]).is_final:
                # Canceled, or failed on its deadline: stop the work now, not at the
                # next lease renewal.
                raise LeaseLost(self.job_id)
