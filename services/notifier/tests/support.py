"""Helpers to run the notifier for real (uvicorn on a free port) and drive jobs
through the real broker and database, as the workers do."""

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import uvicorn
from faststream.rabbit import RabbitBroker
from websockets.asyncio.client import ClientConnection

from common.events import JobStatus
from common.jobs import Job, JobRepository, new_job_id
from common.messaging import Publishers
from common.pipeline import Pipeline
from common.storage import poster_key, upload_key, video_key
from common.tokens import Signer
from common.topology import Topology

# Every step of a job that goes well, after `queued` (seq 1).
HAPPY_PATH: list[tuple[JobStatus, int]] = [
    (JobStatus.PROMPTING, 10),
    (JobStatus.PROMPT_READY, 30),
    (JobStatus.GENERATING, 40),
    (JobStatus.GENERATING, 60),
    (JobStatus.STORING, 90),
    (JobStatus.COMPLETED, 100),
]


@dataclass
class Driver:
    """Moves jobs the way the workers do: stored transitions, then `job.status`."""

    broker: RabbitBroker
    topology: Topology
    publishers: Publishers
    repo: JobRepository
    pipeline: Pipeline
    signer: Signer

    async def new_job(self, owner: str = "owner@example.com") -> Job:
        job_id = new_job_id()
        job, _ = await self.repo.create(
            {
                "_id": job_id,
                "owner": owner,
                "client_ip": "127.0.0.1",
                "title": "Stoneware Mug",
                "description": "Hand-thrown mug.",
                "options": {"aspect_ratio": "9:16", "duration": 5, "style": None},
                "image": {
                    "key": upload_key(job_id, "png"),
                    "sha256": "0" * 64,
                    "width": 600,
                    "height": 900,
                    "content_type": "image/png",
                },
            }
        )
        return job

    def token(self, job_id: str) -> str:
        return self.signer.job_token(job_id)

    async def step(
        self, job_id: str, to: JobStatus, progress: int, *, announce: bool = True
    ) -> Job:
        """The next transition to `to`; `announce=False` stores it without an event (lost)."""
        current = await self.repo.get(job_id)
        assert current is not None
        fields = None
        if to is JobStatus.COMPLETED:
            fields = {
                "video": {
                    "key": video_key(job_id),
                    "poster_key": poster_key(job_id),
                    "duration": 5.0,
                    "width": 720,
                    "height": 1280,
                    "size": 123456,
                    "codec": "h264",
                }
            }
        args: dict[str, Any] = {
            "expected": [JobStatus(current["status"])],
            "to": to,
            "progress": progress,
            "fields": fields,
        }
        moved = await (
            self.pipeline.advance(job_id, **args)
            if announce
            else self.repo.transition(job_id, **args)
        )
        assert moved is not None
        return moved


async def start_server(
    app: Any, port: int, **options: Any
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """`options`: more uvicorn settings (e.g. `ws_ping_interval`). The defaults are the
    flags of every notifier command line (scripts/run.py, the Dockerfile)."""
    options = {"proxy_headers": False, **options}
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws_per_message_deflate=False,
        ws_max_size=65536,
        log_config=None,
        lifespan="on",
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            if task.done():
                task.result()  # raises the start-up error
            await asyncio.sleep(0.02)
    return server, task


class Client:
    """A WebSocket client speaking the notifier protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, **op: Any) -> None:
        await self.ws.send(json.dumps(op))

    async def subscribe(self, job_id: str, token: str, after_seq: int | None = None) -> None:
        op: dict[str, Any] = {"op": "subscribe", "job_id": job_id, "token": token}
        if after_seq is not None:
            op["after_seq"] = after_seq
        await self.send(**op)

    async def next(self, within: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(within):
            return json.loads(await self.ws.recv())

    async def until_seq(self, seq: int, within: float = 15) -> list[dict[str, Any]]:
        """Every message up to the status message with `seq`."""
        received: list[dict[str, Any]] = []
        while not received or received[-1].get("seq") != seq:
            received.append(await self.next(within))
        return received
