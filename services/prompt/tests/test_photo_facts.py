"""What the photo facts say about synthetic photos."""

from io import BytesIO

import pytest
from PIL import Image

from prompt.photo_facts import InvalidImage, describe
from services.prompt.tests.images import photo


def test_a_red_square_is_red_and_square() -> None:
    facts = describe(photo((200, 200), (230, 20, 25)))
    assert facts.colours == ("red",)
    assert facts.orientation == "square"
    assert facts.brightness == "bright"


def test_portrait_and_landscape() -> None:
    assert describe(photo((300, 600), (40, 90, 200))).orientation == "portrait"
    assert describe(photo((900, 400), (40, 90, 200))).orientation == "landscape"


def test_product_on_a_plain_background_names_both() -> None:
    facts = describe(photo((400, 600), (250, 250, 250), product=(20, 30, 75), fmt="JPEG"))
    assert facts.colours[0] == "deep navy"
    assert "white" not in facts.colours  # the backdrop is not the product's colour
    assert facts.background == "plain white"


def test_two_coloured_product_lists_both_colours() -> None:
    facts = describe(photo((400, 400), (215, 190, 155), product=(20, 30, 75)))
    # Half of the picture is backdrop: the product itself is named first.
    assert facts.colours[0] == "deep navy" and facts.background == "plain warm beige"


def test_dark_photo_is_dark() -> None:
    assert describe(photo((300, 300), (12, 12, 14))).brightness == "dark"


def test_corrupt_bytes_are_an_invalid_image() -> None:
    with pytest.raises(InvalidImage):
        describe(b"\x89PNG\r\n\x1a\n this is not really a png")


def rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_the_palette_is_the_photos_own_colours() -> None:
    facts = describe(photo((400, 600), (250, 250, 250), product=(20, 30, 75)))
    # The product, then the backdrop (as measured: edges blend a little on downscaling).
    assert [rgb(c) for c in facts.palette] == [
        pytest.approx((20, 30, 75), abs=3),
        pytest.approx((250, 250, 250), abs=3),
    ]
    # One flat colour: it and a clearly different shade of it.
    red = describe(photo((300, 300), (230, 20, 25))).palette
    assert red[0] == "#e61419" and len(red) == 2 and red[1] != red[0]


def test_the_focus_is_where_the_detail_is() -> None:
    image = Image.new("RGB", (600, 600), (250, 250, 250))
    # A striped label in the lower right third, the rest plain.
    for x in range(420, 580, 8):
        image.paste(Image.new("RGB", (4, 160), (10, 10, 10)), (x, 420))
    out = BytesIO()
    image.save(out, "PNG")
    x, y = describe(out.getvalue()).focus
    assert x > 2 / 3 and y > 2 / 3
    assert describe(photo((300, 300), (40, 90, 200))).focus == (0.5, 0.5)  # nothing to see
