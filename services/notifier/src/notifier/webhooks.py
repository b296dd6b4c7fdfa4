"""Outgoing webhooks: job and batch events become deliveries in MongoDB, and a worker
sends them.

- `subscribe_webhook_events` consumes `notifier.webhooks` (durable, bound to
  `job.completed`, `job.failed` and `batch.completed`): one delivery per enabled endpoint
  of the job's (batch's) owner that asked for the event, written idempotently (a
  redelivered event finds its deliveries there), then the message is acked.
- `DeliveryWorker` claims due deliveries with a lease (a replica killed mid-send leaves
  them to be claimed again when the lease ends: at least once), sends them through the
  SSRF guard (common.outbound) signed per Standard Webhooks, and records every attempt.
  Failures are retried with growing delays (`WEBHOOK_RETRY_DELAYS`) until
  `WEBHOOK_GIVE_UP_SECONDS` after the event; an endpoint that has failed for
  `WEBHOOK_DISABLE_AFTER_SECONDS` is disabled, with the reason on it.
- Order: a delivery waits while an earlier event of the same job for the same endpoint
  is still pending. Isolation: each endpoint has at most `WEBHOOK_ENDPOINT_CONCURRENCY`
  requests in flight, each bounded by `WEBHOOK_TIMEOUT_SECONDS`, so a slow endpoint
  fills only its own slots.
"""

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common import webhooks
from common.batches import BatchRepository, batch_summary
from common.events import BatchCompleted, JobCompleted, JobFailed
from common.logs import job_id_var
from common.metrics import (
    WEBHOOK_ATTEMPT_SECONDS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS_DISABLED,
)
from common.outbound import OutboundClient, OutboundError
from common.sealing import Sealer, Unreadable
from common.storage import Storage
from common.tokens import Signer
from common.topology import Topology
from common.views import PUBLIC_JOB_FIELDS, public_job
from common.webhooks import DeliveryStatus
from notifier.config import NotifierSettings

log = logging.getLogger(__name__)

# What a delivery keeps of its job: what the public view reads (the one list, in
# common.views: brief, notes and product links included), and the owner to find its
# endpoints, which the snapshot then drops with everything else private.
_DELIVERY_READ = {**PUBLIC_JOB_FIELDS, "owner": 1}
MAX_ATTEMPTS_KEPT = 50
# An attempt whose secret does not open fails with this, sending nothing.
UNREADABLE_SECRET = (
    "The endpoint's signing secret cannot be read: it was sealed under another "
    "SIGNING_KEY. Rotate the endpoint's secret to sign with a new one."
)
RESPONSE_BYTES_READ = 16 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


async def create_deliveries(
    db: AsyncDatabase, settings: NotifierSettings, event_type: str, job_id: str
) -> int:
    """The deliveries of one job event, one per endpoint that wants it; the number new."""
    job = await db["jobs"].find_one({"_id": job_id}, _DELIVERY_READ)
    if job is None:
        return 0
    snapshot = {k: v for k, v in job.items() if k != "owner"}
    about = {"job_id": job_id, "seq": job["seq"], "job": snapshot}
    return await _insert_deliveries(
        db, settings, job["owner"], event_type, job_id, about, job["updated_at"]
    )


async def create_batch_deliveries(
    db: AsyncDatabase, settings: NotifierSettings, batch_id: str
) -> int:
    """The deliveries of `batch.completed`: the batch's counts and cost as they are now
    (every job is final, so they change no more), one per endpoint that wants it."""
    batches = BatchRepository(db)
    batch = await batches.batches.find_one({"_id": batch_id})
    if batch is None:
        return 0
    summary = batch_summary(batch, await batches.jobs_of(batch))
    about = {"batch_id": batch_id, "seq": 0, "batch": summary}
    ended = batch.get("ended_at") or batch.get("finished_at") or _now()
    return await _insert_deliveries(
        db, settings, batch["owner"], webhooks.WebhookEvent.BATCH_COMPLETED, batch_id, about, ended
    )


