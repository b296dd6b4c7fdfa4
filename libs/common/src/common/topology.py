"""Broker topology: one durable topic exchange, quorum work queues with a
dead-letter queue, delayed-retry queues and delay queues each, the webhook queue (the
notifier turns `job.completed` / `job.failed` / `batch.completed` into stored webhook
deliveries) and the per-replica
status queue.

Every service declares the topology at start-up (declarations are idempotent), so no
event is unroutable just because a consumer started late. The delay queues (one per
rounded delay, `DELAY_STEPS`) are declared by the first worker that needs one.
"""

import bisect
import math
from dataclasses import dataclass
from typing import Any

import aio_pika
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from common.events import RoutingKey
from common.settings import CommonSettings

# A message redelivered this many times (a crash loop, say) goes to the dead-letter queue.
DELIVERY_LIMIT = 10
# The events that may become outgoing webhooks.
WEBHOOK_EVENTS = (RoutingKey.JOB_COMPLETED, RoutingKey.JOB_FAILED, RoutingKey.BATCH_COMPLETED)

# The delays a delay queue exists for: (up to, step) in seconds. Every second up to 20 s,
# then every 5 s up to a minute, 15 s up to 3 minutes, 30 s up to 10 minutes (50
# queues per work queue at most, declared when first used). Each queue holds its messages
# exactly its own TTL, the same for all of them, so they leave in the order they came.
DELAY_STEPS: tuple[tuple[int, int], ...] = ((20, 1), (60, 5), (180, 15), (600, 30))
LONGEST_DELAY = DELAY_STEPS[-1][0]


def delay_bucket(seconds: float) -> int:
    """The delay queue for a wait of `seconds`: rounded up to its step (never early), at
    least 1 s, at most LONGEST_DELAY (a longer wait goes round that queue again)."""
    wanted = max(1, math.ceil(seconds - 1e-6))
    for up_to, step in DELAY_STEPS:
        if wanted <= up_to:
            return math.ceil(wanted / step) * step
    return LONGEST_DELAY


def delay_bucket_below(seconds: float) -> int:
    """The longest delay queue not longer than `seconds` (the 1 s queue for less): for a
    wait of our own choosing, such as the poll interval, which then goes exactly at its
    queue's length instead of being rounded up on its way."""
    buckets = delay_buckets()
    return buckets[max(bisect.bisect_right(buckets, seconds + 1e-6) - 1, 0)]


def delay_buckets() -> list[int]:
    """Every delay a delay queue may exist for, shortest first."""
    buckets: list[int] = []
    low = 0
    for up_to, step in DELAY_STEPS:
        buckets += range(low + step, up_to + 1, step)
        low = up_to
    return buckets


@dataclass(frozen=True)
class WorkQueue:
    """A quorum queue fed by one routing key, with its dead-letter and retry queues."""

    queue: RabbitQueue
    routing_key: RoutingKey
    dead_letter: RabbitQueue
    retries: tuple[tuple[int, RabbitQueue], ...]  # (delay in seconds, queue), shortest first
    delays: dict[int, RabbitQueue]  # delay_bucket(seconds) → its delay queue

    def delay_queue(self, seconds: float) -> tuple[int, RabbitQueue]:
        """The delay queue that sends a message back to the work queue after `seconds`
        (rounded up to its bucket; at most LONGEST_DELAY)."""
        bucket = delay_bucket(seconds)
        return bucket, self.delays[bucket]

    @property
    def all_queues(self) -> tuple[RabbitQueue, ...]:
        """Every queue of this work queue, declared or not (delay queues exist once used)."""
        return (
            self.queue,
            self.dead_letter,
            *(q for _, q in self.retries),
            *self.delays.values(),
        )

    def retry_tier(self, attempt: int, at_least: float = 0.0) -> tuple[int, RabbitQueue]:
        """The retry queue for the n-th retry (1-based; the last tier repeats), or the
        shortest one that waits at least `at_least` seconds (a provider's Retry-After)."""
        if at_least > 0:
            return next((t for t in self.retries if t[0] >= at_least), self.retries[-1])
        return self.retries[min(max(attempt, 1), len(self.retries)) - 1]


def _quorum(
    name: str, arguments: dict[str, Any], routing_key: str = "", expires_seconds: int | None = None
) -> RabbitQueue:
    if expires_seconds:
        arguments = {**arguments, "x-expires": expires_seconds * 1000}
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments=arguments,  # type: ignore[arg-type,call-overload]
        routing_key=routing_key,
    )


