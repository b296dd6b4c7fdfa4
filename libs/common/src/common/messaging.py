"""The RabbitMQ broker as every service configures it, and the event publishers.

FastStream's defaults are unlimited prefetch, transient messages and no
graceful wait; here prefetch is explicit, every publish is persistent and
confirmed, and work events are `mandatory` (an unroutable one is an error).
"""

import logging
from typing import Any

from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import REGISTRY

from common.events import (
    BatchCompleted,
    JobCompleted,
    JobFailed,
    JobStatus,
    JobStatusChanged,
    JobSubmitted,
    PromptReady,
    RoutingKey,
)
from common.logs import BROKER_LOGGER
from common.settings import CommonSettings
from common.topology import Topology


def make_broker(settings: CommonSettings, access_log_level: int = logging.INFO) -> RabbitBroker:
    """`access_log_level`: FastStream's "Received" and "Processed" lines about each message."""
    return RabbitBroker(
        settings.amqp_url,
        default_channel=Channel(
            prefetch_count=settings.prefetch, publisher_confirms=True, on_return_raises=True
        ),
        graceful_timeout=settings.graceful_timeout,
        app_id=settings.service_name,
        # Not FastStream's own coloured handler: the lines go out in the service's format.
        logger=BROKER_LOGGER,
        log_level=access_log_level,
        middlewares=[RabbitPrometheusMiddleware(registry=REGISTRY, app_name=settings.service_name)],
        description="Product Videos events: ids only, everything else is in MongoDB.",
    )


class Publishers:
    """Every event the system publishes, declared once."""

    def __init__(self, broker: RabbitBroker, topology: Topology) -> None:
        def publisher(key: RoutingKey, schema: type, mandatory: bool, description: str) -> Any:
            return broker.publisher(
                exchange=topology.exchange,
                routing_key=key.value,
                persist=True,
                mandatory=mandatory,
                schema=schema,
                title=f"{key.value}:publish",
                description=description,
            )

        # Work events must reach their queue; notifications may have no listener.
        self.job_submitted = publisher(
            RoutingKey.JOB_SUBMITTED,
            JobSubmitted,
            True,
            "A job was stored and waits for its prompt.",
        )
        self.prompt_ready = publisher(
            RoutingKey.PROMPT_READY,
            PromptReady,
            True,
            "The job's prompt is stored; the video can be made.",
        )
        self.job_completed = publisher(
            RoutingKey.JOB_COMPLETED, JobCompleted, False, "The clip and its poster are stored."
        )
        self.job_failed = publisher(
            RoutingKey.JOB_FAILED, JobFailed, False, "The job failed; the reason is on the job."
        )
        self.batch_completed = publisher(
            RoutingKey.BATCH_COMPLETED,
            BatchCompleted,
            False,
            "Every job of the batch is final; announced once per batch.",
        )
        self.job_status = publisher(
            RoutingKey.JOB_STATUS,
            JobStatusChanged,
            False,
            "Every status or progress change, with its seq.",
        )

    async def status(self, job: dict[str, Any]) -> None:
        await self.job_status.publish(
            JobStatusChanged(
                job_id=job["_id"],
                seq=job["seq"],
                status=JobStatus(job["status"]),
                progress=job["progress"],
            )
        )
