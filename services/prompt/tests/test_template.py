"""The offline template: deterministic, and about the product in the photo."""

from prompt.photo_facts import describe
from prompt.providers.base import PromptRequest, VideoOptions
from prompt.providers.template import CAMERA_MOVES, TemplateProvider, camera_move
from services.prompt.tests.images import photo

NAVY_MUG = photo((600, 900), (250, 250, 250), product=(20, 30, 75))
PLAIN = VideoOptions("9:16", 5, None)


def request(
    title: str = "Stoneware Mug",
    description: str = "Hand-thrown mug with a speckled glaze, holds 350 ml.",
    options: VideoOptions = PLAIN,
    image: bytes = NAVY_MUG,
) -> PromptRequest:
    return PromptRequest(
        job_id="j1",
        title=title,
        description=description,
        options=options,
        facts=describe(image),
        image=image,
        content_type="image/png",
    )


async def test_same_inputs_write_the_same_prompt() -> None:
    provider = TemplateProvider("t1")
    first, second = await provider.write(request()), await provider.write(request())
    assert first == second
    assert first.model == "template-t1" and first.cost == 0


async def test_prompt_describes_the_product_and_the_shot() -> None:
    result = await TemplateProvider("t1").write(
        request(options=VideoOptions("16:9", 7, "warm minimal"))
    )
    text = result.text
    assert "Stoneware Mug" in text
    assert "speckled glaze" in text
    assert "deep navy" in text and "portrait" in text and "plain white background" in text
    assert "keep the product exactly as photographed" in text.lower()
    assert "7-second single continuous shot" in text and "16:9" in text
    assert "warm minimal" in text
    moves = [m for m in CAMERA_MOVES if m in text]
    assert moves == [result.details["camera_move"]]


async def test_different_products_get_different_prompts() -> None:
    provider = TemplateProvider("t1")
    mug = await provider.write(request())
    lamp = await provider.write(
        request(
            title="Brass Desk Lamp",
            description="Adjustable arm, warm light.",
            image=photo((900, 500), (20, 20, 20), product=(205, 165, 45)),
        )
    )
    assert mug.text != lamp.text
    assert "Brass Desk Lamp" in lamp.text and "landscape" in lamp.text
    assert "Stoneware Mug" not in lamp.text


def test_camera_move_follows_the_description() -> None:
    assert camera_move("Mug", "Please pan right across the table", None) == "pan right"
    assert camera_move("Mug", "Start close and pull back to show it all", None) == "slow zoom out"
    assert camera_move("Mug", "Show every detail of the glaze", None) == "slow zoom in"
    assert camera_move("Mug", "A mug", "pan left, calm") == "pan left"


def test_camera_move_without_hints_is_stable_and_varies() -> None:
    titles = [f"Product {i}" for i in range(40)]
    moves = [camera_move(t, "A thing for sale.", None) for t in titles]
    assert moves == [camera_move(t, "A  thing for SALE.", None) for t in titles]
    assert set(moves) == set(CAMERA_MOVES)
