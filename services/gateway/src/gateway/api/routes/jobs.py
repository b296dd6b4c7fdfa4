"""Jobs: submit a photo, list and read jobs, fetch a clip and its poster."""

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from fastapi.responses import RedirectResponse

from common.auth import token_version
from common.brief import CTA_MAX_CHARS, PRICE_MAX_CHARS
from common.downloads import download_name
from common.errors import ApiError
from common.events import JobStatus
from common.jobs import Job
from common.presets import DURATION_DEFAULT, DURATION_MAX, DURATION_MIN
from common.views import API_PREFIX, download_url, public_job
from gateway.api.deps import (
    AuthorizedJobDep,
    ClientIpDep,
    JobsReadDep,
    JobsWriteDep,
    ServicesDep,
    SettingsDep,
)
from gateway.catalogue.variants import MAX_VARIANTS
from gateway.core.services import Services
from gateway.images import ACCEPTED_TYPES, NormalizedImage
from gateway.models import (
    DEFAULT_ASPECT_RATIO,
    AspectRatio,
    JobAccepted,
    JobPublic,
    JobsPublic,
    OnOff,
    PresetName,
    ProductAccepted,
    error_responses,
)
from gateway.products import (
    ProductSubmission,
    refuse_key_of_other_kind,
    replay_product,
    submit_product,
    validate_product_request,
)
from gateway.submission import (
    OptionFields,
    Submission,
    decode,
    refuse_over_limit,
    replay,
    submit_job,
    validate_fields,
    validate_idempotency_key,
)

S = TypeVar("S", Submission, ProductSubmission)

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=202,
    response_model=ProductAccepted | JobAccepted,
    summary="Submit a product photo",
    responses={
        200: {
            "model": ProductAccepted | JobAccepted,
            "description": "A replay of an earlier Idempotency-Key.",
        },
        **error_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
    },
    description="Needs a signed-in session or an API key with `jobs:write` (a key's jobs "
    "count against its owner's limits). Over a free-tier limit the answer is 429 with "
    "`Retry-After`, and the error's `details` say which limit and when it resets. "
    "With `variants`, one product with a job per variant: the answer is the first "
    "variant's job as without them, plus `product_id` and `jobs` (every variant's).",
)
async def create_job(
    services: ServicesDep,
    owner: JobsWriteDep,
    settings: SettingsDep,
    client_ip: ClientIpDep,
    response: Response,
    image: Annotated[
        UploadFile, File(description=f"The product photo ({', '.join(ACCEPTED_TYPES)}).")
    ],
    title: Annotated[str, Form(description="The product's name.")],
    description: Annotated[str, Form(description="What the product is and why it is good.")],
    aspect_ratio: Annotated[
        AspectRatio | None,
        Form(
            description=f"Default: the preset's, else {DEFAULT_ASPECT_RATIO}. One that "
            "contradicts the preset is refused."
        ),
    ] = None,
    duration: Annotated[
        int | None,
        Form(
            ge=DURATION_MIN,
            le=DURATION_MAX,
            description=f"Clip length in seconds. Default: the preset's, else {DURATION_DEFAULT}."
            " A length outside what the preset's platform takes is made, with a note on the job.",
        ),
    ] = None,
    style: Annotated[str | None, Form(description="Optional style hint.")] = None,
    preset: Annotated[
        PresetName | None,
        Form(description="The platform the ad is for: its ratio, length and text-safe area."),
    ] = None,
    cta: Annotated[
        str | None,
        Form(description=f"The call to action (at most {CTA_MAX_CHARS} characters)."),
    ] = None,
    price: Annotated[
        str | None,
        Form(description=f"The price, as shown (at most {PRICE_MAX_CHARS} characters)."),
    ] = None,
    music: Annotated[OnOff, Form(description="off: a silent soundtrack.")] = "on",
    captions: Annotated[OnOff, Form(description="off: no hook or benefit captions.")] = "on",
    finish: Annotated[
        bool, Form(description="false: the raw motion clip, without captions, end card or music.")
    ] = True,
    regenerate: Annotated[
        bool,
        Form(
            description="true: make a new clip even when an earlier job of yours asked for "
            "exactly this (same photo, text and options); by default such a job completes at "
            "once with that job's clip (`video.reused_from`)."
        ),
    ] = False,
    variants: Annotated[
        str | None,
        Form(
            description=f"A JSON list of 1-{MAX_VARIANTS} distinct "
            '`{"preset"|"aspect_ratio", "duration"}`: one product (one photo stored once, one '
            "prompt and brief) with a job per variant, each retried or canceled on its own and "
            "each one video for the free tier (all of them fit, or the request is refused). "
            "Leave `aspect_ratio`, `duration` and `preset` out beside it. The answer then adds "
            "`product_id` and `jobs` (every variant's job, in order).",
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retrying with the same key returns the same job, never a second one.",
        ),
    ] = None,
) -> dict[str, Any]:
    key = validate_idempotency_key(settings, idempotency_key)
    fields = OptionFields(
        aspect_ratio=aspect_ratio,
        duration=duration,
        preset=preset,
        cta=cta,
        price=price,
        music=music,
        captions=captions,
        finish=finish,
    )
    email = str(owner.email)
    if variants is not None and variants.strip():
        create, resolved = validate_product_request(
            settings,
            variants=variants,
            title=title,
            description=description,
            style=style,
            options=fields,
            regenerate=regenerate,
        )
        product = await _replay_or_submit(
            services,
            owner=email,
            client_ip=client_ip,
            idempotency_key=key,
            upload=image,
            product=True,
            replayed=partial(
                replay_product,
                services,
                owner=email,
                idempotency_key=key,
                create=create,
                variants=resolved,
                upload=image,
            ),
            submit=lambda normalized: submit_product(
                services,
                owner=email,
                client_ip=client_ip,
                create=create,
                image=normalized,
                variants=resolved,
                idempotency_key=key,
            ),
        )
        if not product.created:
            response.status_code = 200
        jobs = [await _accepted(services, job) for job in product.jobs]
        return {**jobs[0], "product_id": product.product["_id"], "jobs": jobs}
    create = validate_fields(
        settings,
        title=title,
        description=description,
        style=style,
        options=fields,
        regenerate=regenerate,
    )
    submission = await _replay_or_submit(
        services,
        owner=email,
        client_ip=client_ip,
        idempotency_key=key,
        upload=image,
        product=False,
        replayed=partial(
            replay, services, owner=email, idempotency_key=key, create=create, upload=image
        ),
        submit=lambda normalized: submit_job(
            services,
            owner=email,
            client_ip=client_ip,
            create=create,
            image=normalized,
            idempotency_key=key,
        ),
    )
    if not submission.created:
        response.status_code = 200
    return await _accepted(services, submission.job)


