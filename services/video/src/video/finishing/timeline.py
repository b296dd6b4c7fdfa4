"""When each caption, shot and the end card are on screen: one plan for the renderer's
shots and the finishing step's overlays (ADS.md, "Text on screen" and "End card").

- The hook appears at HOOK_AT (well within the first 1.5 s), from the first frame in a clip
  where that lets it end before the end card;
- each caption stays at least 0.3 s per word + 0.5 s and never less than 1.2 s; benefits
  follow the hook while they fit before the end card, and the spare time is shared out;
- the end card takes the last 1.5-2 s. In a clip too short for the hook and the card, the
  hook stays on over the top of the card.
"""

from dataclasses import dataclass

from common.brief import Brief, words

HOOK_AT = 0.15
SECONDS_PER_WORD = 0.3
CAPTION_PAD = 0.5
CAPTION_MIN = 1.2
END_CARD_MIN, END_CARD_MAX = 1.5, 2.0
END_CARD_SHARE = 0.3
FADE = 0.15  # captions fade in and out this fast


def min_seconds(text: str) -> float:
    return max(CAPTION_MIN, SECONDS_PER_WORD * len(words(text)) + CAPTION_PAD)


@dataclass(frozen=True)
class Caption:
    kind: str  # "hook" or "benefit"
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Timeline:
    duration: float
    captions: tuple[Caption, ...]
    end_card_at: float  # the end card covers [end_card_at, duration]
    detail_until: float  # the renderer's detail shot; the hero shot follows

    @property
    def hero(self) -> tuple[float, float]:
        return self.detail_until, self.end_card_at


def plan(duration: float, brief: Brief, *, captions: bool = True) -> Timeline:
    end_len = min(max(duration * END_CARD_SHARE, END_CARD_MIN), END_CARD_MAX)
    end_at = max(duration - end_len, 0.0)
    texts = [("hook", brief.hook)] if brief.hook.strip() else []
    texts += [("benefit", b) for b in brief.benefits]
    chosen: list[tuple[str, str, float]] = []
    room = end_at - HOOK_AT
    for kind, text in texts:  # the hook always; each benefit that still fits
        need = min_seconds(text)
        if chosen and sum(n for _, _, n in chosen) + need > room:
            continue
        chosen.append((kind, text, need))
    timed: list[Caption] = []
    if chosen:
        spare = max(room - sum(n for _, _, n in chosen), 0.0) / len(chosen)
        # The hook starts at HOOK_AT, or earlier (from the first frame) when that lets it
        # end before the card.
        t = min(HOOK_AT, max(end_at - chosen[0][2], 0.0)) if len(chosen) == 1 else HOOK_AT
        for kind, text, need in chosen:
            end = min(t + need + spare, duration)
            timed.append(Caption(kind, text, round(t, 3), round(end, 3)))
            t = end
    # The detail shot holds the hook; without captions, the first third of the content.
    first = timed[0].end if timed else end_at / 3
    detail = min(max(first, 0.8), max(end_at - 0.8, 0.8)) if end_at > 1.6 else end_at / 2
    return Timeline(
        duration=duration,
        captions=tuple(timed) if captions else (),
        end_card_at=round(end_at, 3),
        detail_until=round(detail, 3),
    )
