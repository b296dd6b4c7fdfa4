"""API keys: a key's life (create, use within and outside its scopes, revoke), hashing
at rest, keys counting against their owner's limits, sessions listed and signed out."""

import pytest

from tests.support import client as user

API = "/api/v1"


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


async def create_key(gateway, scopes: list[str], name: str = "shop") -> dict:
    response = await gateway.client.post(
        f"{API}/api-keys", json={"name": name, "scopes": scopes}, headers=await gateway.auth()
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"  # the key is in it
    return response.json()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_keys_life_from_creation_to_revocation(gateway):
    created = await create_key(gateway, ["jobs:read", "jobs:write"])
    key = created["key"]
    assert key.startswith("pv_live_") and len(key) == 48
    assert created["prefix"] == key[:14] and created["last_used_at"] is None

    # Within its scopes the key acts as its owner: submit, list, read, cancel.
    submitted = await gateway.submit(headers=bearer(key))
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    listed = await gateway.client.get(f"{API}/jobs", headers=bearer(key))
    assert [j["id"] for j in listed.json()["jobs"]] == [job_id]
    assert (await gateway.client.get(f"{API}/jobs/{job_id}", headers=bearer(key))).is_success
    # The owner's session sees the job the key made.
    assert (
        await gateway.client.get(f"{API}/jobs/{job_id}", headers=await gateway.auth())
    ).is_success
    canceled = await gateway.client.post(f"{API}/jobs/{job_id}/cancel", headers=bearer(key))
    assert canceled.json()["status"] == "canceled", canceled.text
    me = (await gateway.client.get(f"{API}/auth/me", headers=bearer(key))).json()
    assert me == {
        "email": gateway.email,
        "credential": "api_key",
        "scopes": ["jobs:read", "jobs:write"],
    }

    keys = (await gateway.client.get(f"{API}/api-keys", headers=await gateway.auth())).json()
    [listed_key] = keys["keys"]
    assert listed_key["id"] == created["id"] and listed_key["last_used_at"] is not None
    assert "key" not in listed_key and key not in str(keys)

    revoked = await gateway.client.delete(
        f"{API}/api-keys/{created['id']}", headers=await gateway.auth()
    )
    assert revoked.status_code == 204
    error_of(await gateway.client.get(f"{API}/jobs", headers=bearer(key)), 401, "unauthorized")
    assert (await gateway.submit(headers=bearer(key))).status_code == 401
    error_of(
        await gateway.client.delete(
            f"{API}/api-keys/{created['id']}", headers=await gateway.auth()
        ),
        404,
        "api_key_not_found",
    )


async def test_a_missing_scope_is_a_403_that_names_it(gateway):
    reader = (await create_key(gateway, ["jobs:read"]))["key"]
    writer = (await create_key(gateway, ["jobs:write"]))["key"]
    error = error_of(await gateway.submit(headers=bearer(reader)), 403, "missing_scope")
    assert error["details"] == {"scope": "jobs:write"} and "jobs:write" in error["message"]
    job_id = (await gateway.submit(headers=bearer(writer))).json()["id"]
    error = error_of(
        await gateway.client.get(f"{API}/jobs/{job_id}", headers=bearer(writer)),
        403,
        "missing_scope",
    )
    assert error["details"] == {"scope": "jobs:read"}
    error_of(await gateway.client.get(f"{API}/jobs", headers=bearer(writer)), 403, "missing_scope")
    error = error_of(
        await gateway.client.post(f"{API}/jobs/{job_id}/cancel", headers=bearer(reader)),
        403,
        "missing_scope",
    )
    assert error["details"] == {"scope": "jobs:write"}


async def test_a_key_never_manages_keys_or_sessions(gateway):
    everything = ["jobs:read", "jobs:write", "batches:write", "webhooks:manage"]
    key = (await create_key(gateway, everything))["key"]
    for method, path in [
        ("POST", f"{API}/api-keys"),
        ("GET", f"{API}/api-keys"),
        ("DELETE", f"{API}/api-keys/key_x"),
        ("GET", f"{API}/auth/sessions"),
        ("DELETE", f"{API}/auth/sessions"),
    ]:
        response = await gateway.client.request(
            method, path, json={"name": "x", "scopes": ["jobs:read"]}, headers=bearer(key)
        )
        error_of(response, 403, "session_required")
    # Nor does a key in the URL work, where logs would keep it.
    error_of(await gateway.client.get(f"{API}/jobs/x?token={key}"), 401, "unauthorized")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["admin"]},
        {"name": "", "scopes": ["jobs:read"]},
    ],
)
async def test_a_key_needs_a_name_and_known_scopes(gateway, body):
    response = await gateway.client.post(f"{API}/api-keys", json=body, headers=await gateway.auth())
    error_of(response, 422, "validation_error")


async def test_the_database_holds_no_key(gateway):
    created = await create_key(gateway, ["jobs:read"])
    stored = await gateway.services.db["api_keys"].find_one({"_id": created["id"]})
    secret = created["key"].removeprefix("pv_live_")
    assert stored is not None and secret not in str(stored) and secret[6:] not in str(stored)
    # Forged keys of the right shape, and keys of the wrong shape, are refused.
    forged = "pv_live_" + "x" * 40
    error_of(await gateway.client.get(f"{API}/jobs", headers=bearer(forged)), 401, "unauthorized")
    assert (await gateway.submit(headers=bearer("pv_live_short"))).status_code == 401


async def test_keys_count_against_their_owners_limits(start_gateway):
    async with start_gateway(free_jobs_per_email=1) as gateway:
        key = (await create_key(gateway, ["jobs:write"]))["key"]
        assert (await gateway.submit()).status_code == 202  # the owner's own upload
        error = error_of(await gateway.submit(headers=bearer(key)), 429, "rate_limited")
        assert error["details"]["limit"] == "jobs_per_email"


async def test_sessions_are_listed_and_signed_out_everywhere(gateway):
    headers = await gateway.auth()
    other = user.auth(await gateway.sign_in(gateway.email))
    key = (await create_key(gateway, ["jobs:read"]))["key"]
    sessions = (await gateway.client.get(f"{API}/auth/sessions", headers=headers)).json()
    assert len(sessions["sessions"]) == 2
    assert [s["current"] for s in sessions["sessions"]].count(True) == 1
    assert all(s["expires_at"] > s["created_at"] for s in sessions["sessions"])

    assert (await gateway.client.delete(f"{API}/auth/sessions", headers=other)).status_code == 204
    for signed_out in (headers, other):
        error_of(
            await gateway.client.get(f"{API}/auth/me", headers=signed_out), 401, "unauthorized"
        )
    # API keys are credentials of their own: they stay until revoked.
    assert (await gateway.client.get(f"{API}/jobs", headers=bearer(key))).is_success
