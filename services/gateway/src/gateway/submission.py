"""Submitting a job: validate the fields, store the photo, create the job, publish.

A refused request stores nothing; a job is only announced after it is stored;
the same Idempotency-Key from the same owner never makes a second job. A new job
takes one unit of its owner's and its IP's free-tier allowance (a replay takes
none), given back if the job cannot be made after all.

Cheap before costly: a replay is answered from the stored job with the photo only
hashed, a user over a limit (or who keeps sending unusable photos) is refused before
the photo is decoded, and every photo the decoder refuses counts against its sender.
"""

import asyncio
import hashlib
import json
import logging
import unicodedata
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from fastapi import UploadFile

from common.auth import mailbox
from common.brief import CTA_MAX_CHARS, PRICE_MAX_CHARS
from common.client_ip import network_of
from common.errors import ApiError
from common.events import JobSubmitted
from common.jobs import Job, new_job_id
from common.logs import job_id_var
from common.metrics import JOBS_SUBMITTED
from common.presets import DURATION_DEFAULT, JOB_OPTION_DEFAULTS, PRESETS, duration_note
from common.storage import upload_key
from gateway.core.config import GatewaySettings
from gateway.core.services import Services
from gateway.images import NormalizedImage, read_upload
from gateway.limits import Limit
from gateway.models import (
    DEFAULT_ASPECT_RATIO,
    AspectRatio,
    JobCreate,
    JobOptions,
    OnOff,
    PresetName,
)

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


@dataclass(frozen=True)
class OptionFields:
    """The ad options as sent (None: left out), before the preset's rules apply."""

    aspect_ratio: AspectRatio | None = None
    duration: int | None = None
    preset: PresetName | None = None
    cta: str | None = None
    price: str | None = None
    music: OnOff = "on"
    captions: OnOff = "on"
    finish: bool = True


def _ratio_and_length(
    fields: OptionFields,
) -> tuple[AspectRatio, int, dict[str, str] | None]:
    """A preset fills the ratio and (when none is sent) the length; an explicit ratio that
    contradicts it is a problem."""
    if fields.preset is None:
        return (
            fields.aspect_ratio or DEFAULT_ASPECT_RATIO,
            fields.duration or DURATION_DEFAULT,
            None,
        )
    preset = PRESETS[fields.preset]
    ratio: AspectRatio = preset.aspect_ratio  # type: ignore[assignment]
    duration = fields.duration or preset.default_duration
    if fields.aspect_ratio is not None and fields.aspect_ratio != ratio:
        return (
            ratio,
            duration,
            {
                "field": "aspect_ratio",
                "message": f"The {preset.name} preset ({preset.label}) is {ratio}: "
                f"leave aspect_ratio out or send {ratio}.",
            },
        )
    return ratio, duration, None


def validate_fields(
    settings: GatewaySettings,
    *,
    title: str,
    description: str,
    style: str | None,
    options: OptionFields | None = None,
    regenerate: bool = False,
) -> JobCreate:
    """The text fields, stripped and within their limits, and the ad options with the
    preset's rules applied; 422 listing every problem."""
    fields = options or OptionFields()
    checked = {
        "title": _text_field("title", title, settings.title_max_length, required=True),
        "description": _text_field(
            "description", description, settings.description_max_length, required=True
        ),
        "style": _text_field("style", style, settings.style_max_length, required=False),
        "cta": _text_field("cta", fields.cta, CTA_MAX_CHARS, required=False),
        "price": _text_field("price", fields.price, PRICE_MAX_CHARS, required=False),
    }
    ratio, duration, contradiction = _ratio_and_length(fields)
    problems = [problem for _, problem in checked.values() if problem]
    if contradiction:
        problems.append(contradiction)
    if problems:
        raise ApiError(422, "validation_error", "The request is not valid.", details=problems)
    return JobCreate(
        title=checked["title"][0] or "",
        description=checked["description"][0] or "",
        options=JobOptions(
            aspect_ratio=ratio,
            duration=duration,
            style=checked["style"][0],
            preset=fields.preset,
            cta=checked["cta"][0],
            price=checked["price"][0],
            music=fields.music,
            captions=fields.captions,
            finish=fields.finish,
        ),
        regenerate=regenerate,
    )


