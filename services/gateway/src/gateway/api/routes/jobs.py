"""Jobs: submit a photo, read a job, fetch its clip and poster."""

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from fastapi.responses import RedirectResponse

from common.errors import ApiError
from common.events import JobStatus
from common.jobs import Job
from common.views import API_PREFIX, download_url, public_job
from gateway.api.deps import (
    AuthorizedJobDep,
    ClientIpDep,
    ServicesDep,
    SettingsDep,
    owner_of,
)
from gateway.core.services import Services
from gateway.downloads import download_name
from gateway.images import ACCEPTED_TYPES, ImageLimits, normalize_image, read_upload
from gateway.models import (
    DEFAULT_ASPECT_RATIO,
    DURATION_DEFAULT,
    DURATION_MAX,
    DURATION_MIN,
    AspectRatio,
    JobAccepted,
    JobOptions,
    JobPublic,
    error_responses,
)
from gateway.submission import submit_job, validate_fields, validate_idempotency_key

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    summary="Submit a product photo",
    responses={
        200: {"model": JobAccepted, "description": "A replay of an earlier Idempotency-Key."},
        **error_responses(400, 409, 413, 415, 422, 503),
    },
)
async def create_job(
    services: ServicesDep,
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
    data = await read_upload(image, settings.max_upload_bytes)
    limits = ImageLimits(
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        min_side=settings.min_image_side,
    )
    normalized = await asyncio.to_thread(normalize_image, data, limits)
    submission = await submit_job(
        services,
        owner=owner_of(client_ip),
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
        "token": services.signer.job_token(job["_id"]),
        "job": await public_job(job, services.storage, services.signer),
    }


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    summary="Read a job",
    responses=error_responses(401, 404),
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
    **error_responses(401, 404, 409),
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
