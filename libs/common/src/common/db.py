"""MongoDB access through PyMongo's async API (works with MongoDB and SecantusDB)."""

import contextlib
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from common.metrics import MONGODB_COMMANDS
from common.settings import CommonSettings

# Commands of the driver itself (server monitoring, sessions), not of the application.
_DRIVER_COMMANDS = frozenset(
    {"hello", "ismaster", "isMaster", "ping", "endSessions", "saslStart", "saslContinue"}
)


class CommandCounter(monitoring.CommandListener):
    """Counts every command the application sends (`pv_mongodb_commands_total`): the
    round trips per job that `make bench` reports."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in _DRIVER_COMMANDS:
            return
        target = event.command.get(event.command_name)
        collection = target if isinstance(target, str) else ""
        MONGODB_COMMANDS.labels(command=event.command_name, collection=collection).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_COUNTER = CommandCounter()


def one_server(url: str) -> bool:
    """A `mongodb://` URL naming one host and no replica set. The client then talks to that
    server directly: discovering a topology, it dropped the only host it knew when the
    server answered oddly while restarting (seen with SecantusDB: `ReplicaSetNoPrimary`,
    no servers, never ready again). Replica sets (several hosts, `replicaSet=`,
    `mongodb+srv://`) keep discovery and failover."""
    if not url.startswith("mongodb://"):
        return False
    hosts = url.removeprefix("mongodb://").split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    query = url.partition("?")[2].lower()
    return "," not in hosts and "replicaset=" not in query and "directconnection=" not in query


def connect(settings: CommonSettings) -> tuple[AsyncMongoClient, AsyncDatabase]:
    options: dict[str, Any] = {"directConnection": True} if one_server(settings.mongodb_url) else {}
    client: AsyncMongoClient = AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        event_listeners=[_COUNTER],
        **options,
    )
    return client, client[settings.mongodb_database]


async def ensure_indexes(db: AsyncDatabase) -> None:
    jobs = db["jobs"]
    await jobs.create_index(
        [("owner", 1), ("idempotency_key", 1)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
        name="owner_idempotency_key",
    )
    # An owner's jobs newest first, as GET /api/v1/jobs pages them (by created_at, then _id):
    # with _id in the index no page sorts all of a large catalogue's jobs in memory. It
    # replaces `owner_created`, which lacked _id.
    await jobs.create_index(
        [("owner", 1), ("created_at", -1), ("_id", -1)], name="owner_created_id"
    )
    with contextlib.suppress(OperationFailure):  # absent: a new database, or dropped before
        await jobs.drop_index("owner_created")
    await jobs.create_index([("status", 1), ("updated_at", 1)], name="status_updated")
    # Fair shares (common/fairness.py): the owners with jobs ready for a stage, the jobs
    # each has working in it, and the oldest ready job of one owner.
    await jobs.create_index(
        [("status", 1), ("owner", 1), ("updated_at", 1)], name="status_owner_updated"
    )
    await db["prompts"].create_index([("created_at", 1)], name="created")
    # Result reuse (common/result_reuse.py): an owner's completed jobs by result key, newest
    # first; and which jobs name a stored clip or poster (shared by the jobs that reuse it).
    # Not partial: SecantusDB plans no query onto a partial compound index, and scanned
    # every job for each submission. It replaces the partial `owner_result_key`.
    await jobs.create_index(
        [("owner", 1), ("result_key", 1), ("status", 1), ("updated_at", -1)],
        name="owner_result_status",
    )
    with contextlib.suppress(OperationFailure):
        await jobs.drop_index("owner_result_key")
    await jobs.create_index([("video.key", 1)], name="video_key", sparse=True)
    await jobs.create_index([("video.poster_key", 1)], name="video_poster_key", sparse=True)
    # The OpenRouter webhook finds a job by its provider job's id, and drops callbacks it
    # has seen (by their idempotency key, the _id) for a week.
    await jobs.create_index([("provider_job.id", 1)], name="provider_job_id", sparse=True)
    await db["webhook_events"].create_index(
        [("received_at", 1)], name="received_ttl", expireAfterSeconds=7 * 24 * 3600
    )
    # Paid clips' spending per UTC day (video.budget); each day document carries its end.
    await db["spending"].create_index("expires_at", expireAfterSeconds=0, name="expires")
    # Products (gateway/products.py): an owner's Idempotency-Key names one product; a
    # product's jobs, a batch's products.
    await db["products"].create_index(
        [("owner", 1), ("idempotency_key", 1)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
        name="owner_idempotency_key",
    )
    await db["products"].create_index([("batch_id", 1)], name="batch_id", sparse=True)
    await jobs.create_index([("product_id", 1)], name="product_id", sparse=True)
