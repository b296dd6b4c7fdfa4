"""The title card draws any title it is given, and never falls over one."""

from pathlib import Path

import pytest
from PIL import Image

from video.render import titlecard
from video.render.titlecard import ELLIPSIS, MAX_LINES, render_title_card

FRAME = (720, 1280)


def white_text(path: Path) -> tuple[int, int, int, int] | None:
    """The bounding box of the card's opaque white pixels: the letters."""
    with Image.open(path) as card:
        rgba = card.convert("RGBA")
    mask = Image.eval(rgba.convert("L"), lambda v: 255 if v > 200 else 0)
    mask = Image.composite(
        mask, Image.new("L", rgba.size), rgba.getchannel("A").point(lambda a: 255 if a > 200 else 0)
    )
    return mask.getbbox()


def test_card_is_a_frame_wide_band_over_the_bottom_third(tmp_path: Path) -> None:
    card = render_title_card("Stoneware Mug", FRAME, tmp_path / "t.png")
    assert card is not None and card.lines == ("Stoneware Mug",)
    with Image.open(card.path) as image:
        assert image.mode == "RGBA" and image.width == FRAME[0]
        assert card.y + image.height == FRAME[1]
        assert image.height >= FRAME[1] / 3
        alpha = image.getchannel("A")
        assert alpha.getpixel((5, 0)) == 0  # clear at the top: blends into the clip
        assert alpha.getpixel((5, image.height - 1)) > 150  # dark at the bottom
    box = white_text(card.path)
    assert box is not None
    left, _, right, _ = box
    assert abs((left + right) / 2 - FRAME[0] / 2) < 10  # centred


@pytest.mark.parametrize(
    "title",
    [
        "كوب قهوة من الخزف المصنوع يدوياً",  # Arabic: right to left, joined letters
        "ספל קרמיקה בעבודת יד",  # Hebrew
        "Керамическая кружка ручной работы",
        "Χειροποίητη κούπα",
        "Donaudampfschifffahrtsgesellschaftskapitänsmützenhalterung" * 3,  # nowhere to break
        "Crème brûlée ramekin – Ø 9 cm",
    ],
)
def test_any_script_is_drawn(tmp_path: Path, title: str) -> None:
    card = render_title_card(title, FRAME, tmp_path / "t.png")
    assert card is not None and 1 <= len(card.lines) <= MAX_LINES
    assert white_text(card.path) is not None


def test_emoji_the_font_cannot_draw_are_left_out_not_boxed(tmp_path: Path) -> None:
    card = render_title_card("Mug 🍵 deluxe 👍🏽 edition 👨‍👩‍👧", FRAME, tmp_path / "t.png")
    assert card is not None
    text = " ".join(card.lines)
    assert text.split() == ["Mug", "deluxe", "edition"]
    # A title of emoji only has nothing to show: no card rather than an empty band.
    assert render_title_card("🍵🎉", FRAME, tmp_path / "e.png") is None
    assert render_title_card(" \n\t ", FRAME, tmp_path / "w.png") is None


@pytest.mark.parametrize("frame", [(720, 1280), (720, 720), (1280, 720)])
def test_very_long_titles_wrap_shrink_and_end_with_an_ellipsis(
    tmp_path: Path, frame: tuple[int, int]
) -> None:
    title = "Handmade stoneware mug with speckled glaze " * 20 + "Supercalifragilistic" * 8
    card = render_title_card(title, frame, tmp_path / "t.png")
    assert card is not None
    assert len(card.lines) == MAX_LINES and card.lines[-1].endswith(ELLIPSIS)
    box = white_text(card.path)
    assert box is not None
    left, top, right, _ = box
    assert left >= frame[0] * 0.05 and right <= frame[0] * 0.95  # within the margins
    assert top > 0


def test_scripts_the_font_does_not_cover_are_left_out(tmp_path: Path) -> None:
    # DejaVu (or Pillow's font) has no Chinese: no boxes; a TITLE_FONT_PATH font would draw it.
    card = render_title_card("Stoneware 马克杯 Mug", FRAME, tmp_path / "t.png")
    assert card is not None and card.lines == ("Stoneware Mug",)


def test_control_characters_become_spaces(tmp_path: Path) -> None:
    card = render_title_card("Line one\nline\ttwo\x00", FRAME, tmp_path / "t.png")
    assert card is not None and card.lines == ("Line one line two",)


def test_without_dejavu_pillows_own_font_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(titlecard, "DEFAULT_FONTS", ())
    titlecard.load_font.cache_clear()
    try:
        card = render_title_card("Stoneware Mug 🍵", FRAME, tmp_path / "t.png", Path("/nope.ttf"))
    finally:
        titlecard.load_font.cache_clear()
    assert card is not None and card.lines == ("Stoneware Mug",)
    assert white_text(card.path) is not None
