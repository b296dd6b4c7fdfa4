"""A refused upload leaves no trace: no job, no stored object, no message; an
oversized or anonymous one is not parsed, and its body is read no further than
needed for the client to see the answer (tests/test_early_refusals.py)."""

from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.gateway.tests.support import MIB, MULTIPART, Stream
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


async def post_streamed(
    system: System, body: Stream, headers: dict[str, str], expected: int
) -> None:
    """Post `body` and check the gateway answered `expected`. The client may get the
    answer, or only a reset connection: the gateway closes the connection after
    answering while the client is still sending, and the peer's reset can overtake the
    answer. Either way the gateway's access log says what it answered."""
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        try:
            response = await api.post(
                "/api/v1/jobs", content=body, headers={**MULTIPART, **headers}
            )
            assert_error_shape(response, expected)
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
            pass
    line = f'"POST /api/v1/jobs HTTP/1.1" {expected}'

    async def answered() -> bool:
        return line in system.gateway.log()

    await user.wait_for(answered, within=5, what=f"{line} in the gateway's log")


# MAX_UPLOAD_BYTES' default; an early answer drains the unread body up to twice it.
LIMIT = 20 * MIB
DRAINED_AT_MOST = 2 * (LIMIT + 64 * 1024)


async def test_the_gateway_stops_reading_an_endless_upload(gateway_only: System) -> None:
    """A real uvicorn process, 200 MiB streamed without Content-Length: the gateway
    refuses once the upload passes its limit, and reads (to throw away) no more than
    twice the limit. What the client managed to send is that plus what the socket
    buffers held."""
    async with httpx.AsyncClient(base_url=gateway_only.gateway.url, timeout=30) as api:
        session = await user.sign_in(api)
    body = Stream(200 * MIB)
    await post_streamed(gateway_only, body, user.auth(session), 413)
    assert body.yielded < DRAINED_AT_MOST + 16 * MIB, body.yielded


async def test_an_anonymous_endless_upload_is_refused_and_not_read_to_its_end(
    gateway_only: System,
) -> None:
    """Without a session the 401 comes before the form is parsed (nothing is spooled);
    the body is only drained, and no further than twice the upload limit."""
    body = Stream(200 * MIB)
    await post_streamed(gateway_only, body, {"Authorization": "Bearer forged"}, 401)
    assert body.yielded < DRAINED_AT_MOST + 16 * MIB, body.yielded
