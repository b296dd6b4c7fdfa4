"""The camera move follows the prompt, and no move ever cuts the product."""

import pytest

from video.render.geometry import Box
from video.render.motion import Move, choose_move, motion_for


@pytest.mark.parametrize(
    ("prompt", "move"),
    [
        # The four openings of the template prompt writer.
        ("Slow zoom in on Stoneware Mug, a navy product shot.", Move.ZOOM_IN),
        ("Slow zoom out from a close detail to reveal Stoneware Mug.", Move.ZOOM_OUT),
        ("Gentle pan left across Stoneware Mug.", Move.PAN_LEFT),
        ("Gentle pan right across Stoneware Mug.", Move.PAN_RIGHT),
        # What an LLM may write instead.
        ("The camera slowly pushes in toward the bottle's label.", Move.ZOOM_IN),
        ("Extreme close-up of the watch face, then hold.", Move.ZOOM_IN),
        ("Move closer to the stitching.", Move.ZOOM_IN),
        ("ZOOMING INTO the sneaker's sole", Move.ZOOM_IN),
        ("Camera pulls back to show the whole chair.", Move.ZOOM_OUT),
        ("A slow reveal of the lamp in a cosy room.", Move.ZOOM_OUT),
        ("The camera pans to the left over the scarf.", Move.PAN_LEFT),
        ("Smooth tracking shot, right to left, across the shelf.", Move.PAN_LEFT),
        ("Panning right across the necklace.", Move.PAN_RIGHT),
        ("A dolly shot moving from left to right past the vase.", Move.PAN_RIGHT),
    ],
)
def test_prompt_words_choose_the_move(prompt: str, move: Move) -> None:
    assert choose_move(prompt) is move


def test_the_move_named_first_wins() -> None:
    assert choose_move("Pan left, then zoom in on the logo.") is Move.PAN_LEFT
    assert choose_move("Zoom in on the logo, then pan left.") is Move.ZOOM_IN


def test_words_that_only_contain_a_move_do_not_count() -> None:
    # "closet", "disclosed", "expanded", "panorama", "revealing" vs "reveal": only whole words.
    for prompt in ("A walnut closet organiser.", "Undisclosed panorama of a leftover sofa."):
        assert choose_move(prompt) is choose_move(prompt.upper().replace(" ", "  "))


def test_without_a_named_move_the_choice_is_a_stable_hash_of_the_prompt() -> None:
    prompts = [f"Studio shot of product number {i} on a white table." for i in range(24)]
    moves = [choose_move(p) for p in prompts]
    assert moves == [choose_move(p) for p in prompts]  # the same every time
    # Case and spacing are not part of the prompt's identity.
    assert moves == [choose_move("  " + p.upper().replace(" ", "   ")) for p in prompts]
    assert len(set(moves)) >= 3  # and different prompts get different moves


@pytest.mark.parametrize("move", list(Move))
def test_every_frame_of_every_move_shows_the_whole_product(move: Move) -> None:
    motion = motion_for(move)
    product = motion.product_area()
    assert product.w > 0.75 and product.h > 0.75  # still the star of the frame
    for step in range(101):
        view = motion.at(step / 100).box
        assert view.contains(product), (step, view, product)
        assert Box(0, 0, 1, 1).contains(view)  # the camera never looks past the canvas


@pytest.mark.parametrize("move", list(Move))
def test_moves_are_gentle_and_really_move(move: Move) -> None:
    motion = motion_for(move)
    start, end = motion.at(0), motion.at(1)
    assert (start, end) == (motion.start, motion.end)
    assert 1.0 <= start.zoom <= 1.12 and 1.0 <= end.zoom <= 1.12
    assert abs(end.zoom - start.zoom) >= 0.1 or abs(end.cx - start.cx) >= 0.05
    # Eased: the first and last steps are much smaller than the middle ones.
    first = abs(motion.at(0.01).cx - start.cx) + abs(motion.at(0.01).zoom - start.zoom)
    middle = abs(motion.at(0.51).cx - motion.at(0.5).cx) + abs(
        motion.at(0.51).zoom - motion.at(0.5).zoom
    )
    assert first < middle / 10
    if move is Move.PAN_LEFT:
        assert end.cx < start.cx
    if move is Move.PAN_RIGHT:
        assert end.cx > start.cx
    if move is Move.ZOOM_IN:
        assert end.zoom > start.zoom
    if move is Move.ZOOM_OUT:
        assert end.zoom < start.zoom