async def _insert_deliveries(
    db: AsyncDatabase,
    settings: NotifierSettings,
    owner: str,
    event_type: str,
    subject: str,
    about: dict[str, Any],
    occurred_at: datetime,
) -> int:
    """One delivery per enabled endpoint of `owner` that asked for the event, about one
    job or one batch (`subject`); a redelivered event finds its deliveries there."""
    endpoints = db[webhooks.ENDPOINTS].find({"owner": owner, "enabled": True, "events": event_type})
    now = _now()
    created = 0
    async for endpoint in endpoints:
        try:
            await db[webhooks.DELIVERIES].insert_one(
                {
                    "_id": webhooks.new_message_id(),
                    "endpoint_id": endpoint["_id"],
                    "owner": owner,
                    "type": event_type,
                    **about,
                    "key": f"{endpoint['_id']}:{subject}:{event_type}:{about['seq']}",
                    "order": webhooks.order_key(endpoint["_id"], subject),
                    "occurred_at": occurred_at,
                    "status": DeliveryStatus.PENDING,
                    "next_attempt_at": now,
                    "lease_until": None,
                    "give_up_at": now + timedelta(seconds=settings.webhook_give_up_seconds),
                    "attempts": [],
                    "attempt_count": 0,
                    "created_at": now,
                }
            )
            created += 1
        except DuplicateKeyError:
            pass  # this event was turned into its deliveries before (a redelivery)
    return created


def subscribe_webhook_events(
    broker: RabbitBroker,
    topology: Topology,
    db: AsyncDatabase,
    settings: NotifierSettings,
    wake: asyncio.Event,
) -> None:
    @broker.subscriber(
        topology.webhook_events,
        topology.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="notifier.webhooks:consume",
        description="Turns job.completed, job.failed and batch.completed (the queue is "
        "bound to all three) into stored webhook deliveries, one per endpoint that asked "
        "for the event.",
    )
    async def on_webhook_event(event: JobCompleted | JobFailed | BatchCompleted) -> None:
        job_id = None if isinstance(event, BatchCompleted) else event.job_id
        token = job_id_var.set(job_id)
        try:
            if isinstance(event, BatchCompleted):
                created = await create_batch_deliveries(db, settings, event.batch_id)
            else:
                created = await create_deliveries(db, settings, event.type, event.job_id)
            if created:
                wake.set()
        except Exception:
            await asyncio.sleep(1)  # the database is away: come back without a hot loop
            raise
        finally:
            job_id_var.reset(token)


def retry_delay(delays: list[float], attempt: int) -> float:
    """Seconds before the next try after the `attempt`-th failure (1-based): the tiers
    in order, the last one repeated, each shortened by up to a fifth at random (so a
    burst of failures does not come back as one burst)."""
    base = delays[min(attempt, len(delays)) - 1]
    return base * random.uniform(0.8, 1.0)


