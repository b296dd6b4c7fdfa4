"""The ad's text: every script drawn by a font that has it (never a box), lines that fit,
plates that read (>= 4.5:1 whatever is behind them); and its timing: the hook early, every
caption long enough to read, the end card in the last 1.5-2 s, for any length and brief."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.brief import Brief
from video.finishing.captions import PLATE_ALPHA, TEXT, plate_colour
from video.finishing.endcard import colours
from video.finishing.text import (
    EMOJI_FONT,
    REPLACEMENT,
    blend,
    contrast,
    draw_line,
    fonts_available,
    is_rtl,
    line_width,
    runs,
    shaping,
    wrap,
)
from video.finishing.timeline import CAPTION_MIN, min_seconds, plan

hex_colour = st.tuples(*[st.integers(0, 255)] * 3).map(lambda c: "#{:02x}{:02x}{:02x}".format(*c))


def test_every_script_a_title_may_use_has_a_font_that_draws_it() -> None:
    assert fonts_available(), "no fonts: run `make fonts`"
    assert shaping(), "Pillow without raqm: Arabic would not be joined"
    for text in (
        "Café crème brûlée",
        "كوب قهوة",
        "שלום",
        "陶瓷马克杯",
        "マグカップ",
        "머그컵",
        "🍵☕",
    ):
        found = runs(text)
        assert REPLACEMENT not in "".join(r.text for r in found), text
        assert draw_line(text, 40, (255, 255, 255)).getbbox() is not None, text
    assert runs("🍵")[0].font == EMOJI_FONT
    assert is_rtl("كوب Mug") and not is_rtl("Mug كوب")


def test_a_character_no_font_has_is_a_visible_mark_not_a_box() -> None:
    found = runs("Mug \U000f0000")  # a private-use character
    assert found[-1].text.endswith(REPLACEMENT)


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Co", "Cn", "Cc")),
        min_size=1,
        max_size=60,
    ),
    width=st.integers(120, 1000),
)
def test_wrapped_lines_never_run_past_the_width(text: str, width: int) -> None:
    for line in wrap(text, 40, width):
        assert line_width(line, 40) <= width or len(line) == 1


@given(palette=st.lists(hex_colour, min_size=2, max_size=3))
def test_caption_plates_and_end_cards_read_whatever_the_palette(palette: list[str]) -> None:
    plate = plate_colour(palette)
    for behind in ((255, 255, 255), (0, 0, 0), (128, 128, 128)):
        assert contrast(TEXT, blend(plate, behind, PLATE_ALPHA)) >= 4.5
    top, bottom, text, _ = colours(palette)
    assert contrast(text, top) >= 4.5 and contrast(text, bottom) >= 4.5


words = st.lists(st.sampled_from(["fast", "warm", "hand-made", "steel", "350ml"]), min_size=1)


@given(
    duration=st.integers(3, 10),
    hook=words.map(lambda w: " ".join(w[:7])),
    benefits=st.lists(words.map(lambda w: " ".join(w[:7])), max_size=3),
)
def test_the_timeline_keeps_the_reading_rules(
    duration: int, hook: str, benefits: list[str]
) -> None:
    brief = Brief(hook=hook, benefits=benefits, palette=["#000000", "#ffffff"])
    timeline = plan(duration, brief)
    assert 1.5 - 1e-9 <= duration - timeline.end_card_at <= 2.0 + 1e-9
    first, *rest = timeline.captions
    assert first.kind == "hook" and first.start <= 1.5
    previous_end = 0.0
    for caption in timeline.captions:
        assert caption.end - caption.start >= min_seconds(caption.text) - 1e-6 >= CAPTION_MIN - 1e-6
        assert caption.start >= previous_end - 1e-6 and caption.end <= duration
        previous_end = caption.end
    for caption in rest:  # benefits never run into the end card
        assert caption.end <= timeline.end_card_at + 1e-6
    assert 0 < timeline.detail_until < timeline.end_card_at


def test_captions_off_leaves_the_timing_of_the_shots() -> None:
    brief = Brief(
        hook="Fresh every day", benefits=["Baked at dawn"], palette=["#000000", "#ffffff"]
    )
    assert plan(5, brief, captions=False).captions == ()
    assert plan(5, brief, captions=False).end_card_at == pytest.approx(3.5)
