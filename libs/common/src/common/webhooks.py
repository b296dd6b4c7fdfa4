"""Outgoing webhooks: what the gateway (which registers endpoints and lists deliveries)
and the notifier (which creates and sends deliveries) share.

Collections:
- `webhook_endpoints`: `_id` (`ep_…`), `owner`, `url`, `events`, `description`,
  `enabled`, `disabled_reason`, `secrets` (newest first, each `sealed` under SIGNING_KEY
  (common.sealing), never stored in the clear; `expires_at` set on a rotated-out secret,
  which keeps signing beside the new one until then), `failing_since`,
  `created_at`, `updated_at`.
- `webhook_deliveries`: `_id` (`msg_…`, the `webhook-id` header, the same on every
  attempt), `endpoint_id`, `owner`, `type`, `job_id`, `seq` (the job's, at the event),
  `key` (unique: endpoint, job, event, seq: a redelivered event makes no second
  delivery), `order` (endpoint + job: sent one at a time, in `seq` order), `occurred_at`,
  `job` (the job as it was at the event; a `batch.completed` delivery has `batch_id`,
  `seq` 0 and `batch`, the batch's summary when it ended, instead), `status`
  (`pending`, `delivering`, `delivered`, `failed`), `next_attempt_at`, `lease_until`,
  `give_up_at`, `attempts` (time, status code, duration, error), `attempt_count`,
  `created_at`.

Signatures follow the Standard Webhooks spec: `v1,<base64 HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.{body}">` with the secret's base64-decoded bytes as
the key, one space-separated signature per live secret.
"""

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from common.sealing import Sealer, Unreadable

SECRET_PREFIX = "whsec_"
ENDPOINTS = "webhook_endpoints"
DELIVERIES = "webhook_deliveries"


class WebhookEvent(StrEnum):
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    BATCH_COMPLETED = "batch.completed"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def new_endpoint_id() -> str:
    return f"ep_{secrets.token_hex(10)}"


def new_message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature: `v1,<base64>`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def secret_entry(secret: str, endpoint_id: str, sealer: Sealer, now: datetime) -> dict[str, Any]:
    """A new signing secret as the endpoint stores it: sealed, bound to the endpoint."""
    return {"sealed": sealer.seal(secret, endpoint_id), "created_at": now, "expires_at": None}


def live_secrets(endpoint: dict[str, Any], now: datetime, sealer: Sealer) -> list[str]:
    """The secrets that sign now: the current one and any rotated out less than a day
    ago. Raises `common.sealing.Unreadable` when one was sealed under another key."""
    return [
        _opened(s, endpoint["_id"], sealer)
        for s in endpoint.get("secrets", [])
        if s.get("expires_at") is None or s["expires_at"] > now
    ]


def readable(entry: dict[str, Any], endpoint_id: str, sealer: Sealer) -> bool:
    """Whether a stored secret opens under this deployment's key."""
    try:
        _opened(entry, endpoint_id, sealer)
    except Unreadable:
        return False
    return True


def _opened(entry: dict[str, Any], endpoint_id: str, sealer: Sealer) -> str:
    if "sealed" in entry:
        return sealer.open(entry["sealed"], endpoint_id)
    return str(entry["secret"])  # stored in the clear by an older version: sealed at start


def signature_header(
    endpoint: dict[str, Any],
    message_id: str,
    timestamp: int,
    body: bytes,
    now: datetime,
    sealer: Sealer,
) -> str:
    return " ".join(
        sign(s, message_id, timestamp, body) for s in live_secrets(endpoint, now, sealer)
    )


async def seal_stored_secrets(db: AsyncDatabase, sealer: Sealer) -> int:
    """Seal the secrets an older version stored in the clear; how many endpoints changed.
    Each endpoint in one conditional write (on its secrets as read), so a rotation at
    the same moment is not overwritten: it is sealed by its own code already."""
    endpoints = db[ENDPOINTS]
    changed = 0
    async for endpoint in endpoints.find({"secrets.secret": {"$exists": True}}):
        stored = endpoint["secrets"]
        sealed = [
            {
                **{k: v for k, v in entry.items() if k != "secret"},
                "sealed": sealer.seal(entry["secret"], endpoint["_id"]),
            }
            if "secret" in entry
            else entry
            for entry in stored
        ]
        result = await endpoints.update_one(
            {"_id": endpoint["_id"], "secrets": stored}, {"$set": {"secrets": sealed}}
        )
        changed += result.modified_count
    return changed


def order_key(endpoint_id: str, job_id: str) -> str:
    return f"{endpoint_id}:{job_id}"


async def ensure_indexes(db: AsyncDatabase) -> None:
    endpoints, deliveries = db[ENDPOINTS], db[DELIVERIES]
    await endpoints.create_index([("owner", 1), ("created_at", -1)], name="owner")
    await deliveries.create_index("key", unique=True, name="key")
    await deliveries.create_index([("status", 1), ("next_attempt_at", 1)], name="due")
    await deliveries.create_index([("order", 1), ("seq", 1)], name="order")
    await deliveries.create_index(
        [("endpoint_id", 1), ("created_at", -1), ("_id", -1)], name="endpoint"
    )
    # Deliveries are history: kept a month.
    await deliveries.create_index(
        "created_at", name="created_ttl", expireAfterSeconds=30 * 24 * 3600
    )
