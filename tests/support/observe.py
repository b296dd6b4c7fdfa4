"""Looking at the system from outside: queue depths on the broker and the
services' own Prometheus metrics."""

from collections.abc import Callable

import aio_pika
import httpx
from aiormq.exceptions import ChannelNotFoundEntity
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import Service


async def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in a queue (0 if it does not exist), without consuming them."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return 0
        return int(declared.declaration_result.message_count or 0)


async def metric(
    service: Service, name: str, match: Callable[[dict[str, str]], bool] = lambda _: True
) -> float:
    """The sum of a metric's samples (counters: their `_total`) whose labels match."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{service.ops_url}/metrics", timeout=10)
    response.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and match(sample.labels):
                total += sample.value
    return total