class DeliveryWorker:
    def __init__(
        self,
        db: AsyncDatabase,
        settings: NotifierSettings,
        storage: Storage,
        client: OutboundClient,
    ) -> None:
        self.settings = settings
        self.endpoints = db[webhooks.ENDPOINTS]
        self.deliveries = db[webhooks.DELIVERIES]
        self.storage = storage
        self.client = client
        # Links in a webhook live minutes: a receiver fetches the clip at once or asks again.
        self.signer = Signer(
            settings.model_copy(
                update={"download_url_ttl_seconds": settings.webhook_link_ttl_seconds}
            )
        )
        self.sealer = Sealer(settings.signing_key.get_secret_value())
        self.wake = asyncio.Event()
        self.in_flight: Counter[str] = Counter()  # endpoint id → requests under way
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        s = self.settings
        while True:
            try:
                await self._claim_and_send()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery loop failed; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.webhook_poll_seconds):
                    await self.wake.wait()
            self.wake.clear()

    async def stop(self) -> None:
        """Let the requests under way finish (each has its deadline), then cancel any left;
        a cancelled one is claimed again when its lease runs out."""
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.settings.webhook_timeout_seconds)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _full(self) -> list[str]:
        return [
            endpoint
            for endpoint, count in self.in_flight.items()
            if count >= self.settings.webhook_endpoint_concurrency
        ]

    async def _claim_and_send(self) -> None:
        s = self.settings
        free = s.webhook_concurrency - sum(self.in_flight.values())
        if free <= 0:
            return
        now = _now()
        due = {
            "$or": [
                {"status": DeliveryStatus.PENDING, "next_attempt_at": {"$lte": now}},
                # Claimed by a replica that died mid-send: the lease has run out.
                {"status": DeliveryStatus.DELIVERING, "lease_until": {"$lte": now}},
            ],
            "endpoint_id": {"$nin": self._full()},
        }
        candidates = self.deliveries.find(
            due, {"_id": 1, "endpoint_id": 1, "order": 1, "seq": 1, "created_at": 1}
        ).sort([("next_attempt_at", 1), ("_id", 1)])
        started = 0
        async for candidate in candidates.limit(free * 4):
            if started >= free:
                break
            endpoint_id = candidate["endpoint_id"]
            if self.in_flight[endpoint_id] >= s.webhook_endpoint_concurrency:
                continue
            if await self._waits_for_earlier(candidate):
                continue
            claimed = await self.deliveries.find_one_and_update(
                {"_id": candidate["_id"], "$or": due["$or"]},
                {
                    "$set": {
                        "status": DeliveryStatus.DELIVERING,
                        "lease_until": _now() + timedelta(seconds=s.webhook_lease_seconds),
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
            if claimed is None:
                continue  # another replica took it
            self.in_flight[endpoint_id] += 1
            started += 1
            task = asyncio.create_task(self._deliver(claimed))
            self.tasks.add(task)
            task.add_done_callback(self._finished(endpoint_id))

    def _finished(self, endpoint_id: str) -> Any:
        def done(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            self.in_flight[endpoint_id] -= 1
            if self.in_flight[endpoint_id] <= 0:
                del self.in_flight[endpoint_id]
            self.wake.set()  # a slot is free: the next one of this endpoint may go

        return done

    async def _waits_for_earlier(self, delivery: dict[str, Any]) -> bool:
        """Whether an earlier event of the same job for the same endpoint is unsent."""
        earlier = await self.deliveries.find_one(
            {
                "order": delivery["order"],
                "_id": {"$ne": delivery["_id"]},
                "status": {"$in": [DeliveryStatus.PENDING, DeliveryStatus.DELIVERING]},
                "$or": [
                    {"seq": {"$lt": delivery["seq"]}},
                    {"seq": delivery["seq"], "created_at": {"$lt": delivery["created_at"]}},
                ],
            },
            {"_id": 1},
        )
        return earlier is not None

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        token = job_id_var.set(delivery.get("job_id"))  # none for a batch's delivery
        try:
            endpoint = await self.endpoints.find_one({"_id": delivery["endpoint_id"]})
            if endpoint is None or not endpoint.get("enabled"):
                await self._give_up(delivery, "The endpoint was disabled or deleted.")
                return
            await self._attempt(endpoint, delivery)
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", delivery["_id"])
            # Left `delivering`: claimed again when its lease runs out.
        finally:
            job_id_var.reset(token)

    async def body(self, delivery: dict[str, Any]) -> bytes:
        if "batch" in delivery:  # batch.completed: counts, cost and export link, no job links
            data = delivery["batch"]
        else:
            data = await public_job(delivery["job"], self.storage, self.signer)
        payload = {
            "type": delivery["type"],
            "timestamp": delivery["occurred_at"].isoformat(),
            "data": data,
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    async def _attempt(self, endpoint: dict[str, Any], delivery: dict[str, Any]) -> None:
        body = await self.body(delivery)
        now = _now()
        stamp = int(time.time())
        started = time.monotonic()
        status_code: int | None
        error: str | None
        try:
            signature = webhooks.signature_header(
                endpoint, delivery["_id"], stamp, body, now, self.sealer
            )
        except Unreadable:
            status_code, error = None, UNREADABLE_SECRET  # nothing goes out unsigned
        else:
            status_code, error = await self._post(endpoint, delivery, body, stamp, signature)
        duration = time.monotonic() - started
        WEBHOOK_ATTEMPT_SECONDS.labels(event=delivery["type"]).observe(duration)
        attempt = {
            "at": now,
            "status_code": status_code,
            "duration_ms": round(duration * 1000),
            "error": error,
        }
        if error is None:
            await self._delivered(endpoint, delivery, attempt)
        else:
            await self._failed(endpoint, delivery, attempt)

    async def _post(
        self,
        endpoint: dict[str, Any],
        delivery: dict[str, Any],
        body: bytes,
        stamp: int,
        signature: str,
    ) -> tuple[int | None, str | None]:
        """POST the signed delivery: the endpoint's status code, and why it failed if it did."""
        headers = {
            "Content-Type": "application/json",
            "webhook-id": delivery["_id"],
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature,
        }
        try:
            response = await self.client.request(
                "POST",
                endpoint["url"],
                headers=headers,
                content=body,
                deadline=self.settings.webhook_timeout_seconds,
                max_bytes=RESPONSE_BYTES_READ,
                truncate=True,
            )
        except OutboundError as e:
            return None, e.message
        if not 200 <= response.status_code < 300:
            return response.status_code, f"The endpoint answered {response.status_code}."
        return response.status_code, None

    def _record(self, attempt: dict[str, Any]) -> dict[str, Any]:
        return {
            "$push": {"attempts": {"$each": [attempt], "$slice": -MAX_ATTEMPTS_KEPT}},
            "$inc": {"attempt_count": 1},
        }

    async def _delivered(
        self, endpoint: dict[str, Any], delivery: dict[str, Any], attempt: dict[str, Any]
    ) -> None:
        await self.deliveries.update_one(
            {"_id": delivery["_id"]},
            {
                "$set": {
                    "status": DeliveryStatus.DELIVERED,
                    "lease_until": None,
                    "delivered_at": _now(),
                },
                **self._record(attempt),
            },
        )
        WEBHOOK_DELIVERIES.labels(event=delivery["type"], outcome="delivered").inc()
        if endpoint.get("failing_since") is not None:
            await self.endpoints.update_one(
                {"_id": endpoint["_id"]}, {"$set": {"failing_since": None}}
            )
        self.wake.set()  # the job's next event for this endpoint may go now

    async def _failed(
        self, endpoint: dict[str, Any], delivery: dict[str, Any], attempt: dict[str, Any]
    ) -> None:
        s = self.settings
        now = _now()
        count = delivery.get("attempt_count", 0) + 1
        next_at = now + timedelta(seconds=retry_delay(s.webhook_retry_delays, count))
        final = next_at > delivery["give_up_at"]
        await self.deliveries.update_one(
            {"_id": delivery["_id"]},
            {
                "$set": {
                    "status": DeliveryStatus.FAILED if final else DeliveryStatus.PENDING,
                    "next_attempt_at": None if final else next_at,
                    "lease_until": None,
                },
                **self._record(attempt),
            },
        )
        outcome = "failed" if final else "retrying"
        WEBHOOK_DELIVERIES.labels(event=delivery["type"], outcome=outcome).inc()
        log.info(
            "webhook %s to endpoint %s: %s (%s)",
            delivery["_id"],
            endpoint["_id"],
            attempt["error"],
            outcome,
        )
        await self._note_endpoint_failure(endpoint, str(attempt["error"]), now)

    async def _note_endpoint_failure(
        self, endpoint: dict[str, Any], error: str, now: datetime
    ) -> None:
        """Remember since when the endpoint fails; past the limit, disable it."""
        failing = await self.endpoints.find_one_and_update(
            {"_id": endpoint["_id"], "failing_since": None},
            {"$set": {"failing_since": now}},
            return_document=ReturnDocument.AFTER,
        ) or await self.endpoints.find_one({"_id": endpoint["_id"]})
        if failing is None or not failing.get("enabled"):
            return
        since = failing["failing_since"]
        limit = timedelta(seconds=self.settings.webhook_disable_after_seconds)
        if since is None or now - since < limit:
            return
        reason = (
            f"Disabled on {now:%Y-%m-%d %H:%M} UTC: every delivery since "
            f"{since:%Y-%m-%d %H:%M} UTC failed (last: {error})"
        )
        disabled = await self.endpoints.update_one(
            {"_id": endpoint["_id"], "enabled": True},
            {"$set": {"enabled": False, "disabled_reason": reason, "disabled_at": now}},
        )
        if disabled.modified_count:
            WEBHOOK_ENDPOINTS_DISABLED.inc()
            log.warning("webhook endpoint %s disabled: %s", endpoint["_id"], reason)
            await self.deliveries.update_many(
                {"endpoint_id": endpoint["_id"], "status": DeliveryStatus.PENDING},
                {"$set": {"status": DeliveryStatus.FAILED, "next_attempt_at": None}},
            )

    async def _give_up(self, delivery: dict[str, Any], reason: str) -> None:
        await self.deliveries.update_one(
            {"_id": delivery["_id"]},
            {
                "$set": {
                    "status": DeliveryStatus.FAILED,
                    "next_attempt_at": None,
                    "lease_until": None,
                },
                **self._record(
                    {"at": _now(), "status_code": None, "duration_ms": 0, "error": reason}
                ),
            },
        )
        WEBHOOK_DELIVERIES.labels(event=delivery["type"], outcome="failed").inc()
