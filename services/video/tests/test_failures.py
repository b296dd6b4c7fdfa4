"""How failures are sorted: storage trouble is retried, refusals are not, and a worker
that lost its lease stops instead of finishing someone else's job."""

import asyncio

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pymongo.errors import AutoReconnect

from common.errors import JobError
from common.events import JobStatus
from common.jobs import JobRepository, new_job_id
from common.lease import LeaseLost, holding_lease
from common.storage import ObjectNotFound
from common.storage_errors import storage_errors
from video import handlers


def client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (EndpointConnectionError(endpoint_url="http://s3.local"), "storage_unavailable", True),
        (client_error(503, "ServiceUnavailable"), "storage_unavailable", True),
        (client_error(500, "InternalError"), "storage_unavailable", True),
        (client_error(429, "TooManyRequests"), "storage_unavailable", True),
        (client_error(503, "SlowDown"), "storage_unavailable", True),
        (client_error(403, "AccessDenied"), "storage_refused", False),
        (client_error(404, "NoSuchBucket"), "storage_refused", False),
        (OSError(28, "No space left on device"), "storage_unavailable", True),
    ],
)
def test_storage_errors_become_job_errors(error: Exception, code: str, retryable: bool) -> None:
    with pytest.raises(JobError) as failure, storage_errors("store the clip"):
        raise error
    assert (failure.value.code, failure.value.retryable) == (code, retryable)
    assert failure.value.message.startswith("Could not store the clip")


def test_a_missing_object_is_left_to_the_caller() -> None:
    with pytest.raises(ObjectNotFound), storage_errors("download the product photo"):
        raise ObjectNotFound("uploads/x/source.png")


async def test_losing_the_lease_stops_the_work(mongo_db: object) -> None:
    repo = JobRepository(mongo_db)  # type: ignore[arg-type]
    job_id = new_job_id()
    await repo.create({"_id": job_id, "owner": "anon:127.0.0.1", "title": "t"})
    await repo.transition(
        job_id, expected=[JobStatus.QUEUED], to=JobStatus.PROMPT_READY, progress=30
    )
    claim = await repo.claim(
        job_id,
        ready=JobStatus.PROMPT_READY,
        working=(JobStatus.GENERATING,),
        progress=40,
        lease_seconds=0.3,
        holder="video-a",
    )
    assert claim.job is not None
    stopped = asyncio.Event()

    async def long_render() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()

    # Worker b never held the lease (a stand-in for "a took it over after b's ran out").
    with pytest.raises(LeaseLost):
        await holding_lease(repo, job_id, holder="video-b", seconds=0.3, work=long_render())
    assert stopped.is_set()

    # The holder keeps its lease alive for as long as the work takes.
    async def render() -> str:
        await asyncio.sleep(0.5)
        return "clip"

    first_until = claim.job["lease"]["until"]
    assert await holding_lease(repo, job_id, holder="video-a", seconds=0.3, work=render()) == "clip"
    job = await repo.get(job_id)
    # Renewed while the work ran past the lease's first end.
    assert job is not None and job["lease"]["holder"] == "video-a"
    assert job["lease"]["until"] > first_until


class FlakyRepo:
    """update_fields fails while the database is away, `outage` times, then works."""

    def __init__(self, outage: int, *, leased: bool = True) -> None:
        self.outage = outage
        self.leased = leased
        self.saved: list[dict] = []

    async def update_fields(
        self, job_id: str, *, holder: str, fields: dict, unless_submitted: bool = False
    ) -> bool:
        if self.outage > 0:
            self.outage -= 1
            raise AutoReconnect("connection refused")
        self.saved.append(fields)
        return self.leased

    async def record_submission(self, job_id: str, *, holder: str, provider_job: dict) -> bool:
        return False  # no `submitting` mark of ours here

    async def get(self, job_id: str) -> dict | None:
        return None  # nothing of ours was stored


async def test_a_paid_jobs_id_is_saved_once_the_database_is_back(monkeypatch) -> None:
    monkeypatch.setattr(handlers, "CHECKPOINT_WAITS", (0.01,) * 5)
    repo = FlakyRepo(outage=3)
    fields = {"provider": "openrouter", "id": "vid_1"}
    assert await handlers.save_checkpoint(repo, "j1", "w1", fields)  # type: ignore[arg-type]
    assert repo.saved == [{"provider_job": fields}]

    # A longer outage is an error for the stage (retried later); a lost lease is False.
    with pytest.raises(AutoReconnect):
        await handlers.save_checkpoint(FlakyRepo(outage=6), "j1", "w1", fields)  # type: ignore[arg-type]
    assert not await handlers.save_checkpoint(FlakyRepo(0, leased=False), "j1", "w1", fields)  # type: ignore[arg-type]
