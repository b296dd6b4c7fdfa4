"""Outgoing webhooks: the owner registers endpoints, sees their deliveries, redelivers.

The gateway only registers: deliveries are created and sent by the notifier's webhook
worker (notifier.webhooks), never inside a request. Needs the owner's session or an API
key with `webhooks:manage`.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pymongo import ReturnDocument

from common import webhooks
from common.errors import ApiError
from common.outbound import OutboundError, OutboundRefused, resolve, validate_url
from common.views import API_PREFIX
from common.webhooks import DeliveryStatus
from gateway.api.deps import ServicesDep, WebhooksManageDep
from gateway.core.services import Services
from gateway.models import (
    WebhookDeliveriesPublic,
    WebhookDeliveryPublic,
    WebhookEndpointChange,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPublic,
    WebhookEndpointsPublic,
    WebhookSecret,
    error_responses,
)

router = APIRouter(prefix=f"{API_PREFIX}/webhook-endpoints", tags=["webhooks"])

# A rotated-out secret keeps signing beside the new one this long.
ROTATION_OVERLAP = timedelta(hours=24)
EndpointIdPath = Annotated[str, Path(max_length=64, description="The endpoint's id.")]
DeliveryIdPath = Annotated[str, Path(max_length=64, description="The delivery's id.")]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def public_endpoint(endpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": endpoint["_id"],
        "url": endpoint["url"],
        "events": endpoint["events"],
        "description": endpoint.get("description"),
        "enabled": endpoint["enabled"],
        "disabled_reason": endpoint.get("disabled_reason"),
        "failing_since": _iso(endpoint.get("failing_since")),
        "created_at": endpoint["created_at"].isoformat(),
        "updated_at": endpoint["updated_at"].isoformat(),
    }


def public_delivery(delivery: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": delivery["_id"],
        "type": delivery["type"],
        "job_id": delivery.get("job_id"),
        "batch_id": delivery.get("batch_id"),
        "status": delivery["status"],
        "created_at": delivery["created_at"].isoformat(),
        "next_attempt_at": _iso(delivery.get("next_attempt_at")),
        "attempts": [{**a, "at": a["at"].isoformat()} for a in delivery.get("attempts", [])],
    }


async def _checked_url(url: str, services: Services) -> str:
    """The URL, if the SSRF guard lets it through (here for a clear 422; the notifier
    checks the address again whenever it connects)."""
    allow_private = services.settings.outbound_allow_private
    try:
        parsed = validate_url(url.strip(), allow_private=allow_private)
        await resolve(parsed.host, parsed.port or 443, allow_private=allow_private)
    except OutboundError as e:
        reason = e.message
        if not isinstance(e, OutboundRefused):
            reason = f"{e.message} Webhook URLs must resolve to a public address."
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            details=[{"field": "url", "message": reason, "reason": e.code}],
        ) from None
    return str(parsed)


async def _owned(services: Services, owner: str, endpoint_id: str) -> dict[str, Any]:
    endpoint = await services.db[webhooks.ENDPOINTS].find_one({"_id": endpoint_id, "owner": owner})
    if endpoint is None:
        raise ApiError(404, "webhook_endpoint_not_found", "No such webhook endpoint.")
    return endpoint


@router.post(
    "",
    status_code=201,
    response_model=WebhookEndpointCreated,
    summary="Register a webhook endpoint (its secret is shown once)",
    description="Events: `job.completed`, `job.failed`. The URL must be `https://` on a "
    "public address. Deliveries are signed per Standard Webhooks with the `secret`.",
    responses=error_responses(401, 403, 409, 422),
)
async def create_endpoint(
    body: WebhookEndpointCreate, owner: WebhooksManageDep, services: ServicesDep
) -> dict[str, Any]:
    email = str(owner.email)
    url = await _checked_url(body.url, services)
    collection = services.db[webhooks.ENDPOINTS]
    limit = services.settings.webhook_endpoints_per_owner
    if await collection.count_documents({"owner": email}) >= limit:
        raise ApiError(
            409,
            "too_many_webhook_endpoints",
            f"You have {limit} webhook endpoints already; delete one first.",
        )
    now = datetime.now(UTC)
    secret = webhooks.new_secret()
    endpoint_id = webhooks.new_endpoint_id()
    endpoint = {
        "_id": endpoint_id,
        "owner": email,
        "url": url,
        "events": sorted(set(body.events)),
        "description": body.description,
        "enabled": True,
        "disabled_reason": None,
        "failing_since": None,
        "secrets": [webhooks.secret_entry(secret, endpoint_id, services.sealer, now)],
        "created_at": now,
        "updated_at": now,
    }
    await collection.insert_one(endpoint)
    return {**public_endpoint(endpoint), "secret": secret}


@router.get(
    "",
    response_model=WebhookEndpointsPublic,
    summary="My webhook endpoints",
    responses=error_responses(401, 403),
)
async def list_endpoints(owner: WebhooksManageDep, services: ServicesDep) -> dict[str, Any]:
    found = services.db[webhooks.ENDPOINTS].find({"owner": owner.email}).sort("created_at", -1)
    return {"endpoints": [public_endpoint(e) async for e in found]}


@router.get(
    "/{endpoint_id}",
    response_model=WebhookEndpointPublic,
    summary="A webhook endpoint",
    responses=error_responses(401, 403, 404),
)
async def read_endpoint(
    endpoint_id: EndpointIdPath, owner: WebhooksManageDep, services: ServicesDep
) -> dict[str, Any]:
    return public_endpoint(await _owned(services, str(owner.email), endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=WebhookEndpointPublic,
    summary="Change, disable or enable a webhook endpoint",
    description="`enabled: false` stops deliveries to it; `enabled: true` starts them "
    "again (also after it was disabled for failing) and forgets its failures.",
    responses=error_responses(401, 403, 404, 422),
)
async def change_endpoint(
    endpoint_id: EndpointIdPath,
    body: WebhookEndpointChange,
    owner: WebhooksManageDep,
    services: ServicesDep,
) -> dict[str, Any]:
    endpoint = await _owned(services, str(owner.email), endpoint_id)
    changes: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    if body.url is not None:
        changes["url"] = await _checked_url(body.url, services)
    if body.events is not None:
        changes["events"] = sorted(set(body.events))
    if "description" in body.model_fields_set:
        changes["description"] = body.description
    if body.enabled is True and not endpoint["enabled"]:
        changes |= {"enabled": True, "disabled_reason": None, "failing_since": None}
    elif body.enabled is False and endpoint["enabled"]:
        changes |= {"enabled": False, "disabled_reason": "Disabled by its owner."}
    updated = await services.db[webhooks.ENDPOINTS].find_one_and_update(
        {"_id": endpoint_id, "owner": owner.email},
        {"$set": changes},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise ApiError(404, "webhook_endpoint_not_found", "No such webhook endpoint.")
    return public_endpoint(updated)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook endpoint and its deliveries",
    responses=error_responses(401, 403, 404),
)
async def delete_endpoint(
    endpoint_id: EndpointIdPath, owner: WebhooksManageDep, services: ServicesDep
) -> Response:
    deleted = await services.db[webhooks.ENDPOINTS].delete_one(
        {"_id": endpoint_id, "owner": owner.email}
    )
    if deleted.deleted_count != 1:
        raise ApiError(404, "webhook_endpoint_not_found", "No such webhook endpoint.")
    await services.db[webhooks.DELIVERIES].delete_many({"endpoint_id": endpoint_id})
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookSecret,
    summary="Rotate the signing secret (the old one signs too for 24 h)",
    description="Every delivery carries one signature per live secret, so a receiver "
    "can switch to the new secret at any time within the next 24 hours.",
    responses=error_responses(401, 403, 404),
)
async def rotate_secret(
    endpoint_id: EndpointIdPath, owner: WebhooksManageDep, services: ServicesDep
) -> dict[str, Any]:
    endpoint = await _owned(services, str(owner.email), endpoint_id)
    now = datetime.now(UTC)
    overlap_until = now + ROTATION_OVERLAP
    # A secret sealed under an earlier SIGNING_KEY cannot sign beside the new one: dropped.
    kept = [
        {**s, "expires_at": s["expires_at"] or overlap_until}
        for s in endpoint["secrets"]
        if (s["expires_at"] is None or s["expires_at"] > now)
        and webhooks.readable(s, endpoint_id, services.sealer)
    ]
    secret = webhooks.new_secret()
    await services.db[webhooks.ENDPOINTS].update_one(
        {"_id": endpoint_id},
        {
            "$set": {
                "secrets": [
                    webhooks.secret_entry(secret, endpoint_id, services.sealer, now),
                    *kept,
                ],
                "updated_at": now,
            }
        },
    )
    return {"secret": secret, "previous_expires_at": overlap_until.isoformat() if kept else None}


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=WebhookDeliveriesPublic,
    summary="The endpoint's deliveries, with every attempt",
    responses=error_responses(401, 403, 404, 422),
)
async def list_deliveries(
    endpoint_id: EndpointIdPath,
    owner: WebhooksManageDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Deliveries to list.")] = 50,
    status: Annotated[DeliveryStatus | None, Query(description="Only these.")] = None,
) -> dict[str, Any]:
    await _owned(services, str(owner.email), endpoint_id)
    query: dict[str, Any] = {"endpoint_id": endpoint_id}
    if status is not None:
        query["status"] = status
    found = (
        services.db[webhooks.DELIVERIES]
        .find(query, {"job": 0})
        .sort([("created_at", -1), ("_id", -1)])
        .limit(limit)
    )
    return {"deliveries": [public_delivery(d) async for d in found]}


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=WebhookDeliveryPublic,
    summary="Send a delivery again",
    description="With the same `webhook-id` (receivers drop duplicates by it), at once and "
    "then with retries for another 24 h if it fails. The endpoint must be enabled.",
    responses=error_responses(401, 403, 404, 409),
)
async def redeliver(
    endpoint_id: EndpointIdPath,
    delivery_id: DeliveryIdPath,
    owner: WebhooksManageDep,
    services: ServicesDep,
) -> dict[str, Any]:
    endpoint = await _owned(services, str(owner.email), endpoint_id)
    if not endpoint["enabled"]:
        raise ApiError(
            409, "webhook_endpoint_disabled", "Enable the endpoint first (PATCH enabled: true)."
        )
    now = datetime.now(UTC)
    give_up = timedelta(seconds=24 * 3600)
    deliveries = services.db[webhooks.DELIVERIES]
    updated = await deliveries.find_one_and_update(
        {
            "_id": delivery_id,
            "endpoint_id": endpoint_id,
            "status": {"$in": [DeliveryStatus.DELIVERED, DeliveryStatus.FAILED]},
        },
        {
            "$set": {
                "status": DeliveryStatus.PENDING,
                "next_attempt_at": now,
                "give_up_at": now + give_up,
            }
        },
        {"job": 0},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        current = await deliveries.find_one(
            {"_id": delivery_id, "endpoint_id": endpoint_id}, {"job": 0}
        )
        if current is None:
            raise ApiError(404, "webhook_delivery_not_found", "No such delivery.")
        return public_delivery(current)  # pending or under way already: nothing to do
    return public_delivery(updated)
