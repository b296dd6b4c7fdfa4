"""The creative brief (`common.brief.Brief`) as the prompt stage writes it.

`derive` makes it offline and deterministically: the hook from the title, the benefits
from the sentences and clauses of the description, the palette and the detail focus from
the photo. Only the owner's own words go on screen: nothing is invented (no claims,
prices or awards), and text in any script is kept as typed, only cut to the word limits.

`repair` turns what a model wrote into a valid brief the same way, field by field: what
fits is kept, what does not is shortened or replaced from `derive`; a job never fails over
its brief. `for_job` adds what the owner asked for (their CTA, their price).
"""

import re
import unicodedata
from typing import Any

from common.brief import (
    BENEFIT_MAX_WORDS,
    BENEFITS_MAX,
    CTA_MAX_CHARS,
    DEFAULT_CTA,
    HOOK_MAX_WORDS,
    PRICE_MAX_CHARS,
    Brief,
    Mood,
    Shot,
    clip_words,
    word_count,
)
from prompt.photo_facts import PhotoFacts
from prompt.text import normalise, tidy

MOODS: tuple[Mood, ...] = ("upbeat", "calm", "bold")

# Sentence ends and clause breaks of the scripts a description may use (Latin, Arabic,
# CJK full-width punctuation, Devanagari danda), and line breaks.
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|[\n\r]+|[。！？؟।]+")
# (A comma or colon between digits is part of a number: "3,5 kg", "10:30".)
_CLAUSE = re.compile(
    r"\s*(?:[;،؛、，；：•·|]|(?<!\d)[,:]|[,:](?!\d))\s*|\s+[–—-]\s+",
)
# A cut of a long clause does not end on a word that leaves it hanging.
_DANGLING = {
    "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or",
    "the", "to", "with", "your", "our", "its", "is", "are", "that", "which", "but", "so",
}  # fmt: skip
# An amount of money: the price goes on screen only as the owner's `price` field.
_MONEY = re.compile(
    r"[$€£¥₹₩₽₺₪฿₫]|\b(?:usd|eur|gbp|jpy|cny|rmb|inr|aed|sar|chf)\b|\d\s*(?:dollars?|euros?)\b"
    r"|\b(?:price|prices|priced)\b|\bfree shipping\b|\b\d+\s*%\s*off\b",
    re.IGNORECASE,
)
_LINK = re.compile(r"https?://|www\.|\S+@\S+\.\w+", re.IGNORECASE)

_MOOD_HINTS: tuple[tuple[Mood, tuple[str, ...]], ...] = (
    ("calm", ("calm", "relax", "soothing", "gentle", "cozy", "cosy", "sleep", "spa", "quiet")),
    ("bold", ("bold", "power", "strong", "sport", "fast", "tough", "extreme", "dramatic")),
    ("upbeat", ("fun", "bright", "party", "playful", "happy", "colourful", "colorful")),
)

# "Shop now" in the language the title's main script suggests; English otherwise.
_CTA_BY_SCRIPT = {
    "ARABIC": "تسوّق الآن",
    "HIRAGANA": "今すぐ購入",
    "KATAKANA": "今すぐ購入",
    "HANGUL": "지금 구매하기",
    "CJK": "立即购买",
}


def default_cta(title: str) -> str:
    """A call to action that claims nothing: "Shop now", in the script most of the title's
    letters are written in (Japanese when it has kana)."""
    counts: dict[str, int] = {}
    for char in title:
        if char.isalpha():
            script = unicodedata.name(char, "?").split(" ")[0]
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return DEFAULT_CTA
    main = max(counts, key=lambda k: (counts[k], k))
    if main == "CJK" and (counts.get("HIRAGANA") or counts.get("KATAKANA")):
        main = "HIRAGANA"
    return _CTA_BY_SCRIPT.get(main, DEFAULT_CTA)


def _capitalised(text: str) -> str:
    first = text[:1]
    upper = first.upper()
    # Only where case round-trips (not the Turkish dotless i, not ß -> SS).
    keeps = len(upper) == 1 and upper.lower() == first and first.islower()
    return upper + text[1:] if keeps else text


# Separators and sentence ends trimmed off a phrase's ends ("%", "!", "?", quotes and
# brackets stay: they are part of what it says).
_EDGE_PUNCTUATION = set(".,;:·•|/–—-…、，。；：،؛") | {" "}


