"""Photo validation and normalisation: what is accepted, refused and stored."""

import asyncio
import hashlib
import io
import struct
import threading
import time
import zlib
from collections.abc import Callable

import pytest
from fastapi import UploadFile
from PIL import Image, ImageCms

from common.errors import ApiError
from gateway import images
from gateway.images import ImageLimits, normalize_image

LIMITS = ImageLimits(max_bytes=20 * 1024 * 1024, max_pixels=40_000_000, min_side=256)
EXIF_ORIENTATION, EXIF_GPS_IFD, EXIF_MAKE = 0x0112, 0x8825, 0x010F


def refused(data: bytes, limits: ImageLimits = LIMITS) -> ApiError:
    with pytest.raises(ApiError) as caught:
        normalize_image(data, limits)
    return caught.value


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size and carries garbage instead of pixels: decoding
    it would fail, so only a refusal from the header can answer 413."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"not zlib data")
        + png_chunk(b"IEND", b"")
    )


def open_result(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(
    ("fmt", "ext", "content_type"),
    [("JPEG", "jpg", "image/jpeg"), ("PNG", "jpg", "image/jpeg"), ("WEBP", "jpg", "image/jpeg")],
)
def test_jpeg_png_webp_are_accepted(make_photo: Callable[..., bytes], fmt, ext, content_type):
    data = make_photo(fmt, (640, 480))
    result = normalize_image(data, LIMITS)
    assert (result.ext, result.content_type) == (ext, content_type)
    assert (result.width, result.height) == (640, 480)
    assert result.source_format == fmt
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    stored = open_result(result.data)
    assert stored.format == "JPEG" and stored.mode == "RGB" and stored.size == (640, 480)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_refused_by_content(make_photo: Callable[..., bytes], fmt):
    error = refused(make_photo(fmt, (640, 480)))
    assert (error.status, error.code) == (415, "unsupported_image_type")


@pytest.mark.parametrize(
    "data",
    [b"just some text, not an image\n" * 50, b"", b"<svg xmlns='http://www.w3.org/2000/svg'/>"],
)
def test_non_images_are_refused(data: bytes):
    assert refused(data).status == 415


def test_exif_rotated_jpeg_comes_out_upright(make_photo: Callable[..., bytes]):
    # Left half red, right half blue; orientation 6 says "turn 90° clockwise to view".
    img = Image.new("RGB", (400, 300), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 200, 300))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)

    result = normalize_image(buf.getvalue(), LIMITS)

    assert (result.width, result.height) == (300, 400)
    upright = open_result(result.data)
    assert upright.size == (300, 400)
    top, bottom = upright.getpixel((150, 50)), upright.getpixel((150, 350))
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below
    assert EXIF_ORIENTATION not in upright.getexif()


def test_metadata_is_stripped(make_photo: Callable[..., bytes]):
    exif = Image.Exif()
    exif[EXIF_MAKE] = "SpyCam"
    exif.get_ifd(EXIF_GPS_IFD)[2] = (48.0, 51.0, 24.0)  # GPSLatitude
    data = make_photo("JPEG", (640, 480), exif=exif, comment=b"secret note")
    assert Image.open(io.BytesIO(data)).getexif().get(EXIF_MAKE) == "SpyCam"

    stored = open_result(normalize_image(data, LIMITS).data)

    assert len(stored.getexif()) == 0
    assert "exif" not in stored.info and "comment" not in stored.info


def test_cmyk_jpeg_becomes_rgb(make_photo: Callable[..., bytes]):
    data = make_photo("JPEG", (512, 512), mode="CMYK", color=(0, 255, 255, 0))  # red ink
    stored = open_result(normalize_image(data, LIMITS).data)
    assert stored.mode == "RGB"
    r, g, b = stored.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60


def test_greyscale_png_becomes_rgb_jpeg(make_photo: Callable[..., bytes]):
    result = normalize_image(make_photo("PNG", (300, 300), mode="L", color=128), LIMITS)
    stored = open_result(result.data)
    assert (result.content_type, stored.format, stored.mode) == ("image/jpeg", "JPEG", "RGB")
    assert all(abs(c - 128) <= 2 for c in stored.getpixel((5, 5)))


