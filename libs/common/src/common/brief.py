"""The creative brief: what the finished ad says and how it is cut, written by the prompt stage
beside the video prompt (in the same provider call), stored on the job as `brief`, reused with
the prompt, and followed by the video stage's finishing step.

It holds words and colours only, never timing: one brief serves every length and ratio a
product is cut to; the video stage times it to the clip it finishes.
"""

import re
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


def words(text: str) -> list[str]:
    return text.split()


def clip_words(text: str, limit: int) -> str:
    """The first `limit` words of `text`, whitespace collapsed."""
    return " ".join(words(text)[:limit])


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
        if len(words(value)) > HOOK_MAX_WORDS:
            raise ValueError(f"the hook has more than {HOOK_MAX_WORDS} words")
        return value.strip()

    @field_validator("benefits")
    @classmethod
    def _short_benefits(cls, value: list[str]) -> list[str]:
        for line in value:
            if not line.strip() or len(words(line)) > BENEFIT_MAX_WORDS:
                raise ValueError(f"each benefit has 1-{BENEFIT_MAX_WORDS} words")
        return [line.strip() for line in value]

    @field_validator("palette")
    @classmethod
    def _hex_colours(cls, value: list[str]) -> list[str]:
        for colour in value:
            if not _HEX.match(colour):
                raise ValueError(f"palette colours are #rrggbb, not {colour!r}")
        return [colour.lower() for colour in value]