def job_notes(options: JobOptions) -> list[str]:
    """What the owner is told about the job's options: a length outside what its preset's
    platform takes or does best with (made as asked, never changed silently)."""
    if options.preset is None:
        return []
    note = duration_note(options.preset, options.duration)
    return [note] if note else []


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
    """What makes two submissions "the same request" for an idempotency key. Ad options at
    their defaults are left out, so a request without them has the fingerprint it had
    before they existed, and so is `regenerate` unless it is set."""
    request = create.model_dump(mode="json")
    if not request.get("regenerate"):
        request.pop("regenerate", None)
    request["options"] = {
        key: value
        for key, value in request["options"].items()
        if key not in JOB_OPTION_DEFAULTS or value != JOB_OPTION_DEFAULTS[key]
    }
    canonical = json.dumps(
        {"image": image_sha256, **request},
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


def free_tier_limits(settings: GatewaySettings, owner: str, client_ip: str) -> list[Limit]:
    return [
        Limit("jobs_per_ip", network_of(client_ip), settings.free_jobs_per_ip),
        Limit("jobs_per_email", mailbox(owner), settings.free_jobs_per_email),
    ]


async def _earlier(services: Services, owner: str, idempotency_key: str) -> Job | None:
    return await services.repo.jobs.find_one({"owner": owner, "idempotency_key": idempotency_key})


def _refused_photos(settings: GatewaySettings, owner: str) -> Limit:
    return Limit(
        "refused_photos_per_email",
        mailbox(owner),
        settings.refused_photos_per_email,
        settings.refused_photos_window_seconds,
    )


# What the decoder answers when the photo itself is at fault (not 503 `busy`).
_PHOTO_REFUSED = (400, 413, 415, 422)


async def replay(
    services: Services,
    *,
    owner: str,
    idempotency_key: str | None,
    create: JobCreate,
    upload: UploadFile,
) -> Submission | None:
    """The answer to a replay of an earlier Idempotency-Key, from the stored job: the
    photo is read and hashed, never decoded (409 if it is another request). None when
    the key is new (or absent)."""
    if idempotency_key is None:
        return None
    existing = await _earlier(services, owner, idempotency_key)
    if existing is None:
        return None
    data = await read_upload(upload, services.settings.max_upload_bytes)
    return _replay(existing, request_fingerprint(create, hashlib.sha256(data).hexdigest()))


async def refuse_over_limit(services: Services, *, owner: str, client_ip: str) -> None:
    """429 for a user already over a free-tier limit, or who has sent too many unusable
    photos lately, before their photo is decoded.

    Read-only and racy by design: `submit_job` still takes the units atomically."""
    s = services.settings
    await services.limiter.check([_refused_photos(s, owner)])
    if s.free_running_jobs_per_email > 0:
        await services.limiter.check_running(owner, s.free_running_jobs_per_email)
    await services.limiter.check(free_tier_limits(s, owner, client_ip))


async def decode(services: Services, *, owner: str, upload: UploadFile) -> NormalizedImage:
    """The photo, validated and re-encoded; one refused as unusable counts against its
    sender's `refused_photos_per_email`."""
    try:
        return await services.decoder.normalize(upload)
    except ApiError as e:
        if e.status in _PHOTO_REFUSED:
            with suppress(ApiError):  # used up already: the next upload is refused first
                await services.limiter.take([_refused_photos(services.settings, owner)])
        raise


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
        owner, s.free_running_jobs_per_email, free_tier_limits(s, owner, client_ip), job_id=job_id
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
        "notes": job_notes(create.options),
    }
    if create.regenerate:  # made again: the prompt stage reuses no earlier result
        document["regenerate"] = True
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
        await fail_unqueued(services, job_id, e)
        raise ApiError(
            503,
            "queue_unavailable",
            "The job could not be queued; please try again in a moment.",
            details={"job_id": job_id},
        ) from e
    JOBS_SUBMITTED.inc()
    log.info("job submitted", extra={"job_id": job_id})
    return Submission(job, created=True)


async def fail_unqueued(services: Services, job_id: str, error: Exception) -> None:
    try:
        await asyncio.wait_for(
            services.pipeline.fail(
                job_id,
                code="queue_unavailable",
                detail=f"job.submitted could not be published: {type(error).__name__}: {error}",
                retryable=True,
            ),
            services.settings.publish_timeout_seconds,
        )
    except Exception:  # the failure is stored before it is announced; announcing may fail too
        log.exception("could not announce the failed job", extra={"job_id": job_id})
