"""Submitting jobs through the API, against the real broker, database and storage."""

import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from common.metrics import JOBS_SUBMITTED
from services.gateway.tests.support import MIB, MULTIPART, Stream

NO_AD_OPTIONS = {
    "preset": None,
    "cta": None,
    "price": None,
    "music": "on",
    "captions": "on",
    "finish": True,
}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def test_submit_stores_the_job_and_the_photo_and_queues_it(gateway, make_photo):
    upload = make_photo("PNG", (800, 600))  # no transparency: stored as JPEG
    submitted_before = JOBS_SUBMITTED._value.get()

    response = await gateway.submit(
        upload,
        filename="mug.png",
        content_type="image/png",
        title="  Tasse «Été» 🍵 — 茶杯  ",
        description="Handmade.\nDishwasher safe. <b>not html</b>",
        aspect_ratio="16:9",
        duration="7",
        style="cinematic",
    )

    assert response.status_code == 202, response.text
    body = response.json()
    job_id = body["id"]
    assert body["status"] == "queued" and body["token"]
    view = body["job"]
    assert view["id"] == job_id and view["status"] == "queued" and view["progress"] == 0
    assert view["title"] == "Tasse «Été» 🍵 — 茶杯"
    assert view["description"] == "Handmade.\nDishwasher safe. <b>not html</b>"
    assert view["options"] == {
        "aspect_ratio": "16:9",
        "duration": 7,
        "style": "cinematic",
        **NO_AD_OPTIONS,
    }
    assert view["brief"] is None and view["notes"] == []  # the brief comes with the prompt
    assert view["image"] == {"width": 800, "height": 600, "content_type": "image/jpeg"}

    stored = await gateway.services.db["jobs"].find_one({"_id": job_id})
    assert stored["owner"] == gateway.email and stored["client_ip"] == "127.0.0.1"
    assert stored["image"]["key"] == f"uploads/{job_id}/source.jpg"
    assert stored["image"]["sha256"] == hashlib.sha256(upload).hexdigest()
    assert stored["request_fingerprint"] and "idempotency_key" not in stored

    files = gateway.stored_files()
    assert files == [gateway.settings.storage_root / f"uploads/{job_id}/source.jpg"]
    assert Image.open(files[0]).format == "JPEG"

    message = await gateway.next_message(gateway.prompt_queue)
    assert message is not None
    event = json.loads(message.body)
    assert event["type"] == "job.submitted" and event["job_id"] == job_id
    assert message.delivery_mode == 2  # persistent
    assert await gateway.queue_depth(gateway.prompt_queue) == 0
    assert JOBS_SUBMITTED._value.get() == submitted_before + 1


async def test_defaults_apply_when_options_are_left_out(gateway):
    response = await gateway.submit()
    assert response.status_code == 202
    assert response.json()["job"]["options"] == {
        "aspect_ratio": "9:16",
        "duration": 5,
        "style": None,
        **NO_AD_OPTIONS,
    }


async def test_same_idempotency_key_returns_the_same_job(gateway, make_photo):
    upload = make_photo("JPEG", (640, 640))
    headers = {"Idempotency-Key": "order-42"}

    first = await gateway.submit(upload, headers=headers)
    again = await gateway.submit(upload, headers=headers)

    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["token"]
    assert await gateway.job_count() == 1
    assert len(gateway.stored_files()) == 1
    assert await gateway.queue_depth(gateway.prompt_queue) == 1


async def test_same_idempotency_key_for_a_different_request_is_a_conflict(gateway, make_photo):
    headers = {"Idempotency-Key": "order-43"}
    first = await gateway.submit(make_photo("JPEG", (640, 640)), headers=headers)
    other_photo = await gateway.submit(
        make_photo("JPEG", (640, 640), color=(0, 0, 255)), headers=headers
    )
    other_title = await gateway.submit(
        make_photo("JPEG", (640, 640)), headers=headers, title="Blue mug"
    )

    assert first.status_code == 202
    assert_error(other_photo, 409, "idempotency_key_reused")
    assert_error(other_title, 409, "idempotency_key_reused")
    assert await gateway.job_count() == 1
    assert len(gateway.stored_files()) == 1
    assert await gateway.queue_depth(gateway.prompt_queue) == 1


async def test_regenerate_is_stored_and_part_of_the_request_only_when_set(gateway, make_photo):
    upload = make_photo("JPEG", (640, 640))
    plain = await gateway.submit(upload, headers={"Idempotency-Key": "order-44"})
    # Sent as false it is the request it was without it: a replay, not a conflict.
    replay = await gateway.submit(
        upload, headers={"Idempotency-Key": "order-44"}, regenerate="false"
    )
    assert (plain.status_code, replay.status_code) == (202, 200)
    assert replay.json()["id"] == plain.json()["id"]
    assert "regenerate" not in await gateway.services.repo.get(plain.json()["id"])

    again = await gateway.submit(upload, headers={"Idempotency-Key": "order-45"}, regenerate="true")
    assert again.status_code == 202
    assert (await gateway.services.repo.get(again.json()["id"]))["regenerate"] is True
    # The same key without it is another request.
    other = await gateway.submit(upload, headers={"Idempotency-Key": "order-45"})
    assert_error(other, 409, "idempotency_key_reused")
    assert await gateway.job_count() == 2


def _truncated(make_photo: Callable[..., bytes]) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((640, 480), 64).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()[:20_000]