async def _replay_or_submit(
    services: Services,
    *,
    owner: str,
    client_ip: str,
    idempotency_key: str | None,
    upload: UploadFile,
    product: bool,
    replayed: Callable[[], Awaitable[S | None]],
    submit: Callable[[NormalizedImage], Awaitable[S]],
) -> S:
    """The one sequence of a submission, of one job or of a product with variants: a key
    used for the other kind is refused; a replay is answered without decoding the photo
    (the costly part), and a user over a limit is refused before it."""
    await refuse_key_of_other_kind(
        services, owner=owner, idempotency_key=idempotency_key, product=product
    )
    submission = await replayed()
    if submission is None:
        await refuse_over_limit(services, owner=owner, client_ip=client_ip)
        submission = await submit(await decode(services, owner=owner, upload=upload))
    return submission


async def _accepted(services: Services, job: Job) -> dict[str, Any]:
    return {
        "id": job["_id"],
        "status": job["status"],
        "token": services.signer.job_token(job["_id"], token_version(job)),
        "job": await public_job(job, services.storage, services.signer),
    }


def _encode_cursor(job: Job) -> str:
    position = {"t": job["created_at"].isoformat(), "id": job["_id"]}
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; 422 for anything this API did not hand out."""
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created_at = datetime.fromisoformat(position["t"])
        job_id = position["id"]
        if not isinstance(job_id, str):
            raise TypeError("the id is not a string")
        # In UTC, as stored: a far-off offset at the ends of the calendar overflows here,
        # not later while the query is encoded (which would be a 500).
        if created_at.tzinfo is None:
            return created_at.replace(tzinfo=UTC), job_id
        return created_at.astimezone(UTC), job_id
    except (binascii.Error, ValueError, KeyError, TypeError, OverflowError) as e:
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            details=[{"field": "cursor", "message": "Not a cursor this API returned."}],
        ) from e


@router.get(
    "",
    response_model=JobsPublic,
    summary="List my jobs, newest first",
    responses=error_responses(401, 403, 422),
)
async def list_jobs(
    services: ServicesDep,
    owner: JobsReadDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=300, description="`next_cursor` of the previous page.")
    ] = None,
) -> dict[str, Any]:
    query: dict[str, Any] = {"owner": owner.email}
    if cursor is not None:
        created_at, job_id = _decode_cursor(cursor)
        query["$or"] = [
            {"created_at": {"$lt": created_at}},
            {"created_at": created_at, "_id": {"$lt": job_id}},
        ]
    found = services.repo.jobs.find(query).sort([("created_at", -1), ("_id", -1)])
    jobs = [job async for job in found.limit(limit + 1)]
    page = jobs[:limit]
    return {
        "jobs": [
            {
                **await public_job(job, services.storage, services.signer),
                "token": services.signer.job_token(job["_id"], token_version(job)),
            }
            for job in page
        ],
        "next_cursor": _encode_cursor(page[-1]) if len(jobs) > limit else None,
    }


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    summary="Read a job",
    responses=error_responses(401, 403, 404, 422),
)
async def read_job(job: AuthorizedJobDep, services: ServicesDep) -> dict[str, Any]:
    return await public_job(job, services.storage, services.signer)


async def _redirect_to_file(
    job: Job, services: Services, which: Literal["key", "poster_key"], download: bool
) -> RedirectResponse:
    video = job.get("video")
    if job["status"] != JobStatus.COMPLETED or not video:
        raise ApiError(
            409,
            "video_not_ready",
            "The video is not ready yet.",
            details={"status": job["status"]},
        )
    key = video[which]
    name = download_name(job["title"], key) if download else None
    url = await download_url(key, services.storage, services.signer, download_name=name)
    # The link expires, so neither this redirect nor the link may be cached for long.
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    302: {"description": "Redirect to an expiring link to the file."},
    **error_responses(401, 403, 404, 409, 422),
}
DownloadFlag = Annotated[
    bool, Query(description="Save as `<title>.<ext>` instead of playing inline.")
]


@router.get(
    "/{job_id}/video",
    status_code=302,
    response_class=RedirectResponse,
    summary="The clip (redirect)",
    responses=_FILE_RESPONSES,
)
async def job_video(
    job: AuthorizedJobDep, services: ServicesDep, download: DownloadFlag = False
) -> RedirectResponse:
    return await _redirect_to_file(job, services, "key", download)


@router.get(
    "/{job_id}/poster",
    status_code=302,
    response_class=RedirectResponse,
    summary="The clip's poster image (redirect)",
    responses=_FILE_RESPONSES,
)
async def job_poster(
    job: AuthorizedJobDep, services: ServicesDep, download: DownloadFlag = False
) -> RedirectResponse:
    return await _redirect_to_file(job, services, "poster_key", download)
