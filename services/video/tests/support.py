"""Helpers to drive the video worker in-process on the real broker, database and storage."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from common.events import JobStatus
from common.jobs import Job, new_job_id
from common.storage import Storage, upload_key
from common.worker import WorkerContext
from video.providers.base import CheckpointCallback, ProgressCallback, VideoProvider, VideoRequest


@dataclass
class CountingProvider:
    """The real provider, counting the calls made to it."""

    inner: VideoProvider
    calls: list[str] = field(default_factory=list)

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
        self.calls.append(request.job_id)
        return await self.inner.generate(request, workdir, progress, checkpoint)


PROMPT = "Slow zoom in on Stoneware Mug, a navy product shot on a light background."
# The statuses a job passes on its way to prompt_ready, as the gateway and prompt worker store them.
_BEFORE = ((JobStatus.PROMPTING, 10), (JobStatus.PROMPT_READY, 30))


@dataclass
class Worker:
    ctx: WorkerContext
    provider: CountingProvider

    async def add_job(
        self,
        image: bytes | None,
        *,
        title: str = "Stoneware Mug",
        options: dict[str, Any] | None = None,
        prompt: str = PROMPT,
        owner: str = "anon:127.0.0.1",
        brief: dict[str, Any] | None = None,
    ) -> Job:
        """A job at prompt_ready, its photo stored (unless `image` is None)."""
        repo = self.ctx.repo
        job_id = new_job_id()
        key = upload_key(job_id, "png")
        if image is not None:
            await self.ctx.storage.put_bytes(key, image, "image/png")
        await repo.create(
            {
                "_id": job_id,
                "owner": owner,
                "client_ip": "127.0.0.1",
                "title": title,
                "description": "Hand-thrown mug with a speckled glaze.",
                "options": options or {"aspect_ratio": "9:16", "duration": 4, "style": None},
                **({"brief": brief} if brief else {}),
                "image": {
                    "key": key,
                    "sha256": hashlib.sha256(image or b"").hexdigest(),
                    "width": 900,
                    "height": 1200,
                    "content_type": "image/png",
                },
            }
        )
        status = JobStatus.QUEUED
        for to, progress in _BEFORE:
            fields = (
                {"prompt": {"text": prompt, "source": "template"}} if to == "prompt_ready" else {}
            )
            job = await repo.transition(
                job_id, expected=[status], to=to, progress=progress, fields=fields
            )
            status = to
        assert job is not None
        return job

    async def wait_for_status(self, job_id: str, *statuses: str, within: float = 30) -> Job:
        return await eventually(
            lambda: self.ctx.repo.get(job_id),
            lambda job: job is not None and job["status"] in statuses,
            within,
        )

    def stored(self, key: str) -> Path:
        return self.ctx.settings.storage_root / key


async def duplicates_dropped() -> float:
    """prompt.ready messages the worker dropped as duplicates (this process's metric)."""
    return REGISTRY.get_sample_value("pv_duplicate_events_total", {"stage": "generating"}) or 0.0


async def eventually(
    read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], within: float
) -> Any:
    """Poll `read` until `done` says yes; fail with the last value after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await read()
        if done(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met after {within}s; last value: {value!r}")
        await asyncio.sleep(0.05)


async def delete_topology(ctx: WorkerContext) -> None:
    """This test's queues and exchange: the broker is shared with other sessions."""
    await ctx.topology.delete()


@asynccontextmanager
async def running_worker(
    wrap_provider: Callable[[VideoProvider], VideoProvider] = lambda provider: provider,
    wrap_storage: Callable[[Storage], Any] = lambda storage: storage,
) -> AsyncIterator[Worker]:
    """The video worker in this process with the local renderer (and storage) wrapped as
    a test needs, on the environment the `settings` fixture set up; its queues, exchange
    and database removed afterwards."""
    from video.config import VideoSettings
    from video.handlers import register
    from video.providers.local import LocalProvider

    video_settings = VideoSettings()
    ctx = WorkerContext.create(video_settings)
    ctx.storage = wrap_storage(ctx.storage)
    provider = CountingProvider(wrap_provider(LocalProvider(video_settings)))
    register(ctx, video_settings, provider)
    await ctx.broker.start()
    await ctx.start()
    try:
        yield Worker(ctx, provider)
    finally:
        await ctx.broker.stop()
        await ctx.broker.connect()
        await delete_topology(ctx)
        await ctx.broker.stop()
        await ctx.client.drop_database(video_settings.mongodb_database)
        await ctx.stop()


@asynccontextmanager
async def worker_on(fake: Any, monkeypatch: Any, **env: str) -> AsyncIterator[Worker]:
    """The video worker with the OpenRouter provider on the fake, `env` set over its own."""
    from video.config import VideoSettings
    from video.handlers import register

    for key, value in {**fake.env(), **env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VIDEO_PROVIDER", raising=False)
    video_settings = VideoSettings()
    ctx = WorkerContext.create(video_settings)
    stage = register(ctx, video_settings)
    await ctx.broker.start()
    await ctx.start()
    try:
        yield Worker(ctx, stage.provider)  # type: ignore[arg-type]
    finally:
        await ctx.broker.stop()
        await ctx.broker.connect()
        await delete_topology(ctx)
        await ctx.broker.stop()
        await ctx.client.drop_database(video_settings.mongodb_database)
        await ctx.stop()
