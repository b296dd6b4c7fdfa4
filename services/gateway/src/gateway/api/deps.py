"""Dependencies of the routes, as `Annotated` aliases."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.auth import Principal
from common.client_ip import client_ip
from common.errors import ApiError
from common.jobs import Job
from common.tokens import InvalidToken
from gateway.api_keys import Scope, looks_like_key
from gateway.core.config import GatewaySettings
from gateway.core.services import Services


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ApiError(503, "not_ready", "The service is starting; try again shortly.")
    return services


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]


def get_client_ip(request: Request) -> str:
    """The peer address, or what X-Forwarded-For says when the peer is a trusted proxy."""
    settings: GatewaySettings = request.app.state.settings
    peer = request.client.host if request.client else None
    forwarded = request.headers.getlist("x-forwarded-for")
    return client_ip(peer, forwarded, settings.trusted_proxies)


ClientIpDep = Annotated[str, Depends(get_client_ip)]


SIGN_IN_FIRST = "Sign in first (Authorization: Bearer <session token or API key>)."
SESSION_NEEDED = "This needs a signed-in session or an API key; a job token only reads its job."
SESSION_ONLY = "Only a signed-in session can do this, never an API key."
TOKEN_IN_URL = (
    "Tokens belong in the Authorization header, not the URL. To play or download in a "
    "browser, open the job's video.url, poster_url or download_url (valid for minutes)."
)


def not_accepted(error: InvalidToken) -> str:
    return f"The token is not accepted: {error}."


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(
    auto_error=False,
    description="A session token (from `POST /api/v1/auth/verify`), an API key "
    "(`pv_live_…`, within its scopes) or, for reading one job, the job token returned "
    "when it was made.",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _resolve(services: Services, token: str) -> Principal:
    """The one place a credential becomes a principal: an API key (owner + scopes),
    a session or a job token."""
    try:
        if looks_like_key(token):
            return await services.api_keys.resolve(token)
        return await services.sessions.resolve(token)
    except InvalidToken as e:
        raise _unauthorized(not_accepted(e)) from e


async def get_owner(credentials: BearerDep, services: ServicesDep) -> Principal:
    """A signed-in user or one of their API keys (scopes checked by `scoped`)."""
    if not (credentials and credentials.credentials):
        raise _unauthorized(SIGN_IN_FIRST)
    principal = await _resolve(services, credentials.credentials)
    if not principal.signed_in:
        raise _unauthorized(SESSION_NEEDED)
    return principal


OwnerDep = Annotated[Principal, Depends(get_owner)]


async def get_session(owner: OwnerDep) -> Principal:
    """A signed-in session, never an API key: managing keys and sessions."""
    if owner.is_api_key:
        raise ApiError(403, "session_required", SESSION_ONLY)
    return owner


SessionDep = Annotated[Principal, Depends(get_session)]


def missing_scope(scope: Scope) -> ApiError:
    return ApiError(
        403,
        "missing_scope",
        f"This API key lacks the scope {scope.value}.",
        details={"scope": scope.value},
    )


def _scoped(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(owner: OwnerDep) -> Principal:
        if not owner.allows(scope):
            raise missing_scope(scope)
        return owner

    dependency.__name__ = f"scope_{scope.name.lower()}"
    return dependency


# The owner's session, or an API key with the scope (a 403 naming the scope without it).
JobsReadDep = Annotated[Principal, Depends(_scoped(Scope.JOBS_READ))]
JobsWriteDep = Annotated[Principal, Depends(_scoped(Scope.JOBS_WRITE))]
BatchesWriteDep = Annotated[Principal, Depends(_scoped(Scope.BATCHES_WRITE))]
WebhooksManageDep = Annotated[Principal, Depends(_scoped(Scope.WEBHOOKS_MANAGE))]


async def get_reader(
    credentials: BearerDep,
    services: ServicesDep,
    token: Annotated[
        str | None,
        Query(
            max_length=2048,
            description="Refused: no token is taken from a URL. Browsers open the job's "
            "`video.url`, `poster_url` and `download_url`, links that expire in minutes.",
        ),
    ] = None,
) -> Principal:
    """The owner's session or API key, or a job token, in the Authorization header only."""
    if credentials and credentials.credentials:
        principal = await _resolve(services, credentials.credentials)
        if not principal.allows(Scope.JOBS_READ):
            raise missing_scope(Scope.JOBS_READ)
        return principal
    if token:
        # A URL ends up in logs, histories and screenshots, and job tokens live for days:
        # links for browsers are the view's signed file links, valid for minutes.
        raise _unauthorized(TOKEN_IN_URL)
    raise _unauthorized("Sign in, or pass the job token (Authorization: Bearer <token>).")


ReaderDep = Annotated[Principal, Depends(get_reader)]
JobIdPath = Annotated[str, Path(max_length=64, description="The job id.")]
_NO_SUCH_JOB = ("job_not_found", "No such job.")


async def get_authorized_job(job_id: JobIdPath, reader: ReaderDep, services: ServicesDep) -> Job:
    """The job, if the caller may read it; 404 alike for other people's jobs and missing ones."""
    job = await services.repo.get(job_id)
    if job is None or not reader.can_read(job):
        raise ApiError(404, *_NO_SUCH_JOB)
    return job


async def get_owned_job(job_id: JobIdPath, owner: JobsWriteDep, services: ServicesDep) -> Job:
    """The job, if the caller owns it: changing a job takes its owner's session or an
    API key with `jobs:write`, never a job token."""
    job = await services.repo.get(job_id)
    if job is None or not owner.owns(job):
        raise ApiError(404, *_NO_SUCH_JOB)
    return job


AuthorizedJobDep = Annotated[Job, Depends(get_authorized_job)]
OwnedJobDep = Annotated[Job, Depends(get_owned_job)]
