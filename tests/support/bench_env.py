"""What a bench script runs the services on: the local RabbitMQ, a SecantusDB, the SMTP
sink, the offline providers (template prompts, the local renderer) and no free-tier limits.
Everything is torn down by the caller's ExitStack, the bench's queues deleted first."""

import uuid
from contextlib import ExitStack
from pathlib import Path

from tests.support import backends, mail


def offline_env(stack: ExitStack, work: Path, name: str) -> dict[str, str]:
    """The services' environment for the bench `name`, its data under `work`."""
    amqp_url = stack.enter_context(backends.rabbitmq())
    mongodb_url = stack.enter_context(backends.mongodb(work))
    sink = mail.shared_sink()
    stack.callback(mail.stop_shared_sink)
    tag = uuid.uuid4().hex[:8]
    env = {
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": f"bench.{name}.{tag}.",
        "AMQP_QUEUE_EXPIRES_SECONDS": "900",
        "AMQP_DEAD_LETTER_STRATEGY": "at-most-once",
        "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": f"pv_bench_{name}_{tag}",
        "STORAGE_URL": f"file://{work / 'objects'}",
        "SIGNING_KEY": f"bench-{tag}",
        "PROMPT_PROVIDER": "template",
        "VIDEO_PROVIDER": "local",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
        "RETRY_DELAYS": "[5,30,120]",
        "FREE_JOBS_PER_IP": "0",
        "FREE_JOBS_PER_EMAIL": "0",
        "FREE_RUNNING_JOBS_PER_EMAIL": "0",
        **sink.env,
    }
    stack.callback(backends.delete_topology, env)
    return env
