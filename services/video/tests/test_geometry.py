"""Fitting keeps the photo whole and unsquashed; covering fills the frame; the canvas
shows the photo upright and a cut-out on its studio backdrop."""

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from common.media import frame_size
from video.render.canvas import compose_canvas
from video.render.geometry import Box, cover, fit


@pytest.mark.parametrize(
    ("photo", "box", "expected"),
    [
        ((100, 100), Box(0, 0, 200, 100), Box(50, 0, 100, 100)),  # square in wide: side bars
        ((400, 100), Box(0, 0, 100, 100), Box(0, 37.5, 100, 25)),  # wide in square
        ((100, 400), Box(0, 0, 200, 100), Box(87.5, 0, 25, 100)),  # tall in wide
        ((1000, 1000), Box(10, 20, 50, 50), Box(10, 20, 50, 50)),  # same shape: fills
        ((30, 20), Box(0, 0, 300, 300), Box(0, 50, 300, 200)),  # small photos grow
    ],
)
def test_fit_keeps_the_whole_photo_in_its_proportions(
    photo: tuple[int, int], box: Box, expected: Box
) -> None:
    placed = fit(*photo, box)
    assert placed == expected
    assert box.contains(placed)
    assert placed.w / placed.h == pytest.approx(photo[0] / photo[1])


@pytest.mark.parametrize(
    ("photo", "target", "expected"),
    [
        ((200, 100), (100, 100), Box(50, 0, 100, 100)),
        ((100, 400), (100, 100), Box(0, 150, 100, 100)),
        ((1600, 900), (9, 16), Box(546.875, 0, 506.25, 900)),
    ],
)
def test_cover_keeps_the_centre_in_the_target_proportions(
    photo: tuple[int, int], target: tuple[int, int], expected: Box
) -> None:
    kept = cover(*photo, *target)
    assert kept == expected
    assert kept.w / kept.h == pytest.approx(target[0] / target[1])


def test_frame_sizes_per_aspect_ratio() -> None:
    assert frame_size("9:16") == (720, 1280)
    assert frame_size("1:1") == (720, 720)
    assert frame_size("16:9") == (1280, 720)
    with pytest.raises(ValueError, match="aspect ratio"):
        frame_size("4:3")


def test_canvas_turns_phone_photos_upright_and_keeps_cut_outs_transparent(
    tmp_path: Path,
) -> None:
    canvas_size = (720, 1280)
    # Stored 400x200 sideways, with EXIF "rotate 90° clockwise to view" (orientation 6).
    sideways = Image.new("RGB", (400, 200), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", exif=exif)
    (tmp_path / "phone.jpg").write_bytes(buffer.getvalue())
    placed = compose_canvas(tmp_path / "phone.jpg", canvas_size, tmp_path / "a.png")
    assert placed.h / placed.w == pytest.approx(2, rel=0.01)  # upright: tall

    # A cut-out product: a red disc on a transparent square.
    cut_out = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    ImageDraw.Draw(cut_out).ellipse((0, 0, 399, 399), fill=(200, 30, 30, 255))
    cut_out.save(tmp_path / "cut.png")
    placed = compose_canvas(tmp_path / "cut.png", canvas_size, tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as canvas:
        x, y, w, h = placed.rounded()
        centre = canvas.getpixel((x + w // 2, y + h // 2))
        corner = canvas.getpixel((x + 3, y + 3))  # transparent in the photo
    assert centre == (200, 30, 30)
    # The studio backdrop shows through, light and never black.
    assert min(corner) > 120 and corner != (200, 30, 30)
