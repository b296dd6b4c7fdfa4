"""Jobs: submit a photo, list and read jobs, fetch a clip and its poster."""

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from fastapi.responses import RedirectResponse

from common.auth import token_version
from common.downloads import download_name
from common.errors import ApiError
from common.events import JobStatus
from common.jobs import Job
from common.views import API_PREFIX, download_url, public_job
from gateway.api.deps import (
    AuthorizedJobDep,
    ClientIpDep,
    ServicesDep,
    SessionDep,
    SettingsDep,
)
from gateway.core.services import Services
from gateway.images import ACCEPTED_TYPES
from gateway.models import (
    DEFAULT_ASPECT_RATIO,
    DURATION_DEFAULT,
    DURATION_MAX,
    DURATION_MIN,
    AspectRatio,
    JobAccepted,
    JobOptions,
    JobPublic,
    JobsPublic,
    error_responses,
)
from gateway.submission import (
    refuse_over_limit,
    submit_job,
    validate_fields,
    validate_idempotency_key,
)

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    summary="Submit a product photo",
    responses={
        200: {"model": JobAccepted, "description": "A replay of an earlier Idempotency-Key."},
        **error_responses(400, 401, 409, 413, 415, 422, 429, 503),
    },
    description="Needs a signed-in session. Over a free-tier limit the answer is 429 with "
    "`Retry-After`, and the error's `details` say which limit and when it resets.",
)
async def create_job(
    services: ServicesDep,
    session: SessionDep,
    settings: SettingsDep,
    client_ip: ClientIpDep,
    response: Response,
    image: Annotated[
        UploadFile, File(description=f"The product photo ({', '.join(ACCEPTED_TYPES)}).")
    ],
    title: Annotated[str, Form(description="The product's name.")],
    description: Annotated[str, Form(description="What the product is and why it is good.")],
    aspect_ratio: Annotated[AspectRatio, Form()] = DEFAULT_ASPECT_RATIO,
    duration: Annotated[
        int, Form(ge=DURATION_MIN, le=DURATION_MAX, description="Clip length in seconds.")
    ] = DURATION_DEFAULT,
    style: Annotated[str | None, Form(description="Optional style hint.")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retrying with the same key returns the same job, never a second one.",
        ),
    ] = None,
) -> dict[str, Any]:
    key = validate_idempotency_key(settings, idempotency_key)
    create = validate_fields(
        settings,
        title=title,
        description=description,
        style=style,
        options=JobOptions(aspect_ratio=aspect_ratio, duration=duration),
    )
    # Decoding is the costly part: a user over a limit is refused before it.
    await refuse_over_limit(
        services, owner=str(session.email), client_ip=client_ip, idempotency_key=key
    )
    normalized = await services.decoder.normalize(image)
    submission = await submit_job(
        services,
        owner=str(session.email),
        client_ip=client_ip,
        create=create,
        image=normalized,
        idempotency_key=key,
    )
    if not submission.created:
        response.status_code = 200
    job = submission.job
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
    responses=error_responses(401, 422),
)
async def list_jobs(
    services: ServicesDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=300, description="`next_cursor` of the previous page.")
    ] = None,
) -> dict[str, Any]:
    query: dict[str, Any] = {"owner": session.email}
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
    responses=error_responses(401, 404, 422),
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
    **error_responses(401, 404, 409, 422),
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
