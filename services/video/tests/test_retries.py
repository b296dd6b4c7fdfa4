"""Delayed retries on the real broker: a retryable storage failure sends the event
through the TTL retry queues (RETRY_DELAYS [1, 2, 3] in tests) with the attempt count
on the job; it completes once storage works again, and fails with the reason after
MAX_ATTEMPTS."""

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from common.errors import JobError, user_message
from common.events import PromptReady
from common.settings import CommonSettings
from common.storage import Storage
from common.worker import retry_wait
from services.video.tests.images import mug
from services.video.tests.support import Worker, running_worker
from services.video.tests.test_worker import failure_logged
from video.providers.base import CheckpointCallback, ProgressCallback, VideoProvider, VideoRequest

CHEAP = {"aspect_ratio": "1:1", "duration": 3, "style": None}


@dataclass
class FailingWrites:
    """The real storage, whose clip uploads fail the first `failures` times."""

    inner: Storage
    failures: int
    tries: list[float] = field(default_factory=list)

    async def put_file(self, key: str, path: Path, content_type: str) -> Any:
        if key.endswith(".mp4"):
            self.tries.append(time.monotonic())
            if len(self.tries) <= self.failures:
                raise OSError(5, "Input/output error")
        return await self.inner.put_file(key, path, content_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def flaky(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
async def flaky_worker(
    settings: CommonSettings, monkeypatch: pytest.MonkeyPatch, flaky: int
) -> AsyncIterator[tuple[Worker, FailingWrites]]:
    monkeypatch.setenv("RENDER_FPS", "10")
    monkeypatch.setenv("MAX_ATTEMPTS", "3")
    failing: list[FailingWrites] = []

    def wrap(storage: Storage) -> FailingWrites:
        failing.append(FailingWrites(storage, failures=flaky))
        return failing[0]

    async with running_worker(wrap_storage=wrap) as worker:
        yield worker, failing[0]


@pytest.mark.parametrize("flaky", [2], indirect=True)
async def test_storage_failing_twice_is_retried_with_delay_and_completes(
    flaky_worker: tuple[Worker, FailingWrites],
) -> None:
    worker, storage = flaky_worker
    job = await worker.add_job(mug(), options=CHEAP)
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))

    done = await worker.wait_for_status(job["_id"], "completed", "failed", within=60)

    assert done["status"] == "completed", done.get("error")
    assert done["attempts"] == 2
    assert done["last_error"]["code"] == "storage_unavailable"
    assert "Input/output error" in done["last_error"]["message"]
    assert worker.stored(done["video"]["key"]).stat().st_size > 10_000
    # Each try came back from a retry queue after its tier's delay (1 s, then 2 s, less
    # up to 20 % jitter), not from an immediate redelivery.
    first, second, third = storage.tries
    assert second - first >= 0.8 and third - second >= 1.6
    assert len(worker.provider.calls) == 3  # a local render is remade, it costs nothing


@pytest.mark.parametrize("flaky", [100], indirect=True)
async def test_storage_failing_every_time_fails_the_job_after_max_attempts(
    flaky_worker: tuple[Worker, FailingWrites], caplog: pytest.LogCaptureFixture
) -> None:
    worker, storage = flaky_worker
    job = await worker.add_job(mug(), options=CHEAP)
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))

    failed = await worker.wait_for_status(job["_id"], "completed", "failed", within=60)

    assert failed["status"] == "failed"
    assert failed["attempts"] == 3 == len(storage.tries)
    error = failed["error"]
    assert error["code"] == "storage_unavailable" and error["retryable"] is True
    # The owner reads the stable message; the storage's own words are in the log.
    assert error["message"] == user_message("storage_unavailable")
    assert await failure_logged(caplog, job["_id"], "Could not store the clip")
    assert await failure_logged(caplog, job["_id"], "Input/output error (gave up after 3 attempts)")
    assert "lease" not in failed


@dataclass
class RateLimited:
    """The real provider, answering "rate limited" with a Retry-After the first time."""

    inner: VideoProvider
    retry_after: float
    calls: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    async def generate(
        self,
        request: VideoRequest,
        workdir: Path,
        progress: ProgressCallback,
        checkpoint: CheckpointCallback | None = None,
    ) -> Path:
        self.calls.append(time.monotonic())
        if len(self.calls) == 1:
            raise JobError(
                "provider_rate_limited",
                "OpenRouter: rate limited (429)",
                retryable=True,
                retry_after=self.retry_after,
            )
        return await self.inner.generate(request, workdir, progress, checkpoint)


async def test_a_retry_after_longer_than_every_tier_is_honoured(
    settings: CommonSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retry-After 6 s with tiers of at most 3 s: the event goes round the longest tier
    until then, and the attempt is counted once."""
    monkeypatch.setenv("RENDER_FPS", "10")
    limited: list[RateLimited] = []

    def wrap(provider: VideoProvider) -> RateLimited:
        limited.append(RateLimited(provider, retry_after=6))
        return limited[0]

    async with running_worker(wrap_provider=wrap) as worker:
        job = await worker.add_job(mug(), options=CHEAP)
        await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))

        done = await worker.wait_for_status(job["_id"], "completed", "failed", within=60)

    assert done["status"] == "completed", done.get("error")
    assert done["attempts"] == 1 and done["last_error"]["code"] == "provider_rate_limited"
    first, second = limited[0].calls
    assert second - first >= 6.0


@pytest.mark.parametrize(("tier", "at_least"), [(5, 0), (30, 0), (30, 27), (3, 10)])
def test_retry_waits_are_jittered_below_the_tier_and_never_before_retry_after(
    tier: float, at_least: float
) -> None:
    waits = [retry_wait(tier, at_least) for _ in range(200)]
    assert all(min(max(at_least, 0.8 * tier), tier) <= w <= tier for w in waits)
    if at_least < tier:
        assert len(set(waits)) > 100  # spread out, not all at once
