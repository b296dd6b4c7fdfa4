"""Batches made to the end: the four services as real processes on the real broker,
database and storage (local renderer, template prompts). One batch from a CSV and a zip
of photos, one from photo links on a loopback image server (OUTBOUND_ALLOW_PRIVATE=true):
every job completes, the batch counts them, and its CSV export links the clips."""

import asyncio
import csv
import io
import time
import zipfile
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support.photo_server import photo_server
from tests.support.processes import System

pytestmark = pytest.mark.timeout(300)

BATCHES = "/api/v1/batches"


@pytest.fixture
def system_env(service_env: dict[str, str]) -> dict[str, str]:
    return {
        **service_env,
        "PROMPT_PROVIDER": "template",
        "VIDEO_PROVIDER": "local",
        "OUTBOUND_ALLOW_PRIVATE": "true",  # the image server listens on loopback
    }


def csv_manifest(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"shoot/{name}", data)
    return buf.getvalue()


async def finished(api: httpx.AsyncClient, batch_id: str, within: float) -> dict[str, Any]:
    """The batch once it is no longer running."""
    deadline = time.monotonic() + within
    while True:
        response = await api.get(f"{BATCHES}/{batch_id}")
        assert response.status_code == 200, response.text
        batch: dict[str, Any] = response.json()
        if batch["status"] != "running":
            return batch
        assert time.monotonic() < deadline, f"still running: {batch['counts']}"
        await asyncio.sleep(1)


async def assert_completed_with_clips(
    api: httpx.AsyncClient, batch: dict[str, Any], jobs: int
) -> None:
    assert batch["status"] == "completed", batch
    assert batch["counts"]["completed"] == jobs == batch["jobs_total"]
    assert batch["cost_usd"] == 0  # the local renderer and template prompts are free
    exported = await api.get(f"{BATCHES}/{batch['id']}/export.csv")
    assert exported.status_code == 200
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(lines) == jobs
    for line in lines:
        assert line["status"] == "completed" and line["error_code"] == ""
        for name in ("video_url", "poster_url"):
            fetched = await api.get(line[name])
            assert fetched.status_code == 200, (name, fetched.text)
            assert len(fetched.content) > 1000


async def test_batches_from_a_zip_and_from_links_complete(
    system: System, api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    photos = {f"item-{n}.jpg": user.product_photo(seed=60 + n, size=(400, 300)) for n in (1, 2)}
    rows = [
        {
            "sku": f"ITEM-{n}",
            "title": f"Linen tote {n}",
            "description": "Sturdy linen, long handles.",
            "image": f"item-{n}.jpg",
            "price": "19,90 €",
        }
        for n in (1, 2)
    ]
    variants = '[{"aspect_ratio": "9:16", "duration": 3}, {"aspect_ratio": "1:1", "duration": 3}]'
    response = await api.post(
        BATCHES,
        files={
            "manifest": ("products.csv", csv_manifest(rows), "text/csv"),
            "photos": ("photos.zip", zipped(photos), "application/zip"),
        },
        data={"variants": variants},
    )
    assert response.status_code == 202, response.text
    from_zip = response.json()

    with photo_server() as server:
        links = [
            {
                "sku": f"LINKED-{n}",
                "title": f"Bowl {n}",
                "description": "Hand-thrown stoneware.",
                "image": server.file(f"/p/{n}.jpg", user.product_photo(seed=70 + n)),
            }
            for n in (1, 2)
        ]
        response = await api.post(
            BATCHES,
            files={"manifest": ("products.csv", csv_manifest(links), "text/csv")},
            data={"variants": '[{"preset": "feed", "duration": 3}]'},
        )
        assert response.status_code == 202, response.text
        from_links = response.json()
        assert server.requests == {"/p/1.jpg": 1, "/p/2.jpg": 1}

    await assert_completed_with_clips(api, await finished(api, from_zip["id"], 240), 4)
    await assert_completed_with_clips(api, await finished(api, from_links["id"], 120), 2)
    # Each job knows its batch; each product's variants share one stored photo.
    for batch in (from_zip, from_links):
        jobs = [job async for job in database["jobs"].find({"batch_id": batch["id"]})]
        by_product: dict[str, set[str]] = {}
        for job in jobs:
            by_product.setdefault(job["product_id"], set()).add(job["image"]["key"])
        assert all(len(keys) == 1 for keys in by_product.values())
        assert len(by_product) == 2
