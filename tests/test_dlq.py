"""`scripts/dlq.py` on the real broker: a dead-lettered work event is listed, shown,
replayed into its work queue, and a dead-letter queue can be purged."""

import json
import os
import subprocess
import sys
from pathlib import Path

import aio_pika

from common.events import JobSubmitted
from common.settings import CommonSettings
from common.topology import Topology

ROOT = Path(__file__).resolve().parent.parent


def dlq(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dlq.py"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def depth(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count or 0)


async def test_list_show_replay_and_purge(service_env: dict[str, str]) -> None:
    settings = CommonSettings(
        amqp_url=service_env["AMQP_URL"],
        amqp_prefix=service_env["AMQP_PREFIX"],
        retry_delays=json.loads(service_env["RETRY_DELAYS"]),
        amqp_queue_expires_seconds=int(service_env["AMQP_QUEUE_EXPIRES_SECONDS"]),
    )
    topology = Topology(settings)
    work = topology.video_jobs
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            topology.exchange.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for queue in (work.queue, work.dead_letter, topology.prompt_jobs.dead_letter):
            declared = await channel.declare_queue(
                queue.name, durable=True, arguments=queue.arguments
            )
            if queue is work.queue:
                await declared.bind(exchange, routing_key=work.routing_key.value)
        events = [JobSubmitted(job_id=f"job-{i}") for i in range(3)]
        for event in events:
            await channel.default_exchange.publish(
                aio_pika.Message(event.model_dump_json().encode(), content_type="application/json"),
                routing_key=work.dead_letter.name,
            )

        listing = dlq(service_env, "list")
        assert f"{work.queue.name}.dlq: 3 message(s)" in listing
        assert "job job-0" in listing and "job job-2" in listing
        assert f"{topology.prompt_jobs.queue.name}.dlq: 0 message(s)" in listing
        shown = dlq(service_env, "show", "video", "--limit", "1")
        assert '"job_id": "job-0"' in shown
        assert await depth(channel, work.dead_letter.name) == 3, "looking took messages away"

        assert "replayed 1 message(s)" in dlq(service_env, "replay", "video", "--job", "job-1")
        assert await depth(channel, work.queue.name) == 1
        assert await depth(channel, work.dead_letter.name) == 2
        replayed = await (await channel.declare_queue(work.queue.name, passive=True)).get()
        assert json.loads(replayed.body)["job_id"] == "job-1"
        await replayed.ack()

        assert "purged 2 message(s)" in dlq(service_env, "purge", work.dead_letter.name, "--yes")
        assert await depth(channel, work.dead_letter.name) == 0
