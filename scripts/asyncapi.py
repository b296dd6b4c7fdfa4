"""The AsyncAPI document of the events, generated from the code into docs/asyncapi.yaml.

The real subscribers of the prompt, video and notifier services and every publisher of
`common.messaging.Publishers` (the gateway's `job.submitted` among them) are registered
on one broker that never connects; FastStream describes that broker.

    uv run python scripts/asyncapi.py           # write docs/asyncapi.yaml
    uv run python scripts/asyncapi.py --check   # exit 1 when the file is out of date

`make asyncapi` runs the first; tests/test_asyncapi.py the second.
"""

import argparse
import difflib
import sys
from asyncio import Event
from pathlib import Path
from typing import Any

import yaml
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "asyncapi.yaml"

TITLE = "Product Videos events"
VERSION = "1.0.0"
DESCRIPTION = (
    "Events of the Product Videos pipeline on RabbitMQ (topic exchange `product_videos`). "
    "Every message is persistent JSON published with publisher confirms and carries ids, "
    "never payloads: the job document in MongoDB is the one truth. Delivery is at least "
    "once, so consumers must be idempotent; the order of a job's steps is given by `seq` "
    "on `job.status` only. docs/events.md explains each event and how to consume them."
)
# The server as an installation sees it (the Helm chart's in-cluster RabbitMQ), not the
# environment of whoever generates the file: the document must not depend on it.
SERVER_URL = "amqp://rabbitmq:5672/"
# Each notifier replica names its own queue; the document shows the pattern.
REPLICA = "{replica_id}"


def build() -> ApplicationSchema:
    # Imported here: the services' modules configure logging, which a --help need not do.
    from common.worker import WorkerContext
    from notifier.batches import BatchHub
    from notifier.config import NotifierSettings
    from notifier.events import subscribe_status
    from notifier.hub import Hub
    from notifier.webhooks import subscribe_webhook_events
    from prompt.config import PromptSettings
    from prompt.handlers import register as register_prompt
    from video.config import VideoSettings
    from video.handlers import register as register_video

    # Explicit values for everything that shows in the document: no .env, no AMQP_PREFIX.
    fixed: dict[str, Any] = {
        "_env_file": None,
        "amqp_url": SERVER_URL,
        "amqp_prefix": "",
        "amqp_queue_expires_seconds": None,
        "log_format": "text",
        "log_level": "WARNING",
    }
    prompt_settings = PromptSettings(**fixed, prompt_provider="template")
    ctx = WorkerContext.create(prompt_settings)
    register_prompt(ctx, prompt_settings)
    register_video(ctx, VideoSettings(**fixed, video_provider="local"))

    async def no_view(job: Any) -> dict[str, Any]:
        raise AssertionError("documentation only: nothing is consumed")

    subscribe_status(
        ctx.broker,
        ctx.topology,
        REPLICA,
        Hub(ctx.repo, no_view),
        BatchHub(ctx.repo.jobs.database),
    )
    subscribe_webhook_events(
        ctx.broker, ctx.topology, ctx.repo.jobs.database, NotifierSettings(**fixed), Event()
    )
    spec = AsyncAPI(ctx.broker, title=TITLE, version=VERSION, description=DESCRIPTION)
    schema = spec.to_specification()
    assert isinstance(schema, ApplicationSchema)
    return schema


def render() -> str:
    """The document as YAML, its maps of channels, operations, messages and schemas
    sorted by name (FastStream's order varies from run to run)."""
    document = build().to_jsonable()
    for path in (
        ("channels",),
        ("operations",),
        ("components", "messages"),
        ("components", "schemas"),
    ):
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = dict(sorted(parent[path[-1]].items()))
    return yaml.dump(document, sort_keys=False, allow_unicode=True, width=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args()
    fresh = render()
    if not args.check:
        OUT.write_text(fresh, encoding="utf-8")
        print(f"wrote {OUT.relative_to(ROOT)}")
        return 0
    current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
    if current == fresh:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        fresh.splitlines(keepends=True),
        "docs/asyncapi.yaml (committed)",
        "docs/asyncapi.yaml (from the code)",
    )
    sys.stdout.writelines(diff)
    print("\ndocs/asyncapi.yaml is out of date: run `make asyncapi` and commit it.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
