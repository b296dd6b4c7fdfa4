"""Sign-in by email: ask for a one-time code, exchange it for a session, sign out."""

from typing import Any

from fastapi import APIRouter, Response

from common.views import API_PREFIX
from gateway.api.deps import ClientIpDep, ServicesDep, SessionDep
from gateway.models import (
    CodeSent,
    CodeVerification,
    EmailSignIn,
    Me,
    SessionPublic,
    error_responses,
)
from gateway.users import normalize_email

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])


@router.post(
    "/email",
    status_code=202,
    response_model=CodeSent,
    summary="Email me a sign-in code",
    description="Sends a 6-digit code, valid for 10 minutes and 5 attempts. Asking again "
    "too soon, or too often, is refused with 429 and `Retry-After`.",
    responses=error_responses(422, 429, 503),
)
async def request_code(
    body: EmailSignIn, services: ServicesDep, client_ip: ClientIpDep
) -> dict[str, Any]:
    return await services.sign_in.request_code(normalize_email(body.email), client_ip)


@router.post(
    "/verify",
    response_model=SessionPublic,
    summary="Exchange the code for a session token",
    description="Every try counts against the network's allowance of sign-in attempts "
    "(429 with `Retry-After` when it is used up).",
    responses=error_responses(400, 422, 429),
)
async def verify_code(
    body: CodeVerification, services: ServicesDep, client_ip: ClientIpDep
) -> dict[str, Any]:
    session = await services.sign_in.verify(normalize_email(body.email), body.code, client_ip)
    return {
        "token": session.token,
        "email": session.email,
        "expires_at": session.expires_at.isoformat(),
    }


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="Sign out (revokes the session token everywhere)",
    responses=error_responses(401),
)
async def logout(session: SessionDep, services: ServicesDep) -> Response:
    if session.session_id:
        await services.sessions.revoke(session.session_id)
    return Response(status_code=204)


@router.get(
    "/me",
    response_model=Me,
    summary="Who the session token belongs to",
    responses=error_responses(401),
)
async def me(session: SessionDep) -> dict[str, Any]:
    return {"email": session.email}
