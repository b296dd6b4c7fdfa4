"""Dependencies of the routes, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.errors import ApiError
from common.jobs import Job
from common.tokens import InvalidToken
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
    # The peer address; X-Forwarded-For is only to be trusted behind a known proxy.
    return request.client.host if request.client else "unknown"


ClientIpDep = Annotated[str, Depends(get_client_ip)]


def owner_of(client_ip: str) -> str:
    return f"anon:{client_ip}"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(auto_error=False, description="The token returned when the job was made.")


def get_job_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[
        str | None,
        Query(description="The job token, for links a browser opens (else use Bearer)."),
    ] = None,
) -> str:
    if credentials and credentials.credentials:
        return credentials.credentials
    if token:
        return token
    raise _unauthorized("A job token is required (Authorization: Bearer <token>).")


async def get_authorized_job(
    job_id: Annotated[str, Path(description="The job id.")],
    token: Annotated[str, Depends(get_job_token)],
    services: ServicesDep,
) -> Job:
    """The job the token grants; 404 alike for another job's token and a missing job."""
    try:
        granted = services.signer.job_from_token(token)
    except InvalidToken as e:
        raise _unauthorized(f"The job token is not accepted: {e}.") from e
    job = await services.repo.get(job_id) if granted == job_id else None
    if job is None:
        raise ApiError(404, "job_not_found", "No such job.")
    return job


AuthorizedJobDep = Annotated[Job, Depends(get_authorized_job)]
