"""What every FastStream worker shares: its context (broker, database, storage,
pipeline), the one place where job errors are classified and retried, and the
app with its health and metrics routes.

Handlers raise; `stage_handler` decides. A retryable error goes to a delayed
retry queue (no sleep in the handler, so no prefetch slot is held), a permanent
one fails the job with its code, a bug fails it as `internal_error`. The owner reads
the code's stable message; the error's own text goes to the log (`Pipeline.fail`).

Each retry waits its tier's delay (`RETRY_DELAYS`, by attempt: exponential backoff) less
up to `JITTER` of it, so jobs that failed together (a burst of 429s) come back spread out.
A wait longer than the longest tier (a long `Retry-After`) goes round that tier again
until the time written in the message's `x-not-before` header.

A wait that is not a failure but a time chosen on purpose (the next poll of a provider's
job, `RetryLater(exact=True)`) goes to the delay queue of that many seconds instead
(`common.topology.DELAY_STEPS`), so it comes back when it was asked for, not at the next
retry tier (docs/reliability.md, "Delays").

A stage with a `StagePool` gives each owner a fair share of the worker pool before its
handler runs (`common.fairness`, docs/scheduling.md).
"""

import asyncio
import contextlib
import functools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aio_pika.abc import FieldValue
from aio_pika.exceptions import AMQPError
from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

import common.db as database
from common import fairness
from common.errors import JobError
from common.events import Event
from common.jobs import JobRepository
from common.logs import configure_logging, job_id_var
from common.messaging import Publishers, make_broker
from common.metrics import FAIR_SHARE_TURNS, JOB_RETRIES
from common.pipeline import Pipeline
from common.reconciler import Reconciler
from common.settings import CommonSettings
from common.shutdown import exit_zero_after_sigterm
from common.storage import Storage, storage_from_settings
from common.topology import Topology, WorkQueue

# The error code of a broker, database or storage outage inside a handler (retried).
UNAVAILABLE = "infrastructure_unavailable"

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


# A retry comes back after between (1 - JITTER) and all of its tier's delay.
JITTER = 0.2
# On a delayed event: the Unix time (in ms: an AMQP float is only 32 bits) before which
# it must not be handled.
NOT_BEFORE = "x-not-before"
# On an event sent back while its job was in the stage (the next poll, a product's
# prompt awaited): its job took its fair turn already, so none is looked for.
IN_STAGE = "x-in-stage"
# Whether the delivery being handled carries IN_STAGE (`resuming()`).
_RESUMING: ContextVar[bool] = ContextVar("resuming", default=False)


def resuming() -> bool:
    """Whether the delivery being handled comes back to a job already in its stage (a
    poll, `x-in-stage`): its claim then only resumes the job (`resume_only`), so a job
    that was retried meanwhile, ready again, waits for its own event and its fair turn."""
    return _RESUMING.get()


def retry_wait(tier: float, at_least: float = 0.0) -> float:
    """How long a retry waits in a tier of `tier` seconds: jittered below the tier, never
    less than `at_least` (a provider's Retry-After) nor more than the tier."""
    low = min(max(at_least, tier * (1 - JITTER)), tier)
    return random.uniform(low, tier)


class RetryLater(Exception):
    """Not an error: look again after `seconds`. Without `exact` the job is busy elsewhere
    and the shortest retry tier that long (or the longest) will do; with it the event comes
    back after `seconds` (rounded up to its delay queue): the next poll of a provider's job,
    whose handler has noted when on the job (`JobRepository.hand_back(retry_in=...)`)."""

    def __init__(self, seconds: float, *, exact: bool = False) -> None:
        super().__init__(f"retry in {seconds:.0f}s")
        self.seconds = seconds
        self.exact = exact


# Failures of our own infrastructure are always worth another try.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    PyMongoError,
    AMQPError,
    ConnectionError,
    TimeoutError,
)


