"""Hostile uploads and text: each refused with the right status, leaving no job, no
stored object and no queued message; any Unicode text kept exactly."""

import io
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from PIL import Image

from common.media import ffmpeg_exe


def noise(fmt: str, size=(400, 300), **save) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 50).convert("RGB").save(buf, fmt, **save)
    return buf.getvalue()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims another size (a pixel bomb)."""
    data = bytearray(noise("JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_with_bad_crc() -> bytes:
    data = bytearray(noise("PNG"))
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    data[idat + 4 + length] ^= 0xFF  # first byte of the chunk's CRC
    return bytes(data)


def zip_archive() -> bytes:
    body = b"<?php system($_GET['c']); ?>"
    return (
        b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        + struct.pack("<III", zlib.crc32(body), len(body), len(body))
        + b"\x05\x00\x00\x00x.php"
        + body
    )


# The head of an MP4, which a phone's motion photo appends to its JPEG.
FTYP = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42"

HOSTILE = {
    "jpeg with a zip appended": (lambda: noise("JPEG") + zip_archive(), 400, "invalid_image"),
    "jpeg with an mp4 header, then a zip": (
        lambda: noise("JPEG") + FTYP + zip_archive(),
        400,
        "invalid_image",
    ),
    "png with html appended": (
        lambda: noise("PNG") + b"<html><script>alert(document.cookie)</script></html>",
        400,
        "invalid_image",
    ),
    "webp with a script appended": (
        lambda: noise("WEBP") + b"<script>alert(1)</script>",
        400,
        "invalid_image",
    ),
    "png signature on a jpeg body": (
        lambda: b"\x89PNG\r\n\x1a\n" + noise("JPEG"),
        400,
        "invalid_image",
    ),
    "png with a bad checksum": (png_with_bad_crc, 400, "invalid_image"),
    "truncated png": (lambda: noise("PNG")[:-2000], 400, "invalid_image"),
    "truncated webp": (lambda: noise("WEBP")[:-500], 400, "invalid_image"),
    "jpeg header claiming 60000x60000": (
        lambda: jpeg_declaring(60000, 60000),
        413,
        "image_too_large",
    ),
    "svg named .png": (
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        415,
        "unsupported_image_type",
    ),
    "html sent as image/jpeg": (
        lambda: b"<!doctype html><script>alert(1)</script>",
        415,
        "unsupported_image_type",
    ),
    "gif": (lambda: noise("GIF"), 415, "unsupported_image_type"),
    "tiff": (lambda: noise("TIFF"), 415, "unsupported_image_type"),
    "empty file": (lambda: b"", 415, "unsupported_image_type"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
async def test_hostile_upload_is_refused_and_leaves_nothing(gateway, case):
    make, status, code = HOSTILE[case]
    response = await gateway.submit(make(), filename="photo.png", content_type="image/jpeg")
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    await gateway.assert_nothing_left()


async def test_the_declared_type_and_name_do_not_matter(gateway):
    """A real PNG sent as "cat.gif" with a GIF content type is a PNG."""
    response = await gateway.submit(noise("PNG"), filename="cat.gif", content_type="image/gif")
    assert response.status_code == 202, response.text


def mp4_clip(tmp_path: Path) -> bytes:
    out = tmp_path / "clip.mp4"
    source = ["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10", "-t", "0.5"]
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    subprocess.run([ffmpeg_exe(), "-v", "error", *source, *encode, str(out)], check=True)
    return out.read_bytes()


async def test_a_motion_photo_is_accepted_and_stored_without_its_clip(gateway, tmp_path):
    """A phone's motion photo: the JPEG, then a real MP4 up to the end of the file."""
    response = await gateway.submit(noise("JPEG") + mp4_clip(tmp_path))
    assert response.status_code == 202, response.text
    [stored] = gateway.stored_files()
    assert b"ftyp" not in stored.read_bytes()


async def test_an_mpo_photo_is_accepted_as_its_first_image(gateway):
    """Two JPEGs in one file (MPO; Ultra HDR photos carry their gain map the same way)."""
    buf = io.BytesIO()
    first, second = Image.new("RGB", (400, 300), "red"), Image.new("RGB", (400, 300), "blue")
    first.save(buf, "MPO", save_all=True, append_images=[second])
    response = await gateway.submit(buf.getvalue())
    assert response.status_code == 202, response.text
    [stored] = gateway.stored_files()
    assert Image.open(stored).format == "JPEG" and Image.open(stored).getpixel((0, 0))[0] > 200


TEXTS = [
    "Tasse «Été» ☕ — 茶杯 🍵",
    "كوب قهوة خزفي",  # right to left
    "שלום mug ‏(RTL mark)",
    "e\u0301 n\u0303 a\u030a",  # combining marks, kept uncomposed
    "👩🏽‍🍳 chef's mug 🏳️‍🌈",  # zero-width joiners and modifiers
    "<img src=x onerror=alert(1)> & \"quotes\" 'single'",
]


@pytest.mark.parametrize("text", TEXTS)
async def test_any_unicode_text_is_kept_exactly(gateway, text):
    description = f"{text}\nLine two\twith a tab."
    response = await gateway.submit(title=text, description=description)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    read = await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=await gateway.auth())
    assert read.json()["title"] == text
    assert read.json()["description"] == description
    stored = await gateway.services.repo.get(job_id)
    assert (stored["title"], stored["description"]) == (text, description)


@pytest.mark.parametrize("text", ["bell\x07", "nul\x00byte", "escape\x1b[31m", "next\x85line"])
async def test_control_characters_are_refused(gateway, text):
    response = await gateway.submit(title=text)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "title"
    await gateway.assert_nothing_left()
