"""The reconciler against a real MongoDB-protocol server: stale jobs are driven on
again, jobs past their stage's deadline fail with a reason, one replica acts at a time;
cancel and retry follow the status machine."""

from datetime import timedelta
from typing import Any

from common.errors import user_message
from common.events import JobStatus
from common.jobs import JobRepository, new_job_id, now
from common.pipeline import Pipeline
from common.reconciler import Reconciler
from common.settings import CommonSettings


class Recorded:
    """A publisher that remembers what it was asked to publish."""

    def __init__(self, sent: list[tuple[str, str]], key: str) -> None:
        self.sent, self.key = sent, key

    async def publish(self, event: Any) -> None:
        self.sent.append((self.key, event.job_id))


class RecordingPublishers:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        for key in ("job_submitted", "prompt_ready", "job_completed", "job_failed", "job_status"):
            setattr(self, key, Recorded(self.sent, key))

    async def status(self, job: dict[str, Any]) -> None:
        self.sent.append(("job_status", job["_id"]))

    def work(self) -> list[tuple[str, str]]:
        return [s for s in self.sent if s[0] in ("job_submitted", "prompt_ready")]


def _settings(**overrides: Any) -> CommonSettings:
    return CommonSettings(reconcile_stale_seconds=30, reconcile_interval_seconds=1, **overrides)


async def _job(repo: JobRepository, status: JobStatus, age: float, **fields: Any) -> str:
    """A job that entered `status` `age` seconds ago and has not changed since."""
    at = now() - timedelta(seconds=age)
    job, _ = await repo.create(
        {
            "_id": new_job_id(),
            "owner": "anon:127.0.0.1",
            "title": "Mug",
            "description": "A mug",
            "status": status.value,
            "history": [{"seq": 1, "status": status.value, "progress": 0, "at": at}],
            "created_at": at,
            "updated_at": at,
            **fields,
        }
    )
    return str(job["_id"])


def _reconciler(mongo_db: Any, holder: str = "r1", **settings: Any) -> Reconciler:
    repo = JobRepository(mongo_db)
    publishers = RecordingPublishers()
    return Reconciler(_settings(**settings), repo, Pipeline(repo, publishers), holder)  # type: ignore[arg-type]


async def test_stale_jobs_get_their_work_event_again(mongo_db) -> None:
    reconciler = _reconciler(mongo_db)
    repo = reconciler.repo
    queued = await _job(repo, JobStatus.QUEUED, age=60)
    ready = await _job(repo, JobStatus.PROMPT_READY, age=60)
    dead_worker = await _job(
        repo,
        JobStatus.GENERATING,
        age=60,
        lease={"holder": "gone", "until": now() - timedelta(seconds=5)},
    )
    live_worker = await _job(
        repo,
        JobStatus.GENERATING,
        age=60,
        lease={"holder": "alive", "until": now() + timedelta(seconds=60)},
    )
    fresh = await _job(repo, JobStatus.QUEUED, age=1)
    waiting_retry = await _job(
        repo, JobStatus.PROMPTING, age=60, retry_at=now() + timedelta(seconds=20)
    )
    done = await _job(repo, JobStatus.COMPLETED, age=60)

    assert await reconciler.run_once() == {"timed_out": 0, "redriven": 3, "batch_announced": 0}
    publishers = reconciler.pipeline.publishers
    assert sorted(publishers.work()) == sorted(  # type: ignore[attr-defined]
        [("job_submitted", queued), ("prompt_ready", ready), ("prompt_ready", dead_worker)]
    )
    for untouched in (live_worker, fresh, waiting_retry, done):
        assert (await repo.get(untouched)).get("reconciled_at") is None
    # Driven on once per stale period, not on every round.
    assert await reconciler.run_once() == {"timed_out": 0, "redriven": 0, "batch_announced": 0}


