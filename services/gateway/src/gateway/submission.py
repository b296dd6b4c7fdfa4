"""Submitting a job: validate the fields, store the photo, create the job, publish.

A refused request stores nothing; a job is only announced after it is stored;
the same Idempotency-Key from the same owner never makes a second job. A new job
takes one unit of its owner's and its IP's free-tier allowance (a replay takes
none), given back if the job cannot be made after all.
"""

import asyncio
import hashlib
import json
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any

from common.client_ip import network_of
from common.errors import ApiError
from common.events import JobSubmitted
from common.jobs import Job, new_job_id
from common.logs import job_id_var
from common.metrics import JOBS_SUBMITTED
from common.storage import upload_key
from gateway.core.config import GatewaySettings
from gateway.core.services import Services
from gateway.images import NormalizedImage
from gateway.limits import Limit
from gateway.models import JobCreate, JobOptions
from gateway.users import mailbox

log = logging.getLogger(__name__)


def _text_field(
    name: str, value: str | None, max_length: int, *, required: bool
) -> tuple[str | None, dict[str, str] | None]:
    """Strip surrounding whitespace only: everything else the user typed is kept exactly
    (any script, emoji, combining marks); only invisible control characters are refused."""
    text = (value or "").strip()
    if not text:
        return None, ({"field": name, "message": "This field is required."} if required else None)
    if len(text) > max_length:
        return None, {
            "field": name,
            "message": f"At most {max_length} characters (got {len(text)}).",
        }
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text):
        return None, {"field": name, "message": "Control characters are not allowed."}
    return text, None


def validate_fields(
    settings: GatewaySettings,
    *,
    title: str,
    description: str,
    style: str | None,
    options: JobOptions,
) -> JobCreate:
    """The text fields, stripped and within their limits; 422 listing every problem."""
    checked = {
        "title": _text_field("title", title, settings.title_max_length, required=True),
        "description": _text_field(
            "description", description, settings.description_max_length, required=True
        ),
        "style": _text_field("style", style, settings.style_max_length, required=False),
    }
    problems = [problem for _, problem in checked.values() if problem]
    if problems:
        raise ApiError(422, "validation_error", "The request is not valid.", details=problems)
    return JobCreate(
        title=checked["title"][0] or "",
        description=checked["description"][0] or "",
        options=options.model_copy(update={"style": checked["style"][0]}),
    )


def validate_idempotency_key(settings: GatewaySettings, key: str | None) -> str | None:
    if key is None:
        return None
    if not 0 < len(key) <= settings.idempotency_key_max_length or not key.isprintable():
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            details=[
                {
                    "field": "Idempotency-Key",
                    "message": f"1 to {settings.idempotency_key_max_length} printable characters.",
                }
            ],
        )
    return key


def request_fingerprint(create: JobCreate, image_sha256: str) -> str:
    """What makes two submissions "the same request" for an idempotency key."""
    canonical = json.dumps(
        {"image": image_sha256, **create.model_dump(mode="json")},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool


def _replay(existing: Job, fingerprint: str) -> Submission:
    if existing.get("request_fingerprint") != fingerprint:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request.",
        )
    return Submission(existing, created=False)


def _free_tier(settings: GatewaySettings, owner: str, client_ip: str) -> list[Limit]:
    return [
        Limit("jobs_per_ip", network_of(client_ip), settings.free_jobs_per_ip),
        Limit("jobs_per_email", mailbox(owner), settings.free_jobs_per_email),
    ]


async def _earlier(services: Services, owner: str, idempotency_key: str) -> Job | None:
    return await services.repo.jobs.find_one({"owner": owner, "idempotency_key": idempotency_key})


async def refuse_over_limit(
    services: Services, *, owner: str, client_ip: str, idempotency_key: str | None
) -> None:
    """429 for a user already over a free-tier limit, before their photo is decoded.

    Read-only and racy by design: `submit_job` still takes the units atomically. A
    replay of an earlier Idempotency-Key takes none, so it is let through."""
    if idempotency_key is not None and await _earlier(services, owner, idempotency_key):
        return
    s = services.settings
    if s.free_running_jobs_per_email > 0:
        await services.limiter.check_running(owner, s.free_running_jobs_per_email)
    await services.limiter.check(_free_tier(s, owner, client_ip))


async def submit_job(
    services: Services,
    *,
    owner: str,
    client_ip: str,
    create: JobCreate,
    image: NormalizedImage,
    idempotency_key: str | None,
) -> Submission:
    fingerprint = request_fingerprint(create, image.sha256)
    if idempotency_key is not None:
        existing = await _earlier(services, owner, idempotency_key)
        if existing is not None:
            return _replay(existing, fingerprint)

    s = services.settings
    job_id = new_job_id()
    async with services.limiter.reserve(
        owner, s.free_running_jobs_per_email, _free_tier(s, owner, client_ip), job_id=job_id
    ) as taken:
        submission = await _store_and_announce(
            services,
            job_id=job_id,
            running_slot=taken.running is not None,
            owner=owner,
            client_ip=client_ip,
            create=create,
            image=image,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
    if not submission.created:
        await services.limiter.give_back(taken)
    return submission


async def _store_and_announce(
    services: Services,
    *,
    job_id: str,
    running_slot: bool,
    owner: str,
    client_ip: str,
    create: JobCreate,
    image: NormalizedImage,
    idempotency_key: str | None,
    fingerprint: str,
) -> Submission:
    job_id_var.set(job_id)  # on every later line of this request, its access log too
    key = upload_key(job_id, image.ext)
    await services.storage.put_bytes(key, image.data, image.content_type)
    document: dict[str, Any] = {
        "_id": job_id,
        "owner": owner,
        "client_ip": client_ip,
        "title": create.title,
        "description": create.description,
        "options": create.options.model_dump(mode="json"),
        "image": {
            "key": key,
            "sha256": image.sha256,
            "width": image.width,
            "height": image.height,
            "content_type": image.content_type,
        },
        "request_fingerprint": fingerprint,
    }
    if running_slot:  # it holds an entry in its owner's running jobs until it ends
        document["running_slot"] = True
    if idempotency_key is not None:
        document["idempotency_key"] = idempotency_key
    try:
        job, created = await services.repo.create(document)
    except BaseException:
        await services.storage.delete(key)
        raise
    if not created:  # a concurrent request with the same key won the insert
        await services.storage.delete(key)
        return _replay(job, fingerprint)

    timeout = services.settings.publish_timeout_seconds
    try:
        await asyncio.wait_for(
            services.publishers.job_submitted.publish(JobSubmitted(job_id=job_id)), timeout
        )
    except Exception as e:  # the broker refused, is gone or does not confirm: the job cannot run
        log.exception("could not publish job.submitted", extra={"job_id": job_id})
        await _fail_unqueued(services, job_id, e)
        raise ApiError(
            503,
            "queue_unavailable",
            "The job could not be queued; please try again in a moment.",
            details={"job_id": job_id},
        ) from e
    JOBS_SUBMITTED.inc()
    log.info("job submitted", extra={"job_id": job_id})
    return Submission(job, created=True)


async def _fail_unqueued(services: Services, job_id: str, error: Exception) -> None:
    try:
        await asyncio.wait_for(
            services.pipeline.fail(
                job_id,
                code="queue_unavailable",
                message=f"The job could not be queued ({type(error).__name__}).",
                retryable=True,
            ),
            services.settings.publish_timeout_seconds,
        )
    except Exception:  # the failure is stored before it is announced; announcing may fail too
        log.exception("could not announce the failed job", extra={"job_id": job_id})
