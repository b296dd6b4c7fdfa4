"""Jobs belong to the email that made them: the owner lists and reads them with a
session; one job's token shares that job read-only; nobody else sees anything."""

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
    # Each listed job carries its token, for links that play or share it.
    shared = await gateway.client.get(
        f"{API}/jobs/{seen[0]['id']}", params={"token": seen[0]["token"]}
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
    bad = await gateway.client.get(
        f"{API}/jobs", params={"cursor": "!!"}, headers=await gateway.auth()
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "cursor"


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


async def test_a_session_token_is_never_taken_from_the_url(gateway):
    job = await make(gateway, await gateway.auth(), "Mug")
    response = await gateway.client.get(
        f"{API}/jobs/{job['id']}", params={"token": gateway.session}
    )
    assert response.status_code == 401
    assert "Authorization header" in response.json()["error"]["message"]