async def test_a_job_past_its_stage_deadline_fails_with_the_stage(mongo_db) -> None:
    reconciler = _reconciler(
        mongo_db, stage_deadlines={"prompting": 50, "generating": 500, "queued": 500}
    )
    repo = reconciler.repo
    late = await _job(repo, JobStatus.PROMPTING, age=60)
    in_time = await _job(
        repo,
        JobStatus.GENERATING,
        age=60,
        lease={"holder": "alive", "until": now() + timedelta(seconds=60)},
    )
    assert (await reconciler.run_once())["timed_out"] == 1
    failed = await repo.get(late)
    assert failed["status"] == "failed" and "lease" not in failed
    assert failed["error"] == {
        "code": "timeout",
        "message": user_message("timeout"),
        "retryable": False,
    }
    assert failed["history"][-1]["status"] == "failed"
    assert ("job_failed", late) in reconciler.pipeline.publishers.sent  # type: ignore[attr-defined]
    assert (await repo.get(in_time))["status"] == "generating"


async def test_one_replica_acts_at_a_time(mongo_db) -> None:
    first = _reconciler(mongo_db, holder="r1")
    second = _reconciler(mongo_db, holder="r2")
    assert await first.acquire()
    assert not await second.acquire()
    assert await first.acquire()  # the holder keeps it
    await first.release()
    assert await second.acquire()
    # An expired lock is taken over.
    await mongo_db["locks"].update_one(
        {"_id": "reconciler"}, {"$set": {"until": now() - timedelta(seconds=1)}}
    )
    assert await first.acquire()


async def test_cancel_from_any_active_status_and_never_twice(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    for status in (JobStatus.QUEUED, JobStatus.GENERATING, JobStatus.STORING):
        job_id = await _job(repo, status, age=1, lease={"holder": "w", "until": now()})
        canceled = await repo.cancel(job_id)
        assert canceled["status"] == "canceled" and "lease" not in canceled
        assert canceled["history"][-1]["status"] == "canceled"
        assert await repo.cancel(job_id) is None
    finished = await _job(repo, JobStatus.COMPLETED, age=1)
    assert await repo.cancel(finished) is None


async def test_retry_restarts_from_the_failed_stage_keeping_the_prompt(mongo_db) -> None:
    repo = JobRepository(mongo_db)
    publishers = RecordingPublishers()
    pipeline = Pipeline(repo, publishers)  # type: ignore[arg-type]
    with_prompt = await _job(
        repo, JobStatus.GENERATING, age=1, prompt={"text": "A slow zoom.", "source": "template"}
    )
    without = await _job(repo, JobStatus.PROMPTING, age=1)
    for job_id in (with_prompt, without):
        await repo.record_attempt(job_id, holder="w", code="render_timeout", message="slow")
        await pipeline.fail(job_id, code="render_timeout", detail="slow")

    retried = await pipeline.retry(with_prompt)
    assert retried["status"] == "prompt_ready" and retried["prompt"]["text"] == "A slow zoom."
    assert "error" not in retried and retried["attempts"] == 0
    assert [h["status"] for h in retried["history"]] == ["generating", "failed", "prompt_ready"]
    restarted = await pipeline.retry(without)
    assert restarted["status"] == "queued"
    assert publishers.work() == [("prompt_ready", with_prompt), ("job_submitted", without)]
    # Only a failed job can be retried.
    assert await pipeline.retry(with_prompt) is None


async def test_retry_keeps_a_finished_paid_provider_job_and_drops_an_unfinished_one(
    mongo_db,
) -> None:
    repo = JobRepository(mongo_db)
    pipeline = Pipeline(repo, RecordingPublishers())  # type: ignore[arg-type]
    prompt = {"text": "A slow zoom.", "source": "llm"}
    paid = {"provider": "openrouter", "id": "vid-1", "status": "completed", "cost": 0.35}
    marked = {"provider": "openrouter", "status": "submitting"}
    finished = await _job(repo, JobStatus.STORING, age=1, prompt=prompt, provider_job=paid)
    unconfirmed = await _job(repo, JobStatus.GENERATING, age=1, prompt=prompt, provider_job=marked)
    for job_id in (finished, unconfirmed):
        await pipeline.fail(job_id, code="storage_unavailable", detail="storage down")

    # The clip is paid for: the retry fetches it again instead of paying for another.
    kept = await pipeline.retry(finished)
    assert kept["provider_job"] == paid and kept["retries"] == 1
    # The user asked to send it anew.
    dropped = await pipeline.retry(unconfirmed)
    assert "provider_job" not in dropped