REFUSALS = {
    "gif named .jpg": (
        lambda p: p("GIF", (640, 480), mode="P", color=1),
        {},
        415,
        "unsupported_image_type",
    ),
    "bmp": (lambda p: p("BMP", (640, 480)), {}, 415, "unsupported_image_type"),
    "text file": (lambda p: b"hello, not an image\n" * 100, {}, 415, "unsupported_image_type"),
    "truncated jpeg": (_truncated, {}, 400, "invalid_image"),
    "too small": (lambda p: p("JPEG", (200, 800)), {}, 422, "image_too_small"),
    "title too long": (lambda p: p(), {"title": "x" * 121}, 422, "validation_error"),
    "blank title": (lambda p: p(), {"title": "   \t "}, 422, "validation_error"),
    "missing description": (lambda p: p(), {"description": None}, 422, "validation_error"),
    "description too long": (lambda p: p(), {"description": "é" * 2001}, 422, "validation_error"),
    "duration too long": (lambda p: p(), {"duration": "11"}, 422, "validation_error"),
    "duration not a number": (lambda p: p(), {"duration": "five"}, 422, "validation_error"),
    "unknown aspect ratio": (lambda p: p(), {"aspect_ratio": "4:3"}, 422, "validation_error"),
    "unknown preset": (lambda p: p(), {"preset": "myspace"}, 422, "validation_error"),
    "ratio against the preset": (
        lambda p: p(),
        {"preset": "tiktok", "aspect_ratio": "16:9"},
        422,
        "validation_error",
    ),
    "cta too long": (lambda p: p(), {"cta": "x" * 41}, 422, "validation_error"),
    "price too long": (lambda p: p(), {"price": "9" * 21}, 422, "validation_error"),
    "music neither on nor off": (lambda p: p(), {"music": "loud"}, 422, "validation_error"),
    "finish not a bool": (lambda p: p(), {"finish": "maybe"}, 422, "validation_error"),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
async def test_refused_uploads_leave_nothing_behind(gateway, make_photo, case):
    make, fields, status, code = REFUSALS[case]

    response = await gateway.submit(make(make_photo), **fields)

    error = assert_error(response, status, code)
    if code == "validation_error":
        assert error["details"] and all({"field", "message"} <= set(d) for d in error["details"])
    await gateway.assert_nothing_left()


async def test_validation_errors_name_every_bad_field(gateway):
    response = await gateway.submit(title=" \n ", description="d" * 2001)
    error = assert_error(response, 422, "validation_error")
    assert {d["field"] for d in error["details"]} == {"title", "description"}
    await gateway.assert_nothing_left()


async def test_decompression_bomb_upload_is_refused(gateway):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", b"garbage")
        + chunk(b"IEND", b"")
    )
    response = await gateway.submit(bomb, filename="bomb.png", content_type="image/png")
    assert_error(response, 413, "image_too_large")
    await gateway.assert_nothing_left()


async def test_oversized_uploads_are_refused(start_gateway, make_photo):
    limit = 100_000
    async with start_gateway(max_upload_bytes=limit) as gateway:
        # A declared Content-Length over the limit is refused before any byte is read.
        big = b"\xff\xd8\xff" + bytes(limit + 200_000)
        response = await gateway.submit(big)
        assert_error(response, 413, "upload_too_large")

        # No Content-Length (chunked): refused while the body streams in.
        async def stream():
            yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            yield b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff"
            for _ in range(40):
                yield bytes(10_000)

        response = await gateway.client.post(
            "/api/v1/jobs",
            content=stream(),
            headers={"Content-Type": "multipart/form-data; boundary=b", **await gateway.auth()},
        )
        assert_error(response, 413, "upload_too_large")

        # The body fits the form's allowance but the photo itself is over the limit.
        response = await gateway.submit(b"\xff\xd8\xff" + bytes(limit))
        assert_error(response, 413, "upload_too_large")
        await gateway.assert_nothing_left()


async def test_when_the_queue_is_unreachable_the_job_fails_with_a_reason(gateway, amqp):
    # Without its queue, job.submitted is unroutable: the mandatory publish is refused.
    async with amqp.channel() as channel:
        await channel.queue_delete(gateway.prompt_queue)

    response = await gateway.submit()

    error = assert_error(response, 503, "queue_unavailable")
    job = await gateway.services.repo.get(error["details"]["job_id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "queue_unavailable" and job["error"]["message"]
    assert [h["status"] for h in job["history"]] == ["queued", "failed"]


async def test_a_streamed_upload_over_the_limit_is_not_read_further(start_gateway):
    """200 MiB with no Content-Length: the gateway refuses right after the limit
    (without the streaming cap the form parser would read it all), drains at most as
    much again for the client to see the answer, and then closes the connection."""
    limit = 100_000
    async with start_gateway(max_upload_bytes=limit) as gateway:
        body = Stream(200 * MIB)
        response = await gateway.client.post(
            "/api/v1/jobs", content=body, headers={**MULTIPART, **await gateway.auth()}
        )
        assert_error(response, 413, "upload_too_large")
        assert response.headers["connection"] == "close"
        # Twice the photo's allowance plus the form's 64 KiB, and the chunk that crossed it.
        assert body.yielded <= 2 * (limit + 64 * 1024) + body.chunk, body.yielded
        await gateway.assert_nothing_left()
