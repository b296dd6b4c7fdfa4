"""Variants: `{preset | aspect_ratio, duration}`, at most six, checked against the presets."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import ApiError
from common.presets import DURATION_MAX, DURATION_MIN, PRESETS
from gateway.catalogue.variants import MAX_VARIANTS, ResolvedVariant, parse_variants


def parsed(value: Any) -> list[ResolvedVariant]:
    return parse_variants(json.dumps(value))


def problems(value: Any) -> list[tuple[str, str]]:
    text = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(ApiError) as caught:
        parse_variants(text)
    assert caught.value.status == 422
    assert all(d["row"] is None for d in caught.value.details)
    return [(d["field"], d["message"]) for d in caught.value.details]


def test_presets_fill_ratio_and_length_and_say_when_a_length_does_not_suit() -> None:
    variants = parsed(
        [
            {"preset": "reels"},
            {"preset": "feed", "aspect_ratio": "1:1", "duration": 6},
            {"aspect_ratio": "16:9", "duration": 8},
            {"aspect_ratio": "9:16"},
            {"preset": "shorts", "duration": 10},
        ]
    )
    assert [(v.preset, v.aspect_ratio, v.duration) for v in variants] == [
        ("reels", "9:16", PRESETS["reels"].default_duration),
        ("feed", "1:1", 6),
        (None, "16:9", 8),
        (None, "9:16", 5),
        ("shorts", "9:16", 10),
    ]
    assert variants[1].note is None
    assert variants[4].note is not None and "YouTube Shorts" in variants[4].note
    assert variants[4].public()["notes"] == [variants[4].note]


def test_without_variants_one_default_clip() -> None:
    for empty in (None, "", "  "):
        assert [(v.aspect_ratio, v.duration) for v in parse_variants(empty)] == [("9:16", 5)]


def test_every_problem_is_named() -> None:
    assert problems([{"preset": "reels", "aspect_ratio": "16:9"}]) == [
        ("variants[0]", "the Instagram Reels preset is 9:16, not 16:9")
    ]
    found = problems(
        [
            {"preset": "myspace"},
            {"duration": 5},
            {"aspect_ratio": "4:3"},
            {"aspect_ratio": "1:1", "duration": DURATION_MAX + 1},
            {"aspect_ratio": "1:1", "colour": "red"},
        ]
    )
    assert [field for field, _ in found] == [
        "variants[0]",
        "variants[1]",
        "variants[2].aspect_ratio",
        "variants[3].duration",
        "variants[4].colour",
    ]
    assert "preset must be one of tiktok" in found[0][1]
    assert found[1][1] == "give a preset or an aspect_ratio"


def test_the_list_itself() -> None:
    assert problems("not json") == [("variants", "A JSON list of variants.")]
    assert problems({"preset": "reels"}) == [("variants", "A JSON list of variants.")]
    assert problems([])[0][0] == "variants"
    too_many = [{"aspect_ratio": "1:1", "duration": d} for d in range(3, 3 + MAX_VARIANTS + 1)]
    assert problems(too_many)[0][0] == "variants"
    # The same cut twice, even written differently.
    assert problems([{"preset": "feed"}, {"preset": "feed", "aspect_ratio": "1:1"}]) == [
        ("variants", "variant 1 repeats an earlier one")
    ]


variant = st.fixed_dictionaries(
    {},
    optional={
        "preset": st.sampled_from([*PRESETS, "other"]),
        "aspect_ratio": st.sampled_from(["9:16", "1:1", "16:9", "4:5"]),
        "duration": st.integers(0, 20),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(variant, max_size=8))
def test_any_list_is_either_valid_or_refused_with_its_problems(value: list[dict[str, Any]]) -> None:
    try:
        variants = parsed(value)
    except ApiError as e:
        assert e.status == 422 and e.details
        return
    assert 1 <= len(variants) <= MAX_VARIANTS
    assert len(set(variants)) == len(variants)
    for given_, made in zip(value, variants, strict=True):
        assert DURATION_MIN <= made.duration <= DURATION_MAX
        if "preset" in given_:
            assert made.aspect_ratio == PRESETS[given_["preset"]].aspect_ratio
        else:
            assert made.aspect_ratio == given_["aspect_ratio"]
