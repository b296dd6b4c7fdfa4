"""OpenRouter's webhook: a signed callback when a video job ends (webhook mode).

The callback only wakes the video worker: it publishes `prompt.ready` for the job again,
and the worker (idempotent, with the provider job's id saved on the job) polls OpenRouter
at once instead of at its next scheduled poll. Nothing in the body is trusted beyond
finding the job, so a replayed or forged-but-valid callback can at most cause one poll.
"""

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from common.errors import ApiError
from common.events import JobStatus, PromptReady
from common.jobs import now
from common.logs import job_id_var
from common.views import API_PREFIX
from gateway.api.deps import ServicesDep, SettingsDep
from gateway.models import error_responses

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/webhooks", tags=["webhooks"])

# Signatures older (or further ahead) than this are refused: a captured callback
# cannot be replayed later.
TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 1024 * 1024


class WebhookAnswer(BaseModel):
    status: str  # "accepted", "duplicate" or "ignored"


def _refused(message: str) -> ApiError:
    return ApiError(401, "invalid_signature", message)


def verify_signature(
    secret: str, header: str | None, body: bytes, *, at: float | None = None
) -> None:
    """Check `X-OpenRouter-Signature: t=<unix>,v1=<hex>`, where hex is
    HMAC-SHA256(secret, "<t>," + body); raise a 401 ApiError when it does not hold."""
    if not header:
        raise _refused("The X-OpenRouter-Signature header is missing.")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        stamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise _refused("The signature has no valid timestamp.") from None
    if abs((time.time() if at is None else at) - stamp) > TOLERANCE_SECONDS:
        raise _refused(f"The signature's timestamp is more than {TOLERANCE_SECONDS} s off.")
    expected = hmac.new(secret.encode(), f"{stamp},".encode() + body, hashlib.sha256).digest()
    # As bytes: compare_digest refuses (TypeError) non-ASCII text, which a forger may send.
    given = [v.encode("utf-8", "replace") for v in parts.get("v1", [])]
    if not any(hmac.compare_digest(expected.hex().encode(), v) for v in given):
        raise _refused("The signature does not match the body.")


@router.post(
    "/openrouter",
    response_model=WebhookAnswer,
    summary="OpenRouter calls this when a video job ends (webhook mode)",
    responses=error_responses(400, 401, 404, 413),
)
async def openrouter_webhook(
    request: Request, services: ServicesDep, settings: SettingsDep
) -> dict[str, Any]:
    secret = settings.openrouter_webhook_secret
    if secret is None:
        raise ApiError(
            404, "not_found", "OpenRouter webhooks are not enabled (OPENROUTER_WEBHOOK_SECRET)."
        )
    body = await request.body()  # verified as raw bytes, before any parsing
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", "The callback body is too large.")
    verify_signature(secret.get_secret_value(), request.headers.get("X-OpenRouter-Signature"), body)
    try:
        payload = json.loads(body)
        data = payload["data"]
        video_id = str(data["id"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "bad_request", "The callback has no data.id.") from None
    # The de-duplication key comes from the signed body, never from the unsigned
    # X-OpenRouter-Idempotency-Key header (it has the same `<id>-<status>` form): a replayed
    # callback with a header of someone's choosing could otherwise mark another job's
    # callback as seen and have it dropped.
    key = f"{video_id}-{data.get('status')}"
    events = services.db["webhook_events"]
    if await events.find_one({"_id": key}, {"_id": 1}):
        return {"status": "duplicate"}

    job = await services.repo.jobs.find_one(
        {"provider_job.provider": "openrouter", "provider_job.id": video_id}, {"status": 1}
    )
    answer = "ignored"
    if job is not None:
        job_id_var.set(job["_id"])
        if job["status"] == JobStatus.GENERATING:
            # The video worker polls the job at once (and stores the clip if it is done).
            await services.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
            answer = "accepted"
    log.info("OpenRouter callback %s for video %s: %s", key, video_id, answer)
    # Remembered only once handled: a callback whose wake-up failed is taken when it comes
    # again; two taken at once wake the worker twice, which it shrugs off.
    try:
        await events.insert_one(
            {
                "_id": key,
                "video_id": video_id,
                "job_id": job["_id"] if job else None,
                "status": data.get("status"),
                "received_at": now(),
            }
        )
    except DuplicateKeyError:
        return {"status": "duplicate"}
    return {"status": answer}