def test_rgba_png_keeps_its_transparency(make_photo: Callable[..., bytes]):
    img = Image.new("RGBA", (300, 300), (0, 128, 0, 0))
    img.paste((0, 128, 0, 255), (100, 100, 200, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")

    result = normalize_image(buf.getvalue(), LIMITS)

    stored = open_result(result.data)
    assert (result.ext, result.content_type) == ("png", "image/png")
    assert stored.format == "PNG" and stored.mode == "RGBA"
    assert stored.getpixel((10, 10))[3] == 0 and stored.getpixel((150, 150))[3] == 255


def test_palette_png_with_transparency_keeps_it(make_photo: Callable[..., bytes]):
    img = Image.new("P", (300, 300), 0)
    img.putpalette([255, 255, 255, 200, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 150, 300))
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)

    stored = open_result(normalize_image(buf.getvalue(), LIMITS).data)

    assert stored.mode == "RGBA"
    assert stored.getpixel((10, 10)) == (200, 0, 0, 255)
    assert stored.getpixel((290, 10))[3] == 0


def test_embedded_colour_profile_is_converted_and_dropped(make_photo: Callable[..., bytes]):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = make_photo("JPEG", (300, 300), icc_profile=icc)
    stored = open_result(normalize_image(data, LIMITS).data)
    assert "icc_profile" not in stored.info or not stored.info["icc_profile"]


def test_decompression_bomb_header_is_refused_without_decoding():
    error = refused(png_header_only(50_000, 50_000))
    assert (error.status, error.code) == (413, "image_too_large")


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")  # as in the app
def test_bomb_just_over_the_limit_is_refused_before_decoding():
    # 7000×7000 = 49 M pixels: over our 40 M limit, under Pillow's own hard limit.
    error = refused(png_header_only(7000, 7000))
    assert (error.status, error.code) == (413, "image_too_large")
    assert error.details["max_pixels"] == LIMITS.max_pixels


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")  # as in the app
def test_real_compressed_bomb_is_refused():
    # A tiny file that would inflate to 49 MB of pixels.
    width = height = 7000
    raw = zlib.compress(b"".join(b"\x00" + bytes(width) for _ in range(height)), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", raw)
        + png_chunk(b"IEND", b"")
    )
    assert len(data) < 200_000
    assert refused(data).code == "image_too_large"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_file_is_refused(make_photo: Callable[..., bytes], fmt):
    img = Image.effect_noise((640, 480), 64).convert("RGB")  # noise: no tiny encodings
    buf = io.BytesIO()
    img.save(buf, fmt)
    data = buf.getvalue()
    error = refused(data[: len(data) // 2])
    assert (error.status, error.code) == (400, "invalid_image")


def test_too_small_image_is_refused(make_photo: Callable[..., bytes]):
    error = refused(make_photo("JPEG", (1024, 200)))
    assert (error.status, error.code) == (422, "image_too_small")
    assert error.details == {"width": 1024, "height": 200, "min_side": 256}


def test_body_over_the_byte_limit_is_refused(make_photo: Callable[..., bytes]):
    data = make_photo("PNG", (640, 480))
    error = refused(data, ImageLimits(max_bytes=len(data) - 1, max_pixels=10**8, min_side=1))
    assert (error.status, error.code) == (413, "upload_too_large")


# What phones append to a JPEG, and what a polyglot looks like.


def box(kind: bytes, payload: bytes = b"", *, large: bool = False) -> bytes:
    """One ISO-BMFF box (the building block of MP4)."""
    if large:  # size 1: the real size follows as 64 bits
        return struct.pack(">I", 1) + kind + struct.pack(">Q", 16 + len(payload)) + payload
    return struct.pack(">I", 8 + len(payload)) + kind + payload


FTYP = box(b"ftyp", b"mp42\x00\x00\x00\x00isommp42")
ZIP = b"PK\x03\x04" + bytes(26) + b"x.php<?php system($_GET['c']); ?>" + b"PK\x05\x06" + bytes(18)


def mpo() -> bytes:
    """Two JPEGs in one file, as 3D cameras and phones write them."""
    buf = io.BytesIO()
    left, right = Image.new("RGB", (400, 300), "red"), Image.new("RGB", (400, 300), "blue")
    left.save(buf, "MPO", save_all=True, append_images=[right])
    return buf.getvalue()


TRAILERS_ACCEPTED = {
    "motion photo": lambda jpeg: jpeg + FTYP + box(b"mdat", bytes(3000)) + box(b"moov", bytes(500)),
    "motion photo, 64-bit and open-ended boxes": lambda jpeg: (
        jpeg + FTYP + box(b"free") + box(b"mdat", bytes(100), large=True) + b"\x00\x00\x00\x00moov"
    ),
    "ultra hdr: a gain map jpeg": lambda jpeg: jpeg + jpeg,
    "ultra hdr motion photo": lambda jpeg: jpeg + jpeg + FTYP + box(b"mdat", bytes(100)),
    "zero padding": lambda jpeg: jpeg + bytes(64),
}
TRAILERS_REFUSED = {
    "zip": lambda jpeg: jpeg + ZIP,
    "ftyp then zip": lambda jpeg: jpeg + FTYP + ZIP,
    "ftyp, mdat, then zip": lambda jpeg: jpeg + FTYP + box(b"mdat", bytes(100)) + ZIP,
    "an unknown box": lambda jpeg: jpeg + FTYP + box(b"PK\x03\x04", bytes(100)),
    "boxes without ftyp": lambda jpeg: jpeg + box(b"mdat", bytes(100)),
    "a box running past the end": lambda jpeg: jpeg + FTYP + box(b"mdat", bytes(100))[:-1],
    "a box too short for its header": lambda jpeg: jpeg + FTYP + b"\x00\x00\x00\x04mdat",
    "a truncated second jpeg": lambda jpeg: jpeg + jpeg[:-100],
    "a second jpeg, then zip": lambda jpeg: jpeg + jpeg + ZIP,
    "html": lambda jpeg: jpeg + b"<html><script>alert(1)</script></html>",
}


@pytest.mark.parametrize("case", list(TRAILERS_ACCEPTED))
def test_what_phones_append_to_a_jpeg_is_accepted_and_dropped(
    make_photo: Callable[..., bytes], case: str
):
    data = TRAILERS_ACCEPTED[case](make_photo("JPEG", (400, 300)))
    stored = normalize_image(data, LIMITS).data
    assert stored.endswith(b"\xff\xd9") and b"ftyp" not in stored
    assert open_result(stored).size == (400, 300)


@pytest.mark.parametrize("case", list(TRAILERS_REFUSED))
def test_anything_else_after_a_jpeg_is_refused(make_photo: Callable[..., bytes], case: str):
    error = refused(TRAILERS_REFUSED[case](make_photo("JPEG", (400, 300))))
    assert (error.status, error.code) == (400, "invalid_image")


def test_an_mpo_is_accepted_as_its_first_image():
    data = mpo()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    stored = open_result(normalize_image(data, LIMITS).data)
    assert stored.format == "JPEG" and getattr(stored, "n_frames", 1) == 1
    assert stored.getpixel((200, 150))[0] > 200  # the red one


def test_an_mpo_with_a_zip_appended_is_refused():
    assert refused(mpo() + ZIP).code == "invalid_image"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_only_a_jpeg_may_carry_a_motion_photo(make_photo: Callable[..., bytes], fmt: str):
    data = make_photo(fmt, (400, 300)) + FTYP + box(b"mdat", bytes(100))
    assert refused(data).code == "invalid_image"


async def test_at_most_decode_concurrency_photos_are_decoded_at_once(monkeypatch):
    """The memory bound: the 3rd of 8 simultaneous uploads waits for a free slot."""
    running = peak = 0
    lock = threading.Lock()

    def slow_normalize(data: bytes, limits: ImageLimits) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return data

    monkeypatch.setattr(images, "normalize_image", slow_normalize)
    decoder = images.Decoder(2, LIMITS)
    uploads = [UploadFile(io.BytesIO(b"photo %d" % i)) for i in range(8)]
    results = await asyncio.gather(*(decoder.normalize(upload) for upload in uploads))
    assert results == [b"photo %d" % i for i in range(8)]
    assert peak == 2


async def test_an_upload_that_waits_too_long_for_a_slot_is_told_to_come_back(monkeypatch):
    def stuck(data: bytes, limits: ImageLimits) -> bytes:
        time.sleep(0.5)
        return data

    monkeypatch.setattr(images, "normalize_image", stuck)
    decoder = images.Decoder(1, LIMITS, wait=0.1)
    first = asyncio.ensure_future(decoder.normalize(UploadFile(io.BytesIO(b"first"))))
    await asyncio.sleep(0.05)
    with pytest.raises(ApiError) as caught:
        await decoder.normalize(UploadFile(io.BytesIO(b"second")))
    assert (caught.value.status, caught.value.code) == (503, "busy")
    assert caught.value.headers == {"Retry-After": "5"}
    assert await first == b"first"  # the slot it held is given back as usual
    assert await decoder.normalize(UploadFile(io.BytesIO(b"third"))) == b"third"
