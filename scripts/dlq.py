"""`make dlq`: look at and replay dead-lettered work events.

A work event lands in `prompt.jobs.dlq` or `video.jobs.dlq` when it was delivered more
often than the delivery limit (its handler kept crashing the worker). The job it names is
in MongoDB; replaying sends the event back to its work queue, where the (idempotent)
handler picks the job up again.

    python scripts/dlq.py list                          # counts, and a line per message
    python scripts/dlq.py show prompt [--limit 5]       # headers and bodies
    python scripts/dlq.py replay video [--job ID] [--limit N]
    python scripts/dlq.py purge prompt --yes

QUEUE is `prompt`, `video` or a full queue name. AMQP_URL and AMQP_PREFIX are read from
the environment as by the services, so the names match theirs.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from common.settings import CommonSettings

WORK_QUEUES = ("prompt.jobs", "video.jobs")


def work_queue(settings: CommonSettings, name: str) -> str:
    """`prompt` / `prompt.jobs` / `<prefix>prompt.jobs.dlq` → the prefixed work queue."""
    base = name.removeprefix(settings.amqp_prefix).removesuffix(".dlq")
    if base in ("prompt", "video"):
        base = f"{base}.jobs"
    if base not in WORK_QUEUES:
        raise SystemExit(f"unknown queue {name!r}: use prompt, video or a *.jobs.dlq name")
    return settings.queue_name(base)


@asynccontextmanager
async def channel(settings: CommonSettings) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        yield await connection.channel(publisher_confirms=True)


async def dead_letters(ch: AbstractChannel, work: str) -> AbstractQueue:
    return await ch.declare_queue(f"{work}.dlq", passive=True)


async def fetch(queue: AbstractQueue, limit: int | None) -> list[AbstractIncomingMessage]:
    """Take up to `limit` messages without acking them: closing the channel puts back
    every one that was not acked."""
    taken: list[AbstractIncomingMessage] = []
    while limit is None or len(taken) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    return taken


def describe(message: AbstractIncomingMessage) -> dict[str, Any]:
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body.decode(errors="replace")
    deaths = (message.headers or {}).get("x-death") or []
    first = deaths[0] if deaths else {}
    return {
        "job_id": body.get("job_id") if isinstance(body, dict) else None,
        "type": body.get("type") if isinstance(body, dict) else None,
        "reason": str(first.get("reason", "")),
        "from": str(first.get("queue", "")),
        "deliveries": (message.headers or {}).get("x-delivery-count"),
        "body": body,
    }


async def cmd_list(settings: CommonSettings, args: argparse.Namespace) -> None:
    for base in WORK_QUEUES:
        work = settings.queue_name(base)
        # A channel each: asking for a queue that does not exist closes the channel.
        async with channel(settings) as ch:
            try:
                queue = await dead_letters(ch, work)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                print(f"{work}.dlq: not declared (no worker has started with this prefix)")
                continue
            count = queue.declaration_result.message_count or 0
            print(f"{work}.dlq: {count} message(s)")
            for message in await fetch(queue, args.limit):
                info = describe(message)
                print(
                    f"  job {info['job_id']}  {info['type']}"
                    f"  ({info['reason']} from {info['from']})"
                )


async def cmd_show(settings: CommonSettings, args: argparse.Namespace) -> None:
    work = work_queue(settings, args.queue)
    async with channel(settings) as ch:
        for message in await fetch(await dead_letters(ch, work), args.limit):
            info = describe(message)
            print(json.dumps({**info, "headers": message.headers}, default=str, indent=2))


async def cmd_replay(settings: CommonSettings, args: argparse.Namespace) -> None:
    work = work_queue(settings, args.queue)
    replayed = 0
    async with channel(settings) as ch:
        queue = await dead_letters(ch, work)
        for message in await fetch(queue, None if args.job else args.limit):
            if args.job and describe(message)["job_id"] != args.job:
                continue  # left in the queue: not acked
            # Back into the work queue through the default exchange, confirmed, then acked.
            await ch.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    content_type=message.content_type or "application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message.message_id,
                ),
                routing_key=work,
                mandatory=True,
            )
            await message.ack()
            replayed += 1
            if args.limit and replayed >= args.limit:
                break
    print(f"replayed {replayed} message(s) from {work}.dlq into {work}")


async def cmd_purge(settings: CommonSettings, args: argparse.Namespace) -> None:
    if not args.yes:
        raise SystemExit("purge deletes the messages for good: add --yes")
    work = work_queue(settings, args.queue)
    async with channel(settings) as ch:
        result = await (await dead_letters(ch, work)).purge()
    print(f"purged {result.message_count} message(s) from {work}.dlq")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="how many messages each dead-letter queue holds")
    listing.add_argument("--limit", type=int, default=20, help="messages listed per queue")
    show = sub.add_parser("show", help="the messages of one dead-letter queue, in full")
    show.add_argument("queue")
    show.add_argument("--limit", type=int, default=10)
    replay = sub.add_parser("replay", help="send messages back to their work queue")
    replay.add_argument("queue")
    replay.add_argument("--job", help="only the messages of this job")
    replay.add_argument("--limit", type=int, default=None, help="at most this many")
    purge = sub.add_parser("purge", help="delete every message of one dead-letter queue")
    purge.add_argument("queue")
    purge.add_argument("--yes", action="store_true")
    return p


COMMANDS = {"list": cmd_list, "show": cmd_show, "replay": cmd_replay, "purge": cmd_purge}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    asyncio.run(COMMANDS[args.command](CommonSettings(), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
