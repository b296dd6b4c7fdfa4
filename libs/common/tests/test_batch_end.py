"""The end of a batch on the real broker and database: when its last two jobs end at the
same moment on two workers, the batch is completed and `batch.completed` is published
exactly once; a canceled batch stays canceled and is announced too; a crash between
marking a batch ended and publishing (or before checking at all) is made good by the
reconciler."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aio_pika

from common import db as database
from common.batches import BatchRepository
from common.events import BatchCompleted, JobStatus, RoutingKey
from common.jobs import JobRepository, new_job_id, now
from common.messaging import Publishers, make_broker
from common.pipeline import Pipeline
from common.reconciler import Reconciler
from common.settings import CommonSettings
from common.topology import Topology


class Heard:
    """The `batch.completed` events on a queue of the test's own."""

    def __init__(self) -> None:
        self.events: list[BatchCompleted] = []

    def of(self, batch_id: str) -> list[BatchCompleted]:
        return [e for e in self.events if e.batch_id == batch_id]

    async def settle(self, seconds: float = 1.0) -> None:
        """Give any second (wrong) announcement time to arrive."""
        await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def listening(settings: CommonSettings) -> AsyncIterator[Heard]:
    heard = Heard()
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            settings.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=RoutingKey.BATCH_COMPLETED.value)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                heard.events.append(BatchCompleted.model_validate(json.loads(message.body)))

        await queue.consume(on_message)
        yield heard


@contextlib.asynccontextmanager
async def worker(settings: CommonSettings) -> AsyncIterator[Pipeline]:
    """A worker's pipeline: its own broker connection and database client."""
    broker = make_broker(settings)
    topology = Topology(settings)
    client, db = database.connect(settings)
    await broker.start()
    await topology.declare(broker)
    try:
        yield Pipeline(JobRepository(db), Publishers(broker, topology))
    finally:
        await broker.stop()
        await client.close()


async def new_batch(
    mongo_db: Any, statuses: list[JobStatus], **fields: Any
) -> tuple[str, list[str]]:
    """A batch of one product whose jobs stand in `statuses`."""
    batch_id = new_job_id()
    repo = JobRepository(mongo_db)
    job_ids = []
    for variant, status in enumerate(statuses):
        job, _ = await repo.create(
            {
                "_id": new_job_id(),
                "owner": "shop@example.com",
                "title": "Mug",
                "description": "A mug",
                "status": status.value,
                "batch_id": batch_id,
                "variant": variant,
            }
        )
        job_ids.append(job["_id"])
    await mongo_db["batches"].insert_one(
        {
            "_id": batch_id,
            "owner": "shop@example.com",
            "created_at": now(),
            "status": "running",
            "jobs_total": len(job_ids),
            "rows": [{"row": 2, "sku": "MUG", "title": "Mug", "job_ids": job_ids}],
            "variants": [],
            **fields,
        }
    )
    return batch_id, job_ids


async def test_the_last_two_jobs_ending_at_once_announce_the_batch_once(
    settings: CommonSettings, mongo_db: Any
) -> None:
    async with listening(settings) as heard, worker(settings) as one, worker(settings) as two:
        # Several batches, so that the two workers really do race on some of them.
        batches = [await new_batch(mongo_db, [JobStatus.STORING] * 2) for _ in range(8)]
        endings = []
        for _, (first, second) in batches:
            endings.append(
                one.advance(
                    first, expected=[JobStatus.STORING], to=JobStatus.COMPLETED, progress=100
                )
            )
            endings.append(two.fail(second, code="provider_error", detail="It broke."))
        ended = await asyncio.gather(*endings)
        assert all(job is not None for job in ended)
        await heard.settle()
        for batch_id, _ in batches:
            assert len(heard.of(batch_id)) == 1, batch_id
            batch = await mongo_db["batches"].find_one({"_id": batch_id})
            assert batch["status"] == "completed" and batch["announced"] is True
        assert len(heard.events) == len(batches)


async def test_a_batch_with_a_job_running_is_not_ended_and_a_canceled_one_stays_canceled(
    settings: CommonSettings, mongo_db: Any
) -> None:
    async with listening(settings) as heard, worker(settings) as pipeline:
        batch_id, (done, running) = await new_batch(
            mongo_db, [JobStatus.STORING, JobStatus.GENERATING]
        )
        await pipeline.advance(
            done, expected=[JobStatus.STORING], to=JobStatus.COMPLETED, progress=100
        )
        await heard.settle(0.5)
        assert heard.of(batch_id) == []
        assert (await mongo_db["batches"].find_one({"_id": batch_id}))["status"] == "running"

        # Its owner cancels it (the gateway marks the batch first, then cancels its jobs).
        await mongo_db["batches"].update_one({"_id": batch_id}, {"$set": {"status": "canceled"}})
        await pipeline.cancel(running)
        await heard.settle()
        assert len(heard.of(batch_id)) == 1
        batch = await mongo_db["batches"].find_one({"_id": batch_id})
        assert batch["status"] == "canceled" and batch["announced"] is True


def reconciler(settings: CommonSettings, pipeline: Pipeline) -> Reconciler:
    return Reconciler(
        settings.model_copy(update={"reconcile_stale_seconds": 30}),
        pipeline.repo,
        pipeline,
        "r1",
    )


async def test_a_crash_between_marking_and_publishing_is_announced_by_the_reconciler(
    settings: CommonSettings, mongo_db: Any
) -> None:
    async with listening(settings) as heard, worker(settings) as pipeline:
        batch_id, _ = await new_batch(mongo_db, [JobStatus.COMPLETED, JobStatus.FAILED])
        # The worker marks the batch ended, then dies before it publishes.
        assert await BatchRepository(mongo_db).claim_end(batch_id) is not None
        assert await pipeline.end_batch_if_done(batch_id) is False  # claimed: no second announcer
        fixer = reconciler(settings, pipeline)
        assert (await fixer.run_once())["batch_announced"] == 0  # it may still be publishing
        await mongo_db["batches"].update_one(
            {"_id": batch_id}, {"$set": {"ended_at": now() - timedelta(seconds=60)}}
        )
        assert (await fixer.run_once())["batch_announced"] == 1
        await heard.settle()
        assert len(heard.of(batch_id)) == 1
        batch = await mongo_db["batches"].find_one({"_id": batch_id})
        assert batch["status"] == "completed" and batch["announced"] is True
        assert (await fixer.run_once())["batch_announced"] == 0  # once


async def test_a_batch_whose_end_was_never_checked_is_ended_by_the_reconciler(
    settings: CommonSettings, mongo_db: Any
) -> None:
    async with listening(settings) as heard, worker(settings) as pipeline:
        # Its last job ended on a worker that died before looking at the batch.
        batch_id, _ = await new_batch(mongo_db, [JobStatus.COMPLETED, JobStatus.CANCELED])
        assert (await reconciler(settings, pipeline).run_once())["batch_announced"] == 1
        await heard.settle()
        assert len(heard.of(batch_id)) == 1
        assert (await mongo_db["batches"].find_one({"_id": batch_id}))["status"] == "completed"