def _trimmed(text: str) -> str:
    """A phrase without the separators and spaces around it."""
    return tidy(text).strip("".join(_EDGE_PUNCTUATION)).strip()


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:[.,]\d+)*", text))


def _clip(text: str, limit: int) -> str:
    """`text` cut to `limit` words; a cut phrase drops a trailing word that leaves it hanging."""
    if word_count(text) <= limit:
        return text
    kept = clip_words(text, limit).split(" ")
    while len(kept) > 1 and kept[-1].casefold().strip(",;:") in _DANGLING:
        kept.pop()
    return _trimmed(" ".join(kept))


def hook_from_title(title: str) -> str:
    """The hook: the title's first part (before a separator such as ", " or " - "), at most
    seven words."""
    title = tidy(title)
    first = next((p for p in (_trimmed(p) for p in _CLAUSE.split(title)) if p), "")
    return _clip(first or _trimmed(title), HOOK_MAX_WORDS) or title[:40] or "New"


def clauses(description: str) -> list[str]:
    """The sentences of `description` cut into their clauses, in order, trimmed."""
    found: list[str] = []
    for sentence in _SENTENCE.split(description):
        for part in _CLAUSE.split(sentence or ""):
            phrase = _trimmed(part or "")
            if phrase:
                found.append(phrase)
    return found


def benefits_from(title: str, description: str) -> list[str]:
    """Up to three facts from the description, each at most seven words, in the owner's
    order: clauses that fit, else (to reach two) longer ones cut to size. None repeats the
    title or another; none names a price, a discount or a link."""
    seen = {normalise(title), normalise(hook_from_title(title))}
    candidates: list[tuple[int, str, bool]] = []
    for index, phrase in enumerate(clauses(description)):
        key = normalise(phrase)
        if key in seen or word_count(phrase) == 0 or _MONEY.search(phrase) or _LINK.search(phrase):
            continue
        seen.add(key)
        candidates.append((index, phrase, word_count(phrase) <= BENEFIT_MAX_WORDS))
    chosen = [(i, p) for i, p, fits in candidates if fits][:BENEFITS_MAX]
    for index, phrase, fits in candidates:
        if len(chosen) >= 2:
            break
        cut = _clip(phrase, BENEFIT_MAX_WORDS)
        if not fits and word_count(cut) and normalise(cut) not in seen:
            seen.add(normalise(cut))
            chosen.append((index, cut))
    return [_capitalised(p) for _, p in sorted(chosen)]


def mood_for(title: str, description: str, style: str | None, facts: PhotoFacts) -> Mood:
    """The mood the owner's words ask for, else one from the photo (dark: bold)."""
    text = normalise(f"{style or ''} {title} {description}")
    for mood, hints in _MOOD_HINTS:
        if any(re.search(rf"\b{hint}(?:s|es|ed|ing|ly|y)?\b", text) for hint in hints):
            return mood
    return "bold" if facts.brightness == "dark" else "upbeat"


def shots_for(facts: PhotoFacts, benefits: list[str]) -> list[Shot]:
    """A close detail where the photo's detail is (with the hook), the whole product (with
    the benefits), the end card."""
    return [
        Shot(kind="detail", caption="hook", focus=facts.focus),
        Shot(kind="hero", caption="benefits" if benefits else None),
        Shot(kind="end_card"),
    ]


def derive(title: str, description: str, facts: PhotoFacts, style: str | None = None) -> Brief:
    benefits = benefits_from(title, description)
    return Brief(
        hook=hook_from_title(title),
        benefits=benefits,
        cta=default_cta(title),
        palette=list(facts.palette),
        mood=mood_for(title, description, style, facts),
        shots=shots_for(facts, benefits),
    )


def _text(value: Any) -> str:
    return _trimmed(value) if isinstance(value, str) else ""


# Claims a model likes to add: said on screen only when the owner's text says them too.
_CLAIMS = re.compile(
    r"\b(?:best|#\s*1|no\.?\s*1|number one|award\w*|winning|top[- ]rated|rated|guarantee\w*|"
    r"cheapest|world'?s|bestsell\w*|best-sell\w*|certified|clinically|proven|official|"
    r"only|sale|discount|deal|limited)\b",
    re.IGNORECASE,
)


