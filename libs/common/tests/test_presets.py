"""The preset table: every preset's safe area is a real rectangle inside the frame, and the
lengths it asks for are lengths the providers can make."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.brief import Brief
from common.media import FRAME_SIZES
from common.presets import (
    DURATION_MAX,
    DURATION_MIN,
    PRESETS,
    RATIO_SAFE_AREAS,
    SafeArea,
    duration_note,
    safe_area,
)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_has_a_frame_size_and_a_makeable_length(name: str) -> None:
    preset = PRESETS[name]
    assert preset.aspect_ratio in FRAME_SIZES
    assert DURATION_MIN <= preset.default_duration <= DURATION_MAX
    left, top, right, bottom = preset.safe.box(*FRAME_SIZES[preset.aspect_ratio])
    width, height = FRAME_SIZES[preset.aspect_ratio]
    # Captions need room: at least half of each side stays usable.
    assert right - left >= width * 0.5 and bottom - top >= height * 0.5


def test_a_ratio_without_preset_is_safe_on_every_preset_of_it() -> None:
    for preset in PRESETS.values():
        strict = RATIO_SAFE_AREAS[preset.aspect_ratio]
        assert strict.top >= preset.safe.top and strict.bottom >= preset.safe.bottom
        assert strict.left >= preset.safe.left and strict.right >= preset.safe.right
    assert safe_area("9:16") == SafeArea(0.14, 0.35, 0.06, 0.14)
    assert safe_area("9:16", "shorts") == PRESETS["shorts"].safe


def test_lengths_outside_the_platforms_best_are_said() -> None:
    assert duration_note("amazon", 10) is not None  # Amazon does best at 15-30 s
    assert duration_note("feed", 5) is None
    assert duration_note("tiktok", 3) is not None  # below what TikTok accepts


shares = st.floats(min_value=0, max_value=0.49)


@given(shares, shares, shares, shares, st.integers(1, 4000), st.integers(1, 4000))
def test_safe_box_is_inside_the_frame_and_not_empty(
    top: float, bottom: float, left: float, right: float, width: int, height: int
) -> None:
    x0, y0, x1, y1 = SafeArea(top, bottom, left, right).box(width, height)
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_brief_refuses_long_hooks_and_bad_colours() -> None:
    ok = Brief(
        hook="Coffee that wakes you up",
        benefits=["Fair trade beans"],
        palette=["#112233", "#AABBCC"],
    )
    assert ok.palette == ["#112233", "#aabbcc"] and ok.cta == "Shop now"
    with pytest.raises(ValueError, match="hook"):
        Brief(
            hook="one two three four five six seven eight",
            benefits=[],
            palette=["#000000", "#ffffff"],
        )
    with pytest.raises(ValueError, match="rrggbb"):
        Brief(hook="Hi", benefits=[], palette=["red", "#ffffff"])


def test_brief_word_limits_hold_in_scripts_without_spaces() -> None:
    palette = ["#000000", "#ffffff"]
    assert (
        Brief(hook="手工陶瓷咖啡杯", benefits=["耐热又好看"], palette=palette).hook
        == "手工陶瓷咖啡杯"
    )
    with pytest.raises(ValueError, match="hook"):
        Brief(hook="手工制作的陶瓷咖啡杯耐热又好看", benefits=[], palette=palette)  # 15 characters
    # Emoji and Arabic count as the words they are.
    Brief(hook="كوب قهوة مصنوع يدويًا 🍵", benefits=[], palette=palette)
