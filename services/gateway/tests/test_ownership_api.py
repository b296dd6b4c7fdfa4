"""Jobs belong to the email that made them: the owner lists and reads them with a
session; one job's token shares that job read-only; nobody else sees anything."""

import base64
import json

import pytest

from tests.support import client as user

API = "/api/v1"


async def as_user(gateway) -> dict[str, str]:
    return user.auth(await gateway.sign_in())


async def make(gateway, who: dict[str, str], title: str) -> dict:
    response = await gateway.submit(headers=who, title=title)
    assert response.status_code == 202, response.text
    return response.json()


async def test_my_jobs_newest_first_page_by_page(gateway):
    alice, bob = await as_user(gateway), await as_user(gateway)
    made = [await make(gateway, alice, f"Mug {i}") for i in range(5)]
    await make(gateway, bob, "Bob's lamp")

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await gateway.client.get(f"{API}/jobs", params=params, headers=alice)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["jobs"]) <= 2
        seen += body["jobs"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [j["id"] for j in seen] == [m["id"] for m in reversed(made)]
    assert all("Bob" not in j["title"] for j in seen)
    # Each listed job carries its token, to share it.
    shared = await gateway.client.get(
        f"{API}/jobs/{seen[0]['id']}", headers={"Authorization": f"Bearer {seen[0]['token']}"}
    )
    assert shared.status_code == 200 and shared.json()["title"] == "Mug 4"

    bobs = (await gateway.client.get(f"{API}/jobs", headers=bob)).json()
    assert [j["title"] for j in bobs["jobs"]] == ["Bob's lamp"] and bobs["next_cursor"] is None


async def test_listing_needs_a_session(gateway):
    job = await make(gateway, await as_user(gateway), "Mug")
    for headers in ({}, user.auth(job["token"]), user.auth("nonsense")):
        response = await gateway.client.get(f"{API}/jobs", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"


def cursor_of(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


GARBAGE_CURSORS = {
    "not base64": "!!",
    "not json": base64.urlsafe_b64encode(b"\xff\xfe{").decode(),
    "a list": cursor_of(["2026-01-01T00:00:00+00:00", "x"]),
    "no id": cursor_of({"t": "2026-01-01T00:00:00+00:00"}),
    "an id that is not a string": cursor_of({"t": "2026-01-01T00:00:00+00:00", "id": {"$gt": ""}}),
    "not a date": cursor_of({"t": "yesterday", "id": "x"}),
    "a date that is a number": cursor_of({"t": 1700000000, "id": "x"}),
    # Valid ISO dates that overflow once moved to UTC for the query.
    "before year 1 in UTC": cursor_of({"t": "0001-01-01T00:00:00+14:00", "id": "x"}),
    "after year 9999 in UTC": cursor_of({"t": "9999-12-31T23:59:59-14:00", "id": "x"}),
}


@pytest.mark.parametrize("cursor", list(GARBAGE_CURSORS.values()), ids=list(GARBAGE_CURSORS))
async def test_a_cursor_this_api_did_not_give_is_422(gateway, cursor):
    bad = await gateway.client.get(
        f"{API}/jobs", params={"cursor": cursor}, headers=await gateway.auth()
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["code"] == "validation_error"
    assert bad.json()["error"]["details"][0]["field"] == "cursor"


async def test_a_cursor_at_the_ends_of_the_calendar_pages_normally(gateway):
    """Far-off dates that fit in UTC, with or without an offset, are just positions."""
    await make(gateway, await gateway.auth(), "Mug")
    for position, expected in (
        ({"t": "9999-12-31T00:00:00+00:00", "id": "z"}, 1),
        ({"t": "0001-01-02T00:00:00+14:00", "id": "x"}, 0),
        ({"t": "2000-01-01T00:00:00", "id": "x"}, 0),  # no offset: UTC
    ):
        page = await gateway.client.get(
            f"{API}/jobs", params={"cursor": cursor_of(position)}, headers=await gateway.auth()
        )
        assert page.status_code == 200, page.text
        assert len(page.json()["jobs"]) == expected


async def test_nobody_else_reads_or_downloads_a_job(gateway):
    alice, mallory = await as_user(gateway), await as_user(gateway)
    job = await make(gateway, alice, "Alice's vase")
    job_id = job["id"]

    mine = await gateway.client.get(f"{API}/jobs/{job_id}", headers=alice)
    assert mine.status_code == 200 and mine.json()["title"] == "Alice's vase"
    for path in ("", "/video", "/poster"):
        theirs = await gateway.client.get(f"{API}/jobs/{job_id}{path}", headers=mallory)
        assert theirs.status_code == 404, (path, theirs.text)
        assert theirs.json()["error"]["code"] == "job_not_found"
        assert "Alice" not in theirs.text
    # The owner gets further: the clip is just not ready yet.
    assert (
        await gateway.client.get(f"{API}/jobs/{job_id}/video", headers=alice)
    ).status_code == 409


async def test_no_token_is_ever_taken_from_the_url(gateway):
    """URLs end up in logs, histories and screenshots: neither the session nor the job
    token (which lives for days) opens a job from one."""
    response = await gateway.submit()
    job_id, job_token = response.json()["id"], response.json()["token"]
    for token in (gateway.session, job_token):
        for path in ("", "/video", "/poster"):
            refused = await gateway.client.get(
                f"{API}/jobs/{job_id}{path}", params={"token": token}
            )
            assert refused.status_code == 401
            assert "Authorization header" in refused.json()["error"]["message"]