def invents(line: str, source: str) -> bool:
    """Whether `line` says something the owner's `source` (normalised title and description)
    does not: a price or discount, a link, a number or a claim word not in it, or mostly
    words (in scripts without spaces: characters) that are not in it."""
    if _MONEY.search(line) or _LINK.search(line):
        return True
    if not _numbers(line) <= _numbers(source):
        return True
    if any(normalise(c) not in source for c in _CLAIMS.findall(line)):
        return True
    words = [w for w in re.findall(r"\w+", normalise(line)) if len(w) > 3 or not w.isascii()]
    if not words:
        return False
    letters = [c for w in words for c in w if not c.isascii()]
    if len(letters) * 2 >= sum(len(w) for w in words):
        return sum(c in source for c in letters) < 0.6 * len(letters)
    return sum(w[:5] in source for w in words) < 0.6 * len(words)


def repair(
    raw: Any, *, title: str, description: str, facts: PhotoFacts, style: str | None = None
) -> tuple[Brief, list[str]]:
    """A valid brief from a model's `brief` object, and what had to be fixed (empty when
    nothing): too long is cut, a benefit that is not in the owner's text is dropped, a hook
    that claims what the owner did not is replaced, and anything missing or unusable comes
    from `derive`. The palette and the shot plan always come from the photo."""
    derived = derive(title, description, facts, style)
    if not isinstance(raw, dict):
        return derived, ["brief missing: derived from the title, description and photo"]
    fixed: list[str] = []
    source = normalise(f"{title} {description}")

    hook = _text(raw.get("hook"))
    if hook and word_count(hook) > HOOK_MAX_WORDS:
        hook = _clip(hook, HOOK_MAX_WORDS)
        fixed.append(f"hook cut to {HOOK_MAX_WORDS} words")
    if not hook or word_count(hook) == 0 or invents_claim(hook, source):
        hook = derived.hook
        fixed.append("hook from the title")

    benefits: list[str] = []
    lines = raw.get("benefits")
    for line in lines if isinstance(lines, list) else []:
        text = _text(line)
        if not text or word_count(text) == 0:
            continue
        if invents(text, source):
            fixed.append(f"benefit not in the description dropped: {text[:60]!r}")
            continue
        if word_count(text) > BENEFIT_MAX_WORDS:
            text = _clip(text, BENEFIT_MAX_WORDS)
            fixed.append(f"benefit cut to {BENEFIT_MAX_WORDS} words")
        if normalise(text) not in {normalise(b) for b in benefits}:
            benefits.append(text)
    benefits = benefits[:BENEFITS_MAX]
    if len(benefits) < 2:
        have = {normalise(b) for b in benefits}
        extra = [b for b in derived.benefits if normalise(b) not in have][: 2 - len(benefits)]
        if extra:
            fixed.append("benefits completed from the description")
        benefits += extra

    cta = _text(raw.get("cta"))
    if not cta or len(cta) > CTA_MAX_CHARS or invents_claim(cta, source):
        fixed.append("cta replaced by the default")
        cta = derived.cta

    mood = raw.get("mood")
    if mood not in MOODS:
        fixed.append("mood from the photo")
        mood = derived.mood

    brief = Brief(
        hook=hook,
        benefits=benefits,
        cta=cta,
        palette=derived.palette,
        mood=mood,
        shots=shots_for(facts, benefits),
    )
    return brief, fixed


def invents_claim(line: str, source: str) -> bool:
    """Whether a hook or CTA (creative wording, not facts) adds a price, a link, a number
    or a claim word the owner's text does not hold."""
    if _MONEY.search(line) or _LINK.search(line):
        return True
    if not _numbers(line) <= _numbers(source):
        return True
    return any(normalise(c) not in source for c in _CLAIMS.findall(line))


def for_job(brief: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The stored brief of a job: the provider's (or the reused) brief with the owner's CTA
    when they gave one, and their price (only theirs: a price is never made up)."""
    cta = (options.get("cta") or "").strip()
    price = (options.get("price") or "").strip()
    updated = {
        **brief,
        "cta": cta[:CTA_MAX_CHARS] if cta else brief.get("cta") or DEFAULT_CTA,
        "price": price[:PRICE_MAX_CHARS] or None,
    }
    return Brief.model_validate(updated).model_dump(mode="json")
