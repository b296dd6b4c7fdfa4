"""Acting on a job: cancel it, retry it after it failed, or revoke its job tokens.

Only the job's owner may act, with their session or an API key with `jobs:write`
(`OwnedJobDep`); the job token that shares a job is read-only.
"""

import logging
from typing import Any

from fastapi import APIRouter
from pymongo import ReturnDocument

from common.auth import mailbox, token_version
from common.errors import ApiError
from common.events import JobStatus
from common.views import API_PREFIX, public_job
from gateway.api.deps import OwnedJobDep, ServicesDep
from gateway.limits import Limit
from gateway.models import JobPublic, JobToken, error_responses

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])


def _conflict(code: str, message: str, status: str) -> ApiError:
    return ApiError(409, code, message, details={"status": status})


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    summary="Cancel a job",
    description="Stops the work on a job that is not final yet; the job ends `canceled`. "
    "A worker busy with it stops at its next check, and a provider job is cancelled "
    "where the provider allows it.",
    responses=error_responses(401, 403, 404, 409),
)
async def cancel_job(job: OwnedJobDep, services: ServicesDep) -> dict[str, Any]:
    canceled = await services.pipeline.cancel(job["_id"])
    if canceled is None:
        current = await services.repo.get(job["_id"]) or job
        raise _conflict("job_final", f"The job is already {current['status']}.", current["status"])
    return await public_job(canceled, services.storage, services.signer)


@router.post(
    "/{job_id}/token",
    response_model=JobToken,
    summary="Revoke the job's tokens and get a new one",
    description="Every job token handed out for this job so far (in shared links, in "
    "browsers) stops working at once, over REST and the WebSocket; the answer is the one "
    "new token. Only the owner, with their session.",
    responses=error_responses(401, 404),
)
async def replace_job_token(job: OwnedJobDep, services: ServicesDep) -> dict[str, Any]:
    updated = await services.repo.jobs.find_one_and_update(
        {"_id": job["_id"], "owner": job["owner"]},
        {"$inc": {"token_version": 1}},
        projection={"token_version": 1},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise ApiError(404, "job_not_found", "No such job.")
    log.info("the owner revoked the job's tokens")
    return {"token": services.signer.job_token(job["_id"], token_version(updated))}


@router.post(
    "/{job_id}/retry",
    response_model=JobPublic,
    summary="Retry a failed job",
    description="Restarts a failed job from the stage that failed, keeping what is done: "
    "a job with a prompt goes on to the video, else it starts over. Its history goes on. "
    "A retry counts against the free tier like a new video, and a job can be retried "
    "`RETRIES_PER_JOB` times (3).",
    responses=error_responses(401, 403, 404, 409, 429),
)
async def retry_job(job: OwnedJobDep, services: ServicesDep) -> dict[str, Any]:
    if job["status"] != JobStatus.FAILED:
        raise _conflict(
            "job_not_failed",
            f"Only a failed job can be retried; this one is {job['status']}.",
            job["status"],
        )
    s = services.settings
    if job.get("retries", 0) >= s.retries_per_job:
        raise _conflict(
            "retries_used_up",
            f"This job was retried {job.get('retries', 0)} times already; "
            "make a new video instead.",
            job["status"],
        )
    # The free tier applies as to a new job: running jobs at a time, videos per day.
    owner = job["owner"]
    async with services.limiter.reserve(
        owner,
        s.free_running_jobs_per_email,
        [Limit("jobs_per_email", mailbox(owner), s.free_jobs_per_email)],
        job_id=job["_id"],
        generation=job.get("retries", 0) + 1,
    ) as taken:
        retried = await services.pipeline.retry(job["_id"])
    if retried is None:  # it changed in between (retried twice at once, say)
        await services.limiter.give_back(taken)
        current = await services.repo.get(job["_id"]) or job
        raise _conflict(
            "job_not_failed",
            f"Only a failed job can be retried; this one is {current['status']}.",
            current["status"],
        )
    return await public_job(retried, services.storage, services.signer)