class Topology:
    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.exchange = RabbitExchange(
            settings.exchange_name, type=ExchangeType.TOPIC, durable=True
        )
        self.prompt_jobs = self._work_queue("prompt.jobs", RoutingKey.JOB_SUBMITTED)
        self.video_jobs = self._work_queue("video.jobs", RoutingKey.PROMPT_READY)
        self.webhook_events, self.webhook_dead_letter = self._webhook_queue()

    @property
    def work_queues(self) -> tuple[WorkQueue, ...]:
        return (self.prompt_jobs, self.video_jobs)

    @property
    def durable_queues(self) -> tuple[RabbitQueue, ...]:
        """Every durable queue of the topology, declared or not (delay queues exist once used)."""
        queues: list[RabbitQueue] = []
        for work in self.work_queues:
            queues += work.all_queues
        return (*queues, self.webhook_events, self.webhook_dead_letter)

    def _webhook_queue(self) -> tuple[RabbitQueue, RabbitQueue]:
        """`notifier.webhooks`, fed by the events that end a job or a batch: a durable queue, so an
        event published while no notifier runs still becomes its deliveries."""
        full = self.settings.queue_name("notifier.webhooks")
        expires = self.settings.amqp_queue_expires_seconds
        dead_letter = _quorum(f"{full}.dlq", {}, expires_seconds=expires)
        queue = _quorum(
            full,
            {
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead_letter.name,
                **self._dead_letter_strategy(),
                "x-delivery-limit": DELIVERY_LIMIT,
            },
            routing_key=WEBHOOK_EVENTS[0].value,
            expires_seconds=expires,
        )
        return queue, dead_letter

    def _dead_letter_strategy(self) -> dict[str, Any]:
        if self.settings.amqp_dead_letter_strategy == "at-least-once":
            # RabbitMQ only moves dead letters at-least-once with reject-publish overflow.
            return {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        return {"x-dead-letter-strategy": "at-most-once"}

    def _work_queue(self, name: str, routing_key: RoutingKey) -> WorkQueue:
        full = self.settings.queue_name(name)
        expires = self.settings.amqp_queue_expires_seconds
        strategy = self._dead_letter_strategy()
        dead_letter = _quorum(f"{full}.dlq", {}, expires_seconds=expires)

        def back_to_work(name: str, delay: int) -> RabbitQueue:
            # Expired messages go back to the work queue through the default exchange.
            return _quorum(
                name,
                {
                    "x-message-ttl": delay * 1000,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": full,
                    **strategy,
                },
                expires_seconds=expires,
            )

        retries = tuple(
            (delay, back_to_work(f"{full}.retry.{delay}s", delay))
            for delay in self.settings.retry_delays
        )
        delays = {delay: back_to_work(f"{full}.delay.{delay}s", delay) for delay in delay_buckets()}
        queue = _quorum(
            full,
            {
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead_letter.name,
                **strategy,
                "x-delivery-limit": DELIVERY_LIMIT,
            },
            routing_key=routing_key.value,
            expires_seconds=expires,
        )
        return WorkQueue(queue, routing_key, dead_letter, retries, delays)

    def status_queue(self, replica_id: str) -> RabbitQueue:
        """A notifier replica's own queue: sees every status event, gone with the replica."""
        return RabbitQueue(
            self.settings.queue_name(f"notifier.{replica_id}"),
            exclusive=True,
            auto_delete=True,
            routing_key=RoutingKey.JOB_STATUS.value,
        )

    async def delete(self, broker: RabbitBroker | None = None) -> None:
        """Remove the work queues (with their delay queues, declared or not) and the
        exchange: test teardown on a shared broker, where left-over quorum queues pile up
        until RabbitMQ runs out of file handles. On a connection of its own (RabbitMQ
        deletes a queue that does not exist without complaint)."""
        connection = await aio_pika.connect(self.settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            for queue in self.durable_queues:
                await channel.queue_delete(queue.name)
            await channel.exchange_delete(self.exchange.name)

    async def declare(self, broker: RabbitBroker) -> None:
        exchange = await broker.declare_exchange(self.exchange)
        for work in self.work_queues:
            queue = await broker.declare_queue(work.queue)
            await queue.bind(exchange, routing_key=work.routing_key.value)
            await broker.declare_queue(work.dead_letter)
            for _, retry in work.retries:
                await broker.declare_queue(retry)
        webhooks = await broker.declare_queue(self.webhook_events)
        for key in WEBHOOK_EVENTS:
            await webhooks.bind(exchange, routing_key=key.value)
        await broker.declare_queue(self.webhook_dead_letter)
