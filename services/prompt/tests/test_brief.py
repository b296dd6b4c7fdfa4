"""The creative brief as the prompt stage writes it: derived offline from the owner's own
words and the photo, repaired when a model's does not fit, in any script."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.brief import BENEFIT_MAX_WORDS, HOOK_MAX_WORDS, Brief, clip_words, word_count
from prompt import brief as briefs
from prompt.photo_facts import PhotoFacts, describe
from prompt.text import normalise
from services.prompt.tests.images import photo

NAVY_MUG = describe(photo((600, 900), (250, 250, 250), product=(20, 30, 75)))
MUG = "Hand-thrown mug with a speckled glaze, holds 350 ml. Dishwasher safe."


def test_the_brief_is_the_owners_words_cut_to_size() -> None:
    brief = briefs.derive("Stoneware Mug", MUG, NAVY_MUG)
    assert brief.hook == "Stoneware Mug"
    assert brief.benefits == [
        "Hand-thrown mug with a speckled glaze",
        "Holds 350 ml",
        "Dishwasher safe",
    ]
    assert brief.cta == "Shop now" and brief.price is None
    # The photo's own colours: the navy product first, then the white backdrop.
    assert brief.palette == list(NAVY_MUG.palette) and len(brief.palette) == 2
    assert [s.kind for s in brief.shots] == ["detail", "hero", "end_card"]
    assert brief.shots[0].caption == "hook" and brief.shots[1].caption == "benefits"
    assert brief.shots[0].focus == NAVY_MUG.focus
    assert briefs.derive("Stoneware Mug", MUG, NAVY_MUG) == brief  # deterministic


def test_numbers_stay_whole_and_the_mood_follows_the_words() -> None:
    brief = briefs.derive("Scale", "Weighs 3,5 kg, timer up to 10:30; spacious tray.", NAVY_MUG)
    assert brief.benefits == ["Weighs 3,5 kg", "Timer up to 10:30", "Spacious tray"]
    assert brief.mood == "upbeat"  # "spacious" is not "spa"
    assert briefs.derive("Lamp", "A soothing glow for the bedroom.", NAVY_MUG).mood == "calm"
    dark = describe(photo((300, 300), (12, 12, 14)))
    assert briefs.derive("Lamp", "A lamp.", dark).mood == "bold"


def test_a_long_title_gives_a_short_hook() -> None:
    title = "Handmade Stoneware Coffee Mug 350ml, Speckled Glaze, Dishwasher Safe"
    assert briefs.hook_from_title(title) == "Handmade Stoneware Coffee Mug 350ml"
    long = "The very large and extremely comfortable reading chair for every single room"
    hook = briefs.hook_from_title(long)
    assert word_count(hook) <= HOOK_MAX_WORDS and long.startswith(hook)
    assert not hook.endswith(" for")  # a cut does not leave a word hanging


@pytest.mark.parametrize(
    "description",
    [
        "Lamp",
        "A lamp.",
        "   ",
        "…",
        "Lamp. Lamp!",
        "Only $19.99 today! www.example.com",
        "20% off, free shipping",
    ],
)
def test_descriptions_without_facts_give_no_invented_benefits(description: str) -> None:
    brief = briefs.derive("Lamp", description, NAVY_MUG)
    source = normalise(f"Lamp {description}")
    for line in brief.benefits:
        assert normalise(line) in source, line
    assert brief.price is None
    # Prices and discounts the owner mentions stay off the benefits: the price is theirs to set.
    for line in brief.benefits:
        assert "$" not in line and "%" not in line and "www" not in line


def test_no_facts_no_benefits() -> None:
    brief = briefs.derive("Lamp", "Lamp.", NAVY_MUG)
    assert brief.benefits == [] and brief.shots[1].caption is None


def test_any_script_is_kept_as_written() -> None:
    zh = briefs.derive("陶瓷茶杯", "手工制作的陶瓷咖啡杯，耐热又好看。适合办公室使用！", NAVY_MUG)
    assert zh.hook == "陶瓷茶杯" and zh.cta == "立即购买"
    assert zh.benefits == ["手工制作的陶瓷咖啡杯", "耐热又好看", "适合办公室使用"]
    ar = briefs.derive("كوب قهوة", "كوب قهوة مصنوع يدويًا من الخزف، آمن في غسالة الصحون.", NAVY_MUG)
    assert ar.hook == "كوب قهوة" and ar.cta == "تسوّق الآن"
    assert ar.benefits == ["كوب قهوة مصنوع يدويًا من الخزف", "آمن في غسالة الصحون"]
    mixed = briefs.derive("Tasse «Été» 🍵 — 茶杯", "Fait main 🇫🇷, 👩‍👩‍👧 approved.", NAVY_MUG)
    assert mixed.hook == "Tasse «Été» 🍵" and mixed.cta == "Shop now"
    assert mixed.benefits == ["Fait main 🇫🇷", "👩‍👩‍👧 approved"]


def test_cjk_is_counted_by_characters() -> None:
    assert word_count("Stoneware mug") == 2
    assert word_count("陶瓷茶杯") == 2  # two characters a word
    assert word_count("350ml杯子") == 2
    assert word_count("— «»") == 0  # punctuation alone is no word
    assert (
        clip_words("手工制作的陶瓷咖啡杯耐热又好看适合办公室", 7) == "手工制作的陶瓷咖啡杯耐热又好"
    )
    # A cut never separates a letter from its mark (Thai vowel signs here).
    assert clip_words("สวัสดีครับยินดีต้อนรับ", 1) == "สวัสดี"


facts_photo = st.builds(
    PhotoFacts,
    width=st.just(600),
    height=st.just(900),
    orientation=st.just("portrait"),
    colours=st.just(("red",)),
    brightness=st.sampled_from(["bright", "dark", "medium"]),
    background=st.none(),
    palette=st.just(("#ff0000", "#00ff00")),
    focus=st.just((0.5, 0.5)),
)
# Letters of many scripts, digits, punctuation, symbols and emoji, spaces and line breaks.
text = st.text(
    st.characters(
        codec="utf-8",
        categories=("L", "M", "N", "P", "S", "Zs"),
        include_characters="\n,.。，、;!?؟ ‍️🇫🇷",
    ),
    max_size=200,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=text.filter(lambda t: t.strip()), description=text, facts=facts_photo)
def test_any_text_gives_a_valid_brief_of_the_owners_words(
    title: str, description: str, facts: PhotoFacts
) -> None:
    brief = briefs.derive(title, description, facts)
    Brief.model_validate(brief.model_dump(mode="json"))  # valid as stored
    assert word_count(brief.hook) <= HOOK_MAX_WORDS
    assert 0 <= len(brief.benefits) <= 3
    source = normalise(f"{title} {description}")
    assert normalise(brief.hook) in source
    for line in brief.benefits:
        assert 1 <= word_count(line) <= BENEFIT_MAX_WORDS
        assert normalise(line) in source
    assert brief.price is None


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80), st.integers(0, 9))
def test_clipping_keeps_the_text_and_the_limit(value: str, limit: int) -> None:
    clipped = clip_words(value, limit)
    assert word_count(clipped) <= limit
    assert clipped == " ".join(value.split()) or " ".join(value.split()).startswith(clipped)


GOOD = {
    "hook": "Your new favourite morning mug",
    "benefits": ["Hand-thrown with a speckled glaze", "Holds 350 ml"],
    "cta": "Order yours",
    "mood": "calm",
}


def test_a_fitting_model_brief_is_kept() -> None:
    brief, fixed = briefs.repair(GOOD, title="Stoneware Mug", description=MUG, facts=NAVY_MUG)
    assert fixed == []
    assert (brief.hook, brief.benefits, brief.cta, brief.mood) == (
        GOOD["hook"],
        GOOD["benefits"],
        "Order yours",
        "calm",
    )
    assert brief.palette == list(NAVY_MUG.palette)  # the photo's, whatever the model says


def test_a_model_brief_that_invents_or_overflows_is_repaired() -> None:
    raw = {
        "hook": "The best mug in the world, award winning and loved",
        "benefits": [
            "Award-winning design",
            "Keeps coffee hot for 12 hours",
            "Only $19 today",
            "Hand-thrown mug with a speckled glaze that every potter admires",
        ],
        "cta": "Buy now and save 50%",
        "mood": "cozy",
    }
    brief, fixed = briefs.repair(raw, title="Stoneware Mug", description=MUG, facts=NAVY_MUG)
    assert brief.hook == "Stoneware Mug"  # a claim the owner did not make: the title instead
    # Mostly not the owner's words ("that every potter admires"): dropped like the rest, and
    # the benefits come from the description instead.
    assert brief.benefits == ["Hand-thrown mug with a speckled glaze", "Holds 350 ml"]
    assert brief.cta == "Shop now" and brief.mood == "upbeat"
    assert any("Award-winning" in f for f in fixed) and "mood from the photo" in fixed


@pytest.mark.parametrize("raw", [None, "a brief", [], {"hook": 3, "benefits": "x"}])
def test_a_missing_or_malformed_model_brief_is_derived(raw: object) -> None:
    brief, fixed = briefs.repair(raw, title="Stoneware Mug", description=MUG, facts=NAVY_MUG)
    assert fixed
    derived = briefs.derive("Stoneware Mug", MUG, NAVY_MUG)
    assert brief.hook == derived.hook and brief.benefits[:2] == derived.benefits[:2]


def test_the_owners_cta_and_price_go_on_the_brief() -> None:
    stored = briefs.derive("Stoneware Mug", MUG, NAVY_MUG).model_dump(mode="json")
    job = briefs.for_job(stored, {"cta": "Visit our Etsy shop", "price": "€24"})
    assert job["cta"] == "Visit our Etsy shop" and job["price"] == "€24"
    assert job["hook"] == stored["hook"]
    assert briefs.for_job(stored, {})["cta"] == "Shop now"  # a job from before presets
    assert briefs.for_job(stored, {"cta": None, "price": None})["price"] is None


model_brief = st.fixed_dictionaries(
    {},
    optional={
        "hook": text | st.integers(),
        "benefits": st.lists(text | st.none(), max_size=6) | text,
        "cta": text,
        "mood": st.sampled_from(["upbeat", "calm", "bold", "sad"]) | text,
    },
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=model_brief | st.none() | text, description=text)
def test_whatever_a_model_writes_the_brief_is_valid_and_claims_no_price(
    raw: object, description: str
) -> None:
    brief, _ = briefs.repair(raw, title="Stoneware Mug", description=description, facts=NAVY_MUG)
    Brief.model_validate(brief.model_dump(mode="json"))
    assert word_count(brief.hook) <= HOOK_MAX_WORDS
    assert all(1 <= word_count(line) <= BENEFIT_MAX_WORDS for line in brief.benefits)
    assert all("$" not in line and "€" not in line for line in brief.benefits)
    assert brief.price is None and brief.palette == list(NAVY_MUG.palette)
