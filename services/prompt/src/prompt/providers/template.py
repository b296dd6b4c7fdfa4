"""The offline prompt writer: a marketing video prompt from the title, the
description and what the photo shows. Deterministic, free, needs no key.

It always names one camera move the local video renderer understands, so the
clip's motion follows the prompt. The brief beside it is derived the same way
(`prompt.brief.derive`).
"""

import hashlib

from prompt import brief
from prompt.photo_facts import PhotoFacts
from prompt.providers.base import PromptRequest, PromptResult
from prompt.text import normalise, tidy

CAMERA_MOVES = ("slow zoom in", "slow zoom out", "pan left", "pan right")

# Words in the description or style that ask for a move, checked in this order.
_MOVE_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pan left", ("pan left",)),
    ("pan right", ("pan right",)),
    ("slow zoom out", ("zoom out", "pull back", "pull-back", "reveal")),
    ("slow zoom in", ("zoom in", "push in", "push-in", "close-up", "close up", "detail")),
)

_OPENINGS = {
    "slow zoom in": "Slow zoom in on {title}",
    "slow zoom out": "Slow zoom out from a close detail to reveal {title}",
    "pan left": "Gentle pan left across {title}",
    "pan right": "Gentle pan right across {title}",
}

_FRAMING = {"9:16": "vertical 9:16", "1:1": "square 1:1", "16:9": "widescreen 16:9"}

_LIGHT = {
    "bright": "bright, airy mood",
    "dark": "moody low-key light with crisp highlights",
    "medium": "warm, natural tones",
}

MAX_DESCRIPTION = 400


def camera_move(title: str, description: str, style: str | None) -> str:
    """The move the description asks for, else one picked from a hash of the text."""
    wanted = normalise(f"{description} {style or ''}")
    for move, hints in _MOVE_HINTS:
        if any(hint in wanted for hint in hints):
            return move
    digest = hashlib.sha256(f"{normalise(title)}\n{normalise(description)}".encode()).digest()
    return CAMERA_MOVES[digest[0] % len(CAMERA_MOVES)]


def _listing(words: tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def _sentence(text: str) -> str:
    text = tidy(text)
    if len(text) > MAX_DESCRIPTION:
        text = text[:MAX_DESCRIPTION].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    elif text and text[-1] not in ".!?…":
        text += "."
    return text


def _subject(facts: PhotoFacts) -> str:
    shot = f"{_listing(facts.colours)} {facts.orientation} product shot"
    if facts.background:
        shot += f" on a {facts.background} background"
    return f"{_article(shot)} {shot}"


def write_prompt(request: PromptRequest) -> tuple[str, str]:
    """The prompt text and the camera move it names."""
    options = request.options
    title = tidy(request.title).rstrip(" .,;:") or "the product"
    move = camera_move(request.title, request.description, options.style)
    parts = [
        f"{_OPENINGS[move].format(title=title)}, {_subject(request.facts)}.",
        _sentence(request.description),
        f"Soft studio light, {_LIGHT[request.facts.brightness]}, shallow depth of field "
        "and gentle natural reflections.",
        "Keep the product exactly as photographed: same shape, colours, materials, label "
        "and proportions; no added text, logos, people or hands.",
        f"Visual style: {_sentence(options.style)}" if options.style else "",
        f"{options.duration}-second single continuous shot, "
        f"{_FRAMING.get(options.aspect_ratio, options.aspect_ratio)} framing, "
        f"smooth and steady {move}, no cuts.",
    ]
    return " ".join(p for p in parts if p), move


class TemplateProvider:
    name = "template"

    def __init__(self, version: str) -> None:
        self.version = version
        self.model = f"template-{version}"

    async def write(self, request: PromptRequest) -> PromptResult:
        text, move = write_prompt(request)
        return PromptResult(
            text=text,
            model=self.model,
            cost=0.0,
            details={"camera_move": move, "photo": request.facts.as_dict()},
            brief=brief.derive(
                request.title, request.description, request.facts, request.options.style
            ).model_dump(mode="json"),
        )
