"""The creative brief: what the finished ad says and how it is cut, written by the prompt stage
beside the video prompt (in the same provider call), stored on the job as `brief`, reused with
the prompt, and followed by the video stage's finishing step.

It holds words and colours only, never timing: one brief serves every length and ratio a
product is cut to; the video stage times it to the clip it finishes.
"""

import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, Field, field_validator

HOOK_MAX_WORDS = 7
BENEFIT_MAX_WORDS = 7
BENEFITS_MAX = 3
CTA_MAX_CHARS = 40
PRICE_MAX_CHARS = 20
DEFAULT_CTA = "Shop now"

Mood = Literal["upbeat", "calm", "bold"]
ShotKind = Literal["detail", "hero", "end_card"]

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


# Scripts written without spaces between words: a run of their characters counts as one
# word per this many characters (a Chinese or Japanese word is about two characters; Thai,
# Lao, Khmer and Myanmar words are longer), so a 7-word hook is about 14 CJK characters.
_UNSPACED: tuple[tuple[tuple[int, int], int], ...] = (
    ((0x3040, 0x30FF), 2),  # Hiragana, Katakana
    ((0x31F0, 0x31FF), 2),  # Katakana extensions
    ((0x3400, 0x4DBF), 2),  # CJK extension A
    ((0x4E00, 0x9FFF), 2),  # CJK unified ideographs
    ((0xF900, 0xFAFF), 2),  # CJK compatibility ideographs
    ((0xFF66, 0xFF9D), 2),  # half-width Katakana
    ((0x20000, 0x3FFFF), 2),  # CJK extensions B-H
    ((0x0E00, 0x0EFF), 4),  # Thai, Lao
    ((0x1000, 0x109F), 4),  # Myanmar
    ((0x1780, 0x17FF), 4),  # Khmer
)
# Characters that belong to the one before them: never cut off it (combining marks such as
# Arabic vowel signs are category M; ZWJ, variation selectors, skin tones, tag characters).
_JOINERS = {0x200C, 0x200D, 0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400), *range(0xE0020, 0xE0080)}


def _chars_per_word(char: str) -> int:
    """How many characters of an unspaced script make a word; 0 for any other character."""
    point = ord(char)
    for (low, high), size in _UNSPACED:
        if low <= point <= high:
            return size
    return 0


def _attached(char: str) -> bool:
    return ord(char) in _JOINERS or unicodedata.category(char).startswith("M")


def _clusters(token: str) -> list[str]:
    """`token` cut into characters with their marks (approximate grapheme clusters)."""
    clusters: list[str] = []
    for char in token:
        if clusters and _attached(char):
            clusters[-1] += char
        else:
            clusters.append(char)
    return clusters


def _units(token: str) -> list[tuple[int, int]]:
    """Where the words of a space-free `token` end (index into it) and how many words end
    there or before: a run of an unspaced script counts one word per few characters, any
    other run one word, a run of punctuation none."""
    ends: list[tuple[int, int]] = []
    count, index = 0, 0
    clusters = _clusters(token)
    i = 0
    while i < len(clusters):
        size = _chars_per_word(clusters[i][0])
        j = i
        while j < len(clusters) and _chars_per_word(clusters[j][0]) == size:
            j += 1
        run = clusters[i:j]
        if size:
            for k, cluster in enumerate(run):
                index += len(cluster)
                if k % size == 0:
                    count += 1
                if (k + 1) % size == 0 or k == len(run) - 1:
                    ends.append((index, count))
        else:
            index += sum(len(c) for c in run)
            if not all(unicodedata.category(c[0]).startswith("P") for c in run):
                count += 1
            ends.append((index, count))
        i = j
    return ends


def words(text: str) -> list[str]:
    """Whitespace-separated tokens (one token of CJK may hold several words: see
    `word_count`)."""
    return text.split()


def word_count(text: str) -> int:
    """Words as a reader takes them in: whitespace-separated, and for scripts written
    without spaces (CJK, Thai...) a few characters per word, so limits hold in any script."""
    total = 0
    for token in words(text):
        units = _units(token)
        total += units[-1][1] if units else 0
    return total


def clip_words(text: str, limit: int) -> str:
    """The first `limit` words of `text` (as `word_count` counts them), whitespace
    collapsed; a cut inside a CJK run never separates a character from its marks."""
    kept: list[str] = []
    total = 0
    for token in words(text):
        units = _units(token)
        count = units[-1][1] if units else 0
        if total + count <= limit:
            kept.append(token)
            total += count
            continue
        room = limit - total
        cut = max((end for end, so_far in units if so_far <= room), default=0)
        if cut:
            kept.append(token[:cut])
        break
    return " ".join(kept)


class Shot(BaseModel):
    """One shot of the plan, in order. `caption` is what is on screen during it: "hook",
    "benefits" (each benefit in turn) or None."""

    kind: ShotKind
    caption: Literal["hook", "benefits"] | None = None
    # Where a detail shot looks, as shares of the photo (0-1); the centre when absent.
    focus: tuple[float, float] | None = None


DEFAULT_SHOTS: tuple[Shot, ...] = (
    Shot(kind="detail", caption="hook"),
    Shot(kind="hero", caption="benefits"),
    Shot(kind="end_card"),
)


class Brief(BaseModel):
    hook: str = Field(min_length=1, description=f"At most {HOOK_MAX_WORDS} words.")
    benefits: list[str] = Field(
        max_length=BENEFITS_MAX,
        description=(
            f"Up to {BENEFITS_MAX} lines of at most {BENEFIT_MAX_WORDS} words, each a fact from "
            "the title or description (none when they state none)."
        ),
    )
    cta: str = Field(default=DEFAULT_CTA, min_length=1, max_length=CTA_MAX_CHARS)
    price: str | None = Field(default=None, max_length=PRICE_MAX_CHARS)
    palette: list[str] = Field(
        min_length=2, max_length=3, description="2-3 colours of the photo, `#rrggbb`."
    )
    mood: Mood = "upbeat"
    shots: list[Shot] = Field(default_factory=lambda: list(DEFAULT_SHOTS), min_length=1)

    @field_validator("hook")
    @classmethod
    def _short_hook(cls, value: str) -> str:
        if word_count(value) > HOOK_MAX_WORDS:
            raise ValueError(f"the hook has more than {HOOK_MAX_WORDS} words")
        return value.strip()

    @field_validator("benefits")
    @classmethod
    def _short_benefits(cls, value: list[str]) -> list[str]:
        for line in value:
            if not line.strip() or word_count(line) > BENEFIT_MAX_WORDS:
                raise ValueError(f"each benefit has 1-{BENEFIT_MAX_WORDS} words")
        return [line.strip() for line in value]

    @field_validator("palette")
    @classmethod
    def _hex_colours(cls, value: list[str]) -> list[str]:
        for colour in value:
            if not _HEX.match(colour):
                raise ValueError(f"palette colours are #rrggbb, not {colour!r}")
        return [colour.lower() for colour in value]
