"""The event contract: what travels over RabbitMQ.

Messages carry ids and small scalars only; everything else is read from MongoDB.
"""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class RoutingKey(StrEnum):
    JOB_SUBMITTED = "job.submitted"
    PROMPT_READY = "prompt.ready"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_STATUS = "job.status"
    BATCH_COMPLETED = "batch.completed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROMPTING = "prompting"
    PROMPT_READY = "prompt_ready"
    GENERATING = "generating"
    STORING = "storing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


def _now() -> datetime:
    return datetime.now(UTC)


def _event_id() -> str:
    return uuid.uuid4().hex


class Event(BaseModel):
    event_id: str = Field(default_factory=_event_id)
    job_id: str
    occurred_at: datetime = Field(default_factory=_now)


class JobSubmitted(Event):
    """A job was stored and waits for its prompt."""

    type: Literal["job.submitted"] = "job.submitted"


class PromptReady(Event):
    """The job's prompt is stored; the video can be made."""

    type: Literal["prompt.ready"] = "prompt.ready"


class JobCompleted(Event):
    """The clip and its poster are stored."""

    type: Literal["job.completed"] = "job.completed"


class JobFailed(Event):
    """The job failed; `error_code` says why (the message is on the job)."""

    type: Literal["job.failed"] = "job.failed"
    error_code: str


class JobStatusChanged(Event):
    """Every status or progress change of a job, in `seq` order per job."""

    type: Literal["job.status"] = "job.status"
    seq: int
    status: JobStatus
    progress: int = Field(ge=0, le=100)


class BatchCompleted(BaseModel):
    """Every job of the batch is final (completed, failed or canceled); announced once."""

    event_id: str = Field(default_factory=_event_id)
    type: Literal["batch.completed"] = "batch.completed"
    batch_id: str
    occurred_at: datetime = Field(default_factory=_now)
