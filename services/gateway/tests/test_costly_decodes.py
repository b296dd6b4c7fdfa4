"""Nothing costly before the cheap checks: a signed-in user cannot keep the decoder busy
(and real uploads waiting for it) by replaying an Idempotency-Key, by sending big photos
with a damaged or padded structure, or by sending unusable photos again and again."""

import io

import pytest
from PIL import Image, ImageFile

from gateway import images

NOT_A_PHOTO = b"\xff\xd8\xff" + b"a JPEG signature and nothing of a JPEG after it" * 20


@pytest.fixture
def decoded(monkeypatch) -> list[object]:
    """Every photo that reaches the decoder from now on (decoded for real)."""
    seen: list[object] = []
    normalize = images.normalize_image

    def counting(data: bytes, limits: images.ImageLimits) -> images.NormalizedImage:
        seen.append(data)
        return normalize(data, limits)

    monkeypatch.setattr(images, "normalize_image", counting)
    return seen


@pytest.fixture
def pixels_decoded(monkeypatch) -> list[object]:
    """Every image whose pixels Pillow decodes from now on."""
    seen: list[object] = []
    load = ImageFile.ImageFile.load

    def counting(self: ImageFile.ImageFile) -> object:
        seen.append(self)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    return seen


def big_png() -> bytearray:
    """A PNG of 12 M pixels (small on the wire: one colour), costly to decode."""
    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (200, 40, 40)).save(buf, "PNG")
    return bytearray(buf.getvalue())


async def test_a_replayed_key_is_answered_from_the_stored_job_without_decoding(
    gateway, make_photo, decoded
):
    key = {"Idempotency-Key": "mug-1"}
    first = await gateway.submit(headers=key)
    assert first.status_code == 202 and len(decoded) == 1

    for _ in range(3):
        again = await gateway.submit(headers=key)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = await gateway.submit(make_photo(color=(0, 90, 200)), headers=key)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(decoded) == 1
    assert await gateway.job_count() == 1


@pytest.mark.parametrize("damage", ["a stray byte after the image", "a flipped byte inside"])
async def test_a_damaged_big_png_is_refused_before_a_pixel_is_decoded(
    gateway, pixels_decoded, damage
):
    png = big_png()
    if damage == "a stray byte after the image":
        png += b"\x00!"
    else:
        idat = png.index(b"IDAT")
        png[idat + 20] ^= 0xFF
    response = await gateway.submit(bytes(png), filename="mug.png", content_type="image/png")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_image"
    assert pixels_decoded == []
    await gateway.assert_nothing_left()


async def test_who_keeps_sending_unusable_photos_is_slowed_down(start_gateway, decoded):
    async with start_gateway(refused_photos_per_email=3, refused_photos_window_seconds=600) as g:
        for _ in range(3):
            refused = await g.submit(NOT_A_PHOTO)
            assert refused.status_code == 400, refused.text
        assert len(decoded) == 3

        # The fourth is not decoded at all, even a good photo, until the window is over.
        for photo in (NOT_A_PHOTO, None):
            slowed = await g.submit(photo)
            assert slowed.status_code == 429, slowed.text
            error = slowed.json()["error"]
            assert error["details"]["limit"] == "refused_photos_per_email"
            assert 1 <= int(slowed.headers["retry-after"]) <= 600
        assert len(decoded) == 3

        # Someone else is not slowed down by it.
        other = await g.sign_in()
        assert (await g.submit(headers={"Authorization": f"Bearer {other}"})).status_code == 202
        assert len(decoded) == 4

        # Ten minutes on, the user is back.
        clock = g.services.limiter.clock
        g.services.limiter.clock = lambda: clock() + 600
        assert (await g.submit()).status_code == 202
