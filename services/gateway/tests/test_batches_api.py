"""POST /api/v1/batches and the batch routes on a real gateway (broker, database,
storage), without workers: the jobs it makes wait in the queue. Every bad row in one 422
with nothing stored, photo links fetched through the SSRF guard (a loopback image server,
OUTBOUND_ALLOW_PRIVATE=true; and refused without it), the batch and its jobs, the
Idempotency-Key, the counts, the CSV export and cancelling.
(tests/test_batches.py: batches made to the end by the real workers.)"""

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from services.gateway.tests.conftest import Gateway, photo
from services.gateway.tests.test_batches_quote_api import photos_zip
from tests.support.photo_server import PhotoServer, photo_server

BATCHES = "/api/v1/batches"
HEADER = "sku,title,description,image"


def manifest(*rows: dict[str, str], header: str = HEADER) -> bytes:
    """A CSV manifest, quoted as a spreadsheet writes it."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header.split(","))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def row(sku: str, image: str, title: str = "Red mug") -> dict[str, str]:
    return {"sku": sku, "title": title, "description": "A sturdy mug.", "image": image}


async def post_batch(
    gateway: Gateway,
    manifest_data: bytes,
    photos: bytes | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    files: dict[str, Any] = {"manifest": ("products.csv", manifest_data, "text/csv")}
    if photos is not None:
        files["photos"] = ("photos.zip", photos, "application/zip")
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    auth = await gateway.auth()
    return await gateway.client.post(
        BATCHES, files=files, data=data, headers={**auth, **(headers or {})}
    )


@pytest.fixture
def server() -> Iterator[PhotoServer]:
    with photo_server() as running:
        yield running


@pytest.fixture
async def gateway(start_gateway: Callable[..., Any]) -> AsyncIterator[Gateway]:
    """A gateway that may fetch from loopback (the test's image server)."""
    async with start_gateway(outbound_allow_private=True) as running:
        yield running


async def assert_nothing_stored(gateway: Gateway) -> None:
    await gateway.assert_nothing_left()
    db = gateway.services.db
    assert await db["batches"].count_documents({}) == 0
    assert await db["products"].count_documents({}) == 0


async def test_every_bad_row_is_listed_and_nothing_is_stored(
    gateway: Gateway, server: PhotoServer
) -> None:
    good = server.file("/good.jpg", photo())
    hops = [server.redirect(f"/hop{n}", f"/hop{n + 1}") for n in range(4)]
    server.file("/hop4", photo())
    rows = [
        row("OK-ZIP", "mug.jpg"),  # 1: good
        row("OK-LINK", good),  # 2: good
        row("NO-FILE", "missing.jpg"),  # 3
        row("OK-ZIP", "mug.jpg"),  # 4: the same sku as row 1
        row("NO-TITLE", "mug.jpg", title=""),  # 5
        row("GONE", server.status("/gone.jpg", 404)),  # 6
        row("TEXT", server.file("/notes.jpg", b"not a photo at all" * 50, "image/jpeg")),  # 7
        row("SMALL", server.file("/small.jpg", photo(size=(100, 100)))),  # 8
        row("LOOPS", hops[0]),  # 9: four redirects, one too many
        row("CLOSED", "http://127.0.0.1:9/closed.jpg"),  # 10: nothing listens
        row("TINY-ZIP", "tiny.jpg"),  # 11: too small, from the zip
    ]
    zipped = photos_zip(**{"mug.jpg": photo(), "tiny.jpg": photo(size=(64, 64))})
    response = await post_batch(gateway, manifest(*rows), zipped, variants=[{"preset": "reels"}])
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    by_row = {(d["row"], d["field"]): d["message"] for d in error["details"]}
    assert set(by_row) == {
        (3, "image"),
        (4, "sku"),
        (5, "title"),
        (6, "image"),
        (7, "image"),
        (8, "image"),
        (9, "image"),
        (10, "image"),
        (11, "image"),
    }, by_row
    assert "not in the photos zip" in by_row[(3, "image")]
    assert "row 1" in by_row[(4, "sku")]
    assert "404" in by_row[(6, "image")]
    assert "redirects more than 3" in by_row[(9, "image")]
    assert "could not be fetched" in by_row[(10, "image")]
    # The rows are in order, and the good link was fetched once, the bad redirect
    # chain no further than the limit.
    assert [d["row"] for d in error["details"]] == sorted(d["row"] for d in error["details"])
    assert server.requests["/good.jpg"] == 1
    assert server.requests["/hop4"] == 0
    await assert_nothing_stored(gateway)

    # The request's own problems (variants, a zip with a path out of it) are listed with
    # the rows' ones, first.
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../etc/mug.jpg", photo())
    response = await post_batch(
        gateway, manifest(row("A", good), row("A", good)), evil.getvalue(), variants="["
    )
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert {d["field"] for d in details if d["row"] is None} >= {"photos", "variants"}, details
    assert all(d["row"] is None for d in details[:-1])
    assert (details[-1]["row"], details[-1]["field"]) == (2, "sku")
    await assert_nothing_stored(gateway)


async def test_the_guard_refuses_loopback_and_private_links_unless_allowed(
    start_gateway: Callable[..., Any], server: PhotoServer
) -> None:
    server.file("/mug.jpg", photo())
    rows = [
        row("LOOPBACK", f"https://127.0.0.1:{server.port}/mug.jpg"),
        row("LOCALHOST", f"https://localhost:{server.port}/mug.jpg"),
        row("PRIVATE", "https://10.1.2.3/mug.jpg"),
        row("METADATA", "https://169.254.169.254/latest/meta-data"),
        row("V6", f"https://[::1]:{server.port}/mug.jpg"),
        row("MAPPED", "https://[::ffff:127.0.0.1]/mug.jpg"),
        row("PLAIN", server.url("/mug.jpg")),
    ]
    async with start_gateway(outbound_allow_private=False) as strict:
        response = await post_batch(strict, manifest(*rows))
        assert response.status_code == 422, response.text
        details = response.json()["error"]["details"]
        by_row = {d["row"]: d["message"] for d in details}
        assert set(by_row) == set(range(1, 8)), details
        for number in range(1, 7):
            assert "not a public address" in by_row[number], by_row[number]
        assert "Only https links" in by_row[7]
        assert sum(server.requests.values()) == 0, "the guard let a request through"
        await assert_nothing_stored(strict)


async def test_a_batch_is_made_counted_exported_and_cancelled(
    gateway: Gateway, server: PhotoServer
) -> None:
    link = server.file("/p/bowl.jpg", photo(color=(20, 90, 200)))
    rows = [
        {**row("MUG-1", "mug.jpg"), "price": "12,90 €", "cta": "Jetzt kaufen"},
        {**row('=HYPERLINK("http://x")', link, title="Bowl"), "style": "warm light"},
    ]
    variants = [{"preset": "reels"}, {"aspect_ratio": "1:1", "duration": 4}]
    response = await post_batch(
        gateway,
        manifest(*rows, header="sku,title,description,image,price,cta,style"),
        photos_zip(**{"mug.jpg": photo()}),
        variants=variants,
    )
    assert response.status_code == 202, response.text
    batch = response.json()
    assert batch["status"] == "running"
    assert batch["jobs_total"] == 4
    assert batch["counts"]["queued"] == 4 and sum(batch["counts"].values()) == 4
    assert batch["cost_usd"] == 0
    assert [(v["aspect_ratio"], v["duration"]) for v in batch["variants"]] == [
        ("9:16", 5),
        ("1:1", 4),
    ]
    assert [(r["row"], r["sku"]) for r in batch["rows"]] == [(1, "MUG-1"), (2, rows[1]["sku"])]
    job_ids = [job["id"] for r in batch["rows"] for job in r["jobs"]]
    assert [job["variant"] for r in batch["rows"] for job in r["jobs"]] == [0, 1, 0, 1]

    # The jobs: queued, each knowing its batch, sku, row and variant.
    db = gateway.services.db
    stored = {job["_id"]: job async for job in db["jobs"].find({"batch_id": batch["id"]})}
    assert set(stored) == set(job_ids)
    mug = stored[job_ids[1]]
    assert (mug["sku"], mug["row"], mug["variant"]) == ("MUG-1", 1, 1)
    assert mug["options"]["aspect_ratio"] == "1:1" and mug["options"]["price"] == "12,90 €"
    assert stored[job_ids[2]]["options"]["style"] == "warm light"
    assert await gateway.queue_depth(gateway.prompt_queue) == 4
    assert await db["products"].count_documents({"batch_id": batch["id"]}) == 2

    # Read again: the same; another user sees no such batch.
    again = await gateway.client.get(f"{BATCHES}/{batch['id']}", headers=await gateway.auth())
    assert again.status_code == 200 and again.json()["rows"] == batch["rows"]
    stranger = {"Authorization": f"Bearer {await gateway.sign_in()}"}
    for path in ("", "/export.csv"):
        other = await gateway.client.get(f"{BATCHES}/{batch['id']}{path}", headers=stranger)
        assert other.status_code == 404 and other.json()["error"]["code"] == "batch_not_found"
    other = await gateway.client.post(f"{BATCHES}/{batch['id']}/cancel", headers=stranger)
    assert other.status_code == 404

    # One CSV line per job; the formula in the sku is made harmless.
    exported = await gateway.client.get(
        f"{BATCHES}/{batch['id']}/export.csv", headers=await gateway.auth()
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(x["sku"], x["variant"], x["aspect_ratio"], x["status"]) for x in lines] == [
        ("MUG-1", "0", "9:16", "queued"),
        ("MUG-1", "1", "1:1", "queued"),
        ("'" + rows[1]["sku"], "0", "9:16", "queued"),
        ("'" + rows[1]["sku"], "1", "1:1", "queued"),
    ]
    assert lines[0]["preset"] == "reels" and lines[1]["duration"] == "4"
    assert all(x["video_url"] == "" and x["error_code"] == "" for x in lines)

    # Cancelled: every job, and the batch says so.
    canceled = await gateway.client.post(
        f"{BATCHES}/{batch['id']}/cancel", headers=await gateway.auth()
    )
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert body["status"] == "canceled"
    assert body["counts"]["canceled"] == 4 and body["counts"]["queued"] == 0
    assert all(j["status"] == "canceled" for r in body["rows"] for j in r["jobs"])
    statuses = {job["status"] async for job in db["jobs"].find({"batch_id": batch["id"]})}
    assert statuses == {"canceled"}
    # Its last job's end announced it (batch.completed), and it stayed canceled.
    stored_batch = await db["batches"].find_one({"_id": batch["id"]})
    assert stored_batch["status"] == "canceled" and stored_batch["announced"] is True


async def test_the_same_idempotency_key_answers_the_same_batch(
    gateway: Gateway, server: PhotoServer
) -> None:
    rows = [row("MUG-1", server.file("/mug.jpg", photo()))]
    key = {"Idempotency-Key": "catalogue-2026-12-07"}
    first = await post_batch(gateway, manifest(*rows), headers=key)
    assert first.status_code == 202, first.text
    again = await post_batch(gateway, manifest(*rows), headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["rows"] == first.json()["rows"]
    assert server.requests["/mug.jpg"] == 1, "a replay fetched the photos again"
    assert await gateway.job_count() == 1
    assert await gateway.services.db["batches"].count_documents({}) == 1

    other = await post_batch(gateway, manifest(*rows), headers=key, regenerate="true")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await gateway.job_count() == 1


async def test_batches_need_the_batches_scope(gateway: Gateway, server: PhotoServer) -> None:
    made = await post_batch(gateway, manifest(row("MUG-1", server.file("/m.jpg", photo()))))
    assert made.status_code == 202
    anonymous = await gateway.client.post(
        BATCHES, files={"manifest": ("p.csv", manifest(row("X", "x.jpg")), "text/csv")}
    )
    assert anonymous.status_code == 401
    assert (await gateway.client.get(f"{BATCHES}/{made.json()['id']}")).status_code == 401
    created = await gateway.client.post(
        "/api/v1/api-keys",
        json={"name": "reader", "scopes": ["jobs:read"]},
        headers=await gateway.auth(),
    )
    assert created.status_code == 201, created.text
    reader = {"Authorization": f"Bearer {created.json()['key']}"}
    for method, path in (
        ("GET", f"{BATCHES}/{made.json()['id']}"),
        ("POST", f"{BATCHES}/{made.json()['id']}/cancel"),
    ):
        refused = await gateway.client.request(method, path, headers=reader)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "missing_scope"
