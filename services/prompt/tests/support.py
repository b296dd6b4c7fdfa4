"""Helpers to drive the prompt worker in-process on the real broker, database and storage."""

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.rabbit import RabbitQueue

from common.jobs import Job, JobRepository, new_job_id
from common.storage import upload_key
from common.worker import WorkerContext
from prompt.handlers import PromptStage
from prompt.providers.base import PromptRequest, PromptResult
from prompt.providers.template import TemplateProvider


@dataclass
class CountingProvider:
    """The real template provider, counting the calls made to it (each taking `delay`
    seconds, like a slow LLM)."""

    inner: TemplateProvider
    delay: float = 0.0
    calls: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> str:
        return self.inner.model

    async def write(self, request: PromptRequest) -> PromptResult:
        self.calls.append(request.job_id)
        await asyncio.sleep(self.delay)
        return await self.inner.write(request)


@dataclass
class Worker:
    ctx: WorkerContext
    provider: CountingProvider
    repo: JobRepository
    stage: PromptStage

    async def add_job(
        self,
        image: bytes | None,
        *,
        title: str = "Stoneware Mug",
        description: str = "Hand-thrown mug with a speckled glaze.",
        options: dict[str, Any] | None = None,
        owner: str = "anon:127.0.0.1",
    ) -> Job:
        """A queued job as the gateway stores it; `image=None` leaves the photo unstored."""
        job_id = new_job_id()
        key = upload_key(job_id, "png")
        if image is not None:
            await self.ctx.storage.put_bytes(key, image, "image/png")
        job, _ = await self.repo.create(
            {
                "_id": job_id,
                "owner": owner,
                "client_ip": "127.0.0.1",
                "title": title,
                "description": description,
                "options": options or {"aspect_ratio": "9:16", "duration": 5, "style": None},
                "image": {
                    "key": key,
                    "sha256": hashlib.sha256(image or b"").hexdigest(),
                    "width": 600,
                    "height": 900,
                    "content_type": "image/png",
                },
            }
        )
        return job

    async def wait_for_status(self, job_id: str, *statuses: str, within: float = 20) -> Job:
        return await eventually(
            lambda: self.repo.get(job_id),
            lambda job: job is not None and job["status"] in statuses,
            within,
        )

    async def take_messages(self, queue: RabbitQueue, count: int, within: float = 20) -> list:
        """Take `count` messages off a real queue (waiting for them), then any extra there."""
        declared = await self.ctx.broker.declare_queue(queue)
        taken: list[dict[str, Any]] = []

        async def take() -> list[dict[str, Any]]:
            while (message := await declared.get(no_ack=True, fail=False)) is not None:
                taken.append(json.loads(message.body))
            return taken

        return await eventually(take, lambda got: len(got) >= count, within)


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
