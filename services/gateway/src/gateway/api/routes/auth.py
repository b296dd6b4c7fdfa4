"""Sign-in by email: ask for a one-time code, exchange it for a session, sign out
(here or everywhere), list the sessions."""

import hashlib
from typing import Any

from fastapi import APIRouter, Response

from common.views import API_PREFIX
from gateway.api.deps import ClientIpDep, OwnerDep, ServicesDep, SessionDep
from gateway.models import (
    CodeSent,
    CodeVerification,
    EmailSignIn,
    Me,
    SessionPublic,
    SessionsPublic,
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
    responses=error_responses(401, 403),
)
async def logout(session: SessionDep, services: ServicesDep) -> Response:
    if session.session_id:
        await services.sessions.revoke(session.session_id)
    return Response(status_code=204)


@router.get(
    "/me",
    response_model=Me,
    summary="Who the session token or API key belongs to",
    responses=error_responses(401),
)
async def me(owner: OwnerDep) -> dict[str, Any]:
    if owner.scopes is not None:
        return {"email": owner.email, "credential": "api_key", "scopes": sorted(owner.scopes)}
    return {"email": owner.email, "credential": "session", "scopes": None}


def _listed_id(session_id: str) -> str:
    """A name for the session in the list, derived from its id (itself never shown)."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


@router.get(
    "/sessions",
    response_model=SessionsPublic,
    summary="My signed-in sessions",
    description="Every unexpired session of the signed-in user (API keys are listed apart).",
    responses=error_responses(401, 403),
)
async def list_sessions(session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    records = await services.sessions.of_user(str(session.email))
    return {
        "sessions": [
            {
                "id": _listed_id(record["_id"]),
                "created_at": record["created_at"].isoformat(),
                "expires_at": record["expires_at"].isoformat(),
                "current": record["_id"] == session.session_id,
            }
            for record in records
        ]
    }


@router.delete(
    "/sessions",
    status_code=204,
    response_class=Response,
    summary="Sign out everywhere",
    description="Revokes every session of the signed-in user, this one included, in every "
    "service at once (open WebSocket subscriptions end too). API keys stay valid: revoke "
    "them at `DELETE /api/v1/api-keys/{id}`.",
    responses=error_responses(401, 403),
)
async def sign_out_everywhere(session: SessionDep, services: ServicesDep) -> Response:
    await services.sessions.revoke_all(str(session.email))
    return Response(status_code=204)
