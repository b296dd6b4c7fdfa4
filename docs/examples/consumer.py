"""An internal consumer of Product Videos events: do something once for every
completed job (send an email, call a webhook, update a catalogue, ...).

It binds a durable queue of its own to `job.completed` on the `product_videos` exchange,
so events published while it is down wait for it, and no other consumer's queue is
touched. Events carry ids only: the job itself is read from MongoDB.

    AMQP_URL=amqp://... MONGODB_URL=mongodb://... python docs/examples/consumer.py

(`faststream run` works too). See docs/events.md for every event and its guarantees.
"""

import asyncio
import logging
import os

from faststream import AckPolicy, FastStream, Logger
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
from pydantic import BaseModel
from pymongo import AsyncMongoClient

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PREFIX = os.environ.get("AMQP_PREFIX", "")  # the same prefix as the installation's services
MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
MONGODB_DATABASE = os.environ.get("MONGODB_DATABASE", "product_videos")


class JobCompleted(BaseModel):
    """The fields this consumer needs (docs/asyncapi.yaml has the whole message)."""

    event_id: str
    job_id: str


# Declared exactly as the services declare it (a different declaration is refused).
exchange = RabbitExchange(f"{PREFIX}product_videos", type=ExchangeType.TOPIC, durable=True)
# This consumer's own queue: durable and replicated, it keeps events while the consumer
# is down or busy. Every replica of the consumer shares it, so each event is handled once.
queue = RabbitQueue(
    f"{PREFIX}example.job-completed",
    durable=True,
    queue_type=QueueType.QUORUM,
    routing_key="job.completed",
)

broker = RabbitBroker(AMQP_URL)
app = FastStream(broker)
mongo = AsyncMongoClient(MONGODB_URL, tz_aware=True)
# What this consumer already did, by job. Delivery is at least once, so the same job
# may arrive twice; a real consumer keeps this in its own database (a unique index).
done: set[str] = set()


# Acked only after the handler returns: a crash before that brings the event back.
@broker.subscriber(queue, exchange, ack_policy=AckPolicy.NACK_ON_ERROR)
async def on_job_completed(event: JobCompleted, logger: Logger) -> None:
    # Messages are handled concurrently: check and claim the job with no `await` in
    # between (in a database: an insert into a unique index), then do the work.
    if event.job_id in done:
        logger.info("job %s was handled already; duplicate dropped", event.job_id)
        return
    done.add(event.job_id)
    try:
        job = await mongo[MONGODB_DATABASE]["jobs"].find_one(
            {"_id": event.job_id}, {"title": 1, "status": 1, "video": 1}
        )
        if job is None or job["status"] != "completed":
            logger.warning("job %s is not completed in the database; ignored", event.job_id)
            return
        logger.info("job %s is ready: %r, clip %s", event.job_id, job["title"], job["video"]["key"])
    except BaseException:
        done.discard(event.job_id)  # not done after all: the redelivered event tries again
        raise


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(app.run())
