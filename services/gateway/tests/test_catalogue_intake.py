"""A batch request checked whole (`check_batch`): each photo of the zip read and checked once
however many rows name it, handed to the batch's sink, its problems on every row naming it."""

import io
import zipfile

from gateway.catalogue.intake import check_batch
from gateway.core.config import GatewaySettings
from gateway.images import Decoder, ImageLimits, NormalizedImage
from services.gateway.tests.conftest import photo

SETTINGS = GatewaySettings()
LIMITS = ImageLimits(max_bytes=SETTINGS.max_upload_bytes, max_pixels=10_000_000, min_side=256)
HEADER = "sku,title,description,image\n"


def zipped(**files: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    buf.seek(0)
    return buf


async def test_a_photo_named_by_several_rows_is_read_and_checked_once() -> None:
    seen: list[tuple[str, NormalizedImage]] = []

    async def sink(name: str, image: NormalizedImage) -> None:
        seen.append((name, image))

    manifest = (
        HEADER + "A,Mug,Red,mug.jpg\nB,Mug,Blue,mug.jpg\nC,Bowl,Big,https://x.example/b.jpg\n"
    )
    intake = await check_batch(
        SETTINGS,
        Decoder(1, LIMITS),
        manifest=manifest.encode(),
        manifest_name="m.csv",
        photos=zipped(**{"mug.jpg": photo(), "unused.jpg": b"never read"}),
        variants='[{"preset": "feed"}, {"preset": "tiktok"}]',
        sink=sink,
    )
    assert intake.problems == []
    assert [r.sku for r in intake.rows] == ["A", "B", "C"]
    assert [(v.aspect_ratio, v.duration) for v in intake.variants] == [("1:1", 5), ("9:16", 9)]
    assert intake.photos_checked == 1
    assert [(name, image.width, image.height) for name, image in seen] == [("mug.jpg", 640, 480)]


async def test_a_bad_photo_is_a_problem_of_every_row_naming_it() -> None:
    manifest = HEADER + "A,Mug,Red,mug.jpg\nB,Bowl,Big,bowl.jpg\nC,Mug,Blue,mug.jpg\n"
    intake = await check_batch(
        SETTINGS,
        Decoder(1, LIMITS),
        manifest=manifest.encode(),
        manifest_name=None,
        photos=zipped(**{"mug.jpg": photo(size=(64, 64)), "bowl.jpg": photo()}),
        variants=None,
    )
    assert [(p.row, p.field) for p in intake.problems] == [(1, "image"), (3, "image")]
    assert "256" in intake.problems[0].message
    assert [r.sku for r in intake.rows] == ["B"]
    error = intake.error()
    assert error.status == 422
    assert error.details == [p.public() for p in intake.problems]