@dataclass
class WorkerContext:
    settings: CommonSettings
    broker: RabbitBroker
    topology: Topology
    publishers: Publishers
    client: AsyncMongoClient
    db: AsyncDatabase
    repo: JobRepository
    pipeline: Pipeline
    storage: Storage
    # Identifies this process as the holder of a job's lease.
    holder: str
    # The reconciler loop, while it runs (started after the broker, stopped before it).
    background: asyncio.Task[None] | None = None
    # The delay queues this process has declared (each is declared when first used).
    declared_delays: set[str] = field(default_factory=set)
    # Run at shutdown, after the broker and before the database closes (a provider's
    # HTTP client, say).
    closing: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def create(cls, settings: CommonSettings) -> "WorkerContext":
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        broker = make_broker(settings)
        topology = Topology(settings)
        publishers = Publishers(broker, topology)
        client, db = database.connect(settings)
        repo = JobRepository(db)
        return cls(
            settings=settings,
            broker=broker,
            topology=topology,
            publishers=publishers,
            client=client,
            db=db,
            repo=repo,
            pipeline=Pipeline(repo, publishers),
            storage=storage_from_settings(settings),
            holder=f"{settings.service_name}-{uuid.uuid4().hex[:12]}",
        )

    async def start(self) -> None:
        await self.topology.declare(self.broker)
        await database.ensure_indexes(self.db)
        if self.settings.reconcile_enabled:
            reconciler = Reconciler(self.settings, self.repo, self.pipeline, self.holder)
            self.background = asyncio.create_task(reconciler.run(), name="reconciler")

    async def stop_background(self) -> None:
        if self.background is not None:
            self.background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.background
            self.background = None

    async def stop(self) -> None:
        # The reconciler first (the app stopped it already; a context used on its own, as
        # in tests, must not leave it looping on a closed client).
        await self.stop_background()
        for close in self.closing:
            try:
                await close()
            except Exception:
                log.exception("closing %s at shutdown failed", close)
        await self.client.close()

    def app(self) -> AsgiFastStream:
        from common.health import worker_routes

        return AsgiFastStream(
            self.broker,
            asgi_routes=worker_routes(self.broker, self.db, self.storage),
            after_startup=[self.start],
            on_shutdown=[self.stop_background],
            after_shutdown=[self.stop, exit_zero_after_sigterm],
        )

    async def _delay(
        self,
        event: Event,
        work: WorkQueue,
        *,
        attempt: int = 1,
        at_least: float = 0.0,
        strict: bool = False,
    ) -> float:
        """Send the event back to its work queue after a delay, via a TTL retry queue
        (the message's own expiration jitters it below the queue's TTL). `strict`: not
        before `at_least` even when that is longer than the longest tier (a provider's
        Retry-After); otherwise the longest tier is enough (a busy job, the next poll)."""
        tier, queue = work.retry_tier(attempt, at_least)
        headers: dict[str, FieldValue] = {}
        if strict and at_least > tier:  # round the longest tier again until then
            headers[NOT_BEFORE] = int((time.time() + at_least) * 1000)
        wait = retry_wait(tier, at_least)
        await self.broker.publish(
            event,
            queue=queue.name,
            persist=True,
            mandatory=True,
            expiration=wait,
            headers=headers,
        )
        delay = at_least if headers else wait
        with contextlib.suppress(PyMongoError):  # only a hint for the reconciler
            await self.repo.schedule_retry(event.job_id, seconds=delay)
        return delay

    async def _delay_exactly(
        self, event: Event, work: WorkQueue, seconds: float, *, in_stage: bool = False
    ) -> float:
        """Send the event back to its work queue after `seconds` (rounded up to whole
        seconds, coarser steps for long waits), through the delay queue of that length;
        past the longest one the event goes round it again until its `x-not-before`.
        `in_stage`: its job is in the stage already (marked `x-in-stage`)."""
        bucket, queue = work.delay_queue(seconds)
        headers: dict[str, FieldValue] = {}
        if seconds > bucket:
            headers[NOT_BEFORE] = int((time.time() + seconds) * 1000)
        if in_stage:
            headers[IN_STAGE] = 1
        if queue.name not in self.declared_delays:
            await self.broker.declare_queue(queue)
            self.declared_delays.add(queue.name)
        await self.broker.publish(
            event, queue=queue.name, persist=True, mandatory=True, headers=headers
        )
        return float(max(bucket, seconds))

    def _headers(self) -> dict[str, Any]:
        """The headers of the delivery being handled."""
        message = self.broker.context.get_local("message")
        return getattr(message, "headers", None) or {}

    def _not_yet(self, headers: dict[str, Any]) -> float:
        """Seconds until the delivery being handled may run (its `x-not-before`), or 0."""
        try:
            return max(int(headers.get(NOT_BEFORE, 0)) / 1000 - time.time(), 0.0)
        except (TypeError, ValueError):
            return 0.0

    async def _fair_turn(
        self, event: E, work: WorkQueue, stage: str, pool: fairness.StagePool
    ) -> E:
        """The event to handle now: this one, or one for the job owed the slot by
        `common.fairness`; then this event goes back to the end of its queue first (a
        crash in between leaves a duplicate, which the claim drops, never a loss)."""
        owed = await fairness.owed_instead(self.repo.jobs, job_id=event.job_id, stage=pool)
        if owed is None:
            return event
        await self.broker.publish(event, queue=work.queue.name, persist=True, mandatory=True)
        FAIR_SHARE_TURNS.labels(stage=stage).inc()
        log.info("%s: job %s goes first (its owner has fewer jobs in the stage)", stage, owed)
        return event.model_copy(update={"job_id": owed, "event_id": uuid.uuid4().hex})

    async def _hand_back(self, job_id: str) -> None:
        """On shutdown mid-job: drop our lease so the redelivered event is taken over at
        once (the message itself goes back to the queue unacked)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.repo.hand_back(job_id, holder=self.holder), 3)

    async def _on_error(self, event: E, error: JobError, stage: str, work: WorkQueue) -> None:
        if not error.retryable:
            await self.pipeline.fail(
                event.job_id, code=error.code, detail=f"{stage}: {error.message}"
            )
            return
        attempts = await self.repo.record_attempt(
            event.job_id, holder=self.holder, code=error.code, message=error.message
        )
        if attempts is None:
            log.info("%s: another worker is on this job; dropping a duplicate delivery", stage)
            return
        if attempts >= self.settings.max_attempts:
            await self.pipeline.fail(
                event.job_id,
                code=error.code,
                detail=f"{stage}: {error.message} (gave up after {attempts} attempts)",
                retryable=True,
            )
            return
        delay = await self._delay(
            event, work, attempt=attempts, at_least=error.retry_after or 0.0, strict=True
        )
        JOB_RETRIES.labels(stage=stage, error_code=error.code).inc()
        log.info("%s will retry in %ss (attempt %d): %s", stage, delay, attempts, error.message)

    def stage_handler(
        self,
        stage: str,
        work: WorkQueue,
        pool: fairness.StagePool | None = None,
    ) -> Callable[[Callable[[E], Awaitable[Any]]], Callable[[E], Awaitable[Any]]]:
        """Wrap a handler with job logging context, `x-not-before` deferral, fair shares
        of the pool (with `pool`) and error classification (stage time is observed on
        each transition, `common.pipeline`)."""
        # A series from the start (the code this wrapper itself raises for every stage),
        # so the retries panel shows 0 rather than "No data" before the first retry.
        JOB_RETRIES.labels(stage=stage, error_code=UNAVAILABLE)
        FAIR_SHARE_TURNS.labels(stage=stage)
        fair = pool if self.settings.fair_share_enabled else None

        def decorate(handler: Callable[[E], Awaitable[Any]]) -> Callable[[E], Awaitable[Any]]:
            @functools.wraps(handler)
            async def wrapper(event: E) -> None:
                token = job_id_var.set(event.job_id)
                headers = self._headers()
                in_stage = bool(headers.get(IN_STAGE))
                resumes = _RESUMING.set(in_stage)
                try:
                    if (left := self._not_yet(headers)) > 1:
                        await self._delay_exactly(event, work, left, in_stage=in_stage)
                        return
                    if fair is not None and not in_stage:
                        event = await self._fair_turn(event, work, stage, fair)
                        job_id_var.set(event.job_id)
                    await handler(event)
                except asyncio.CancelledError:
                    # The grace period ran out while stopping: hand the job back.
                    await asyncio.shield(self._hand_back(event.job_id))
                    raise
                except RetryLater as later:
                    if later.exact:
                        await self._delay_exactly(event, work, later.seconds, in_stage=True)
                    else:
                        await self._delay(event, work, at_least=later.seconds)
                except JobError as error:
                    await self._on_error(event, error, stage, work)
                except INFRASTRUCTURE_ERRORS as e:
                    unavailable = JobError(
                        UNAVAILABLE,
                        f"{stage}: {type(e).__name__}: {e}",
                        retryable=True,
                    )
                    try:
                        await self._on_error(event, unavailable, stage, work)
                    except PyMongoError:
                        # The database is down, so the attempt cannot be counted: retry
                        # later without it rather than nack into a redelivery loop that
                        # would dead-letter the event within seconds.
                        await self._delay(event, work, attempt=1)
                except Exception as e:
                    log.exception("%s crashed", stage)
                    await self.pipeline.fail(
                        event.job_id,
                        code="internal_error",
                        detail=f"Unexpected error while {stage}: {type(e).__name__}: {e}",
                    )
                finally:
                    _RESUMING.reset(resumes)
                    job_id_var.reset(token)

            return wrapper

        return decorate
