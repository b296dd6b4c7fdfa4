"""API keys for shop systems: created, listed and revoked by the owner's session."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from common.errors import ApiError
from common.views import API_PREFIX
from gateway.api.deps import ServicesDep, SessionDep
from gateway.api_keys import Scope, public_key
from gateway.models import ApiKeyCreate, ApiKeyCreated, ApiKeysPublic, error_responses

router = APIRouter(prefix=f"{API_PREFIX}/api-keys", tags=["api keys"])

KeyIdPath = Annotated[str, Path(max_length=64, description="The key's id.")]


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key (shown once)",
    description="Only a signed-in session can create keys, never a key. The answer's `key` "
    "is the only time the key is shown: only its hash is stored. Scopes: `jobs:read`, "
    "`jobs:write`, `batches:write`, `webhooks:manage`.",
    responses=error_responses(401, 403, 409, 422),
)
async def create_key(
    body: ApiKeyCreate, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    created = await services.api_keys.create(
        str(session.email), body.name.strip() or "API key", [Scope(s) for s in body.scopes]
    )
    return {**public_key(created.record), "key": created.key}


@router.get(
    "",
    response_model=ApiKeysPublic,
    summary="My API keys",
    responses=error_responses(401, 403),
)
async def list_keys(session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    return {"keys": [public_key(r) for r in await services.api_keys.list(str(session.email))]}


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key",
    description="At once: the next request with the key is a 401.",
    responses=error_responses(401, 403, 404),
)
async def revoke_key(key_id: KeyIdPath, session: SessionDep, services: ServicesDep) -> Response:
    if not await services.api_keys.revoke(str(session.email), key_id):
        raise ApiError(404, "api_key_not_found", "No such API key.")
    return Response(status_code=204)
