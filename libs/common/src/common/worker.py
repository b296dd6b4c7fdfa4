"""What every FastStream worker shares: its context (broker, database, storage,
pipeline), the one place where job errors are classified and retried, and the
app with its health and metrics routes.

Handlers raise; `stage_handler` decides. A retryable error goes to a delayed
retry queue (no sleep in the handler, so no prefetch slot is held), a permanent
one fails the job with its reason, a bug fails it as `internal_error`.
"""

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aio_pika.exceptions import AMQPError
from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

import common.db as database
from common.errors import JobError
from common.events import Event
from common.jobs import JobRepository
from common.logs import configure_logging, job_id_var
from common.messaging import Publishers, make_broker
from common.metrics import JOB_RETRIES, STAGE_SECONDS
from common.pipeline import Pipeline
from common.settings import CommonSettings
from common.storage import Storage, storage_from_settings
from common.topology import Topology, WorkQueue

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


class RetryLater(Exception):
    """Not an error: the job is busy elsewhere; look again after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry in {seconds:.0f}s")
        self.seconds = seconds


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

    async def stop(self) -> None:
        await self.client.close()

    def app(self) -> AsgiFastStream:
        from common.health import worker_routes

        return AsgiFastStream(
            self.broker,
            asgi_routes=worker_routes(self.broker, self.db, self.storage),
            after_startup=[self.start],
            after_shutdown=[self.stop],
        )

    async def _delay(
        self, event: Event, work: WorkQueue, *, attempt: int = 1, at_least: float = 0.0
    ) -> float:
        """Send the event back to its work queue after a delay, via a TTL retry queue."""
        delay, queue = work.retry_tier(attempt, at_least)
        await self.broker.publish(event, queue=queue.name, persist=True, mandatory=True)
        return delay

    async def _on_error(self, event: E, error: JobError, stage: str, work: WorkQueue) -> None:
        if not error.retryable:
            log.warning("%s failed: %s (%s)", stage, error.message, error.code)
            await self.pipeline.fail(event.job_id, code=error.code, message=error.message)
            return
        attempts = await self.repo.record_attempt(
            event.job_id, code=error.code, message=error.message
        )
        if attempts >= self.settings.max_attempts:
            log.warning("%s gave up after %d attempts: %s", stage, attempts, error.message)
            await self.pipeline.fail(
                event.job_id,
                code=error.code,
                message=f"{error.message} (gave up after {attempts} attempts)",
                retryable=True,
            )
            return
        delay = await self._delay(event, work, attempt=attempts, at_least=error.retry_after or 0.0)
        JOB_RETRIES.labels(stage=stage, error_code=error.code).inc()
        log.info("%s will retry in %ss (attempt %d): %s", stage, delay, attempts, error.message)

    def stage_handler(
        self,
        stage: str,
        work: WorkQueue,
    ) -> Callable[[Callable[[E], Awaitable[Any]]], Callable[[E], Awaitable[Any]]]:
        """Wrap a handler with job logging context, timing and error classification."""

        def decorate(handler: Callable[[E], Awaitable[Any]]) -> Callable[[E], Awaitable[Any]]:
            @functools.wraps(handler)
            async def wrapper(event: E) -> None:
                token = job_id_var.set(event.job_id)
                started = time.monotonic()
                try:
                    await handler(event)
                except RetryLater as busy:
                    await self._delay(event, work, at_least=busy.seconds)
                except JobError as error:
                    await self._on_error(event, error, stage, work)
                except INFRASTRUCTURE_ERRORS as e:
                    await self._on_error(
                        event,
                        JobError(
                            "infrastructure_unavailable",
                            f"{stage}: {type(e).__name__}: {e}",
                            retryable=True,
                        ),
                        stage,
                        work,
                    )
                except Exception as e:
                    log.exception("%s crashed", stage)
                    await self.pipeline.fail(
                        event.job_id,
                        code="internal_error",
                        message=f"Unexpected error while {stage}: {type(e).__name__}: {e}",
                    )
                finally:
                    STAGE_SECONDS.labels(stage=stage).observe(time.monotonic() - started)
                    job_id_var.reset(token)

            return wrapper

        return decorate
