"""A refused upload leaves no trace: no job, no stored object, no message."""

from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support.observe import queue_depth
from tests.support.processes import System

pytestmark = pytest.mark.timeout(120)


def stored_files(system: System) -> list[Path]:
    root = Path(system.env["STORAGE_URL"].removeprefix("file://"))
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, object] = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error


async def test_an_invalid_upload_is_refused_and_leaves_nothing(
    gateway_only: System, database: AsyncDatabase
) -> None:
    """Only the gateway runs, so a published job.submitted would wait in its queue."""
    system = gateway_only
    queue = f"{system.env['AMQP_PREFIX']}prompt.jobs"
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        text = b"Dear customer, this is a text file and not a photo.\n" * 40
        error = assert_error_shape(await user.submit(api, text, filename="photo.jpg"), 415)
        assert error["code"] == "unsupported_image_type"

        photo = user.product_photo(seed=5)
        for fields, field in (
            ({"duration": 11}, "duration"),
            ({"aspect_ratio": "4:3"}, "aspect_ratio"),
            ({"title": ""}, "title"),
        ):
            error = assert_error_shape(await user.submit(api, photo, **fields), 422)  # type: ignore[arg-type]
            assert field in str(error.get("details", "")) + str(error["message"]), error

        assert await database["jobs"].count_documents({}) == 0
        assert stored_files(system) == []
        assert await queue_depth(system.env["AMQP_URL"], queue) == 0

        # The same three checks do see an accepted upload.
        assert (await user.submit(api, photo)).status_code == 202
    assert await database["jobs"].count_documents({}) == 1
    assert len(stored_files(system)) == 1
    assert await queue_depth(system.env["AMQP_URL"], queue) == 1
