"""The example consumer of docs/events.md works as documented: run the way its readers
run it, on the real broker and database, it handles a completed job once even when
`job.completed` arrives twice, and reads the job from MongoDB."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity
from faststream.rabbit import QueueType, RabbitBroker, RabbitQueue
from pymongo.asynchronous.database import AsyncDatabase

from common.events import JobCompleted
from common.messaging import Publishers, make_broker
from common.settings import CommonSettings
from common.topology import Topology

pytestmark = pytest.mark.timeout(120)

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "consumer.py"


async def wait_for_output(path: Path, text: str, *, within: float = 30) -> str:
    deadline = time.monotonic() + within
    while True:
        output = await asyncio.to_thread(path.read_text, errors="replace")
        if text in output:
            return output
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in the consumer's output:\n{output}")
        await asyncio.sleep(0.1)


async def wait_for_consumer(settings: CommonSettings, queue: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        while True:
            # A passive declare of a missing queue closes its channel: one per look.
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
                if declared.declaration_result.consumer_count:
                    return
            except ChannelNotFoundEntity:
                pass  # not declared yet
            finally:
                if not channel.is_closed:
                    await channel.close()
            if time.monotonic() > deadline:
                raise TimeoutError(f"nobody consumes {queue} after {within}s")
            await asyncio.sleep(0.1)


@pytest.fixture
async def publishers(settings: CommonSettings) -> AsyncIterator[Publishers]:
    """The services' own publishers, on the test's exchange."""
    broker = make_broker(settings)
    topology = Topology(settings)
    publishers = Publishers(broker, topology)
    async with broker:
        await broker.start()
        await topology.declare(broker)
        yield publishers


@pytest.fixture
async def consumer(
    settings: CommonSettings, service_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[Path]:
    """The example as a process of its own, its output in a file; its queue is deleted
    afterwards (left-over quorum queues use up the broker's file handles)."""
    output = tmp_path / "consumer.log"
    with output.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            env={**os.environ, **service_env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield output
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)
        async with RabbitBroker(settings.amqp_url, logger=None) as broker:
            await broker.connect()
            name = settings.queue_name("example.job-completed")
            queue = await broker.declare_queue(
                RabbitQueue(name, durable=True, queue_type=QueueType.QUORUM)
            )
            await queue.delete(if_unused=False, if_empty=False)


async def test_the_example_consumer_handles_each_completed_job_once(
    consumer: Path, publishers: Publishers, mongo_db: AsyncDatabase, settings: CommonSettings
) -> None:
    await mongo_db["jobs"].insert_one(
        {
            "_id": "job-example-1",
            "title": "Ceramic coffee mug",
            "status": "completed",
            "video": {"key": "videos/job-example-1/video.mp4"},
        }
    )
    # Notifications published before the consumer's queue is bound are dropped (as the
    # page says): wait until the queue exists and the consumer listens on it.
    await wait_for_consumer(settings, settings.queue_name("example.job-completed"))

    # Delivered twice, as at-least-once delivery may: one redelivered copy of the event.
    event = JobCompleted(job_id="job-example-1")
    await publishers.job_completed.publish(event)
    await publishers.job_completed.publish(event)

    # The copies are handled at once: the duplicate may be dropped while the first copy
    # still reads its job, so both lines are waited for.
    await wait_for_output(consumer, "is ready")
    output = await wait_for_output(consumer, "duplicate dropped")
    assert output.count("job job-example-1 is ready: 'Ceramic coffee mug'") == 1, output
    assert "clip videos/job-example-1/video.mp4" in output
