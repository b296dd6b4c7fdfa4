"""Platform presets: the one table of aspect ratio, length and text-safe area per platform,
read by every service (the gateway validates with it, the video stage lays text out in it).

Figures from /shared/ADS.md (Meta, TikTok, YouTube and Amazon creative guidance; where sources
disagree the stricter figure). Clips are made in the 720p class of each ratio
(`common.media.FRAME_SIZES`); safe areas are shares of the frame, so they hold at any size.
"""

from dataclasses import dataclass
from typing import Any

# What every provider can make today, in whole seconds (the API's duration range).
DURATION_MIN, DURATION_MAX, DURATION_DEFAULT = 3, 10, 5

# The ad options of a job (`options` in the job document) and their values when absent:
# jobs stored before presets existed have none of these keys, so readers use
# `options.get(key, JOB_OPTION_DEFAULTS[key])`.
JOB_OPTION_DEFAULTS: dict[str, Any] = {
    "preset": None,
    "cta": None,
    "price": None,
    "music": "on",
    "captions": "on",
    "finish": True,
}


@dataclass(frozen=True)
class SafeArea:
    """Shares of the frame kept clear of text on each side (0.35 = the bottom 35 %)."""

    top: float
    bottom: float
    left: float
    right: float

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The text-safe rectangle in pixels: left, top, right, bottom (exclusive), always
        inside the frame and never empty."""
        left = min(round(width * self.left), width - 1)
        top = min(round(height * self.top), height - 1)
        right = max(round(width * (1 - self.right)), left + 1)
        bottom = max(round(height * (1 - self.bottom)), top + 1)
        return left, top, right, bottom


@dataclass(frozen=True)
class Preset:
    name: str
    label: str  # what the web client shows
    aspect_ratio: str
    safe: SafeArea
    allowed: tuple[int, int]  # seconds the platform accepts
    best: tuple[int, int]  # seconds that perform best there

    @property
    def default_duration(self) -> int:
        """The length a job of this preset gets when none is asked for: the shortest best
        length, or the nearest one every provider can make."""
        return clamp_duration(self.best[0])


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiktok", "TikTok", "9:16", SafeArea(0.08, 0.35, 0.06, 0.14), (5, 60), (9, 15)),
        Preset(
            "reels", "Instagram Reels", "9:16", SafeArea(0.14, 0.35, 0.06, 0.06), (3, 90), (5, 15)
        ),
        Preset(
            "shorts", "YouTube Shorts", "9:16", SafeArea(0.12, 0.25, 0.06, 0.14), (3, 60), (15, 30)
        ),
        # 1:1 rather than 4:5: every image-to-video model offered makes 1:1 (ADS.md allows both).
        Preset("feed", "Feed post", "1:1", SafeArea(0.06, 0.06, 0.06, 0.06), (5, 15), (5, 15)),
        Preset("youtube", "YouTube", "16:9", SafeArea(0.05, 0.05, 0.05, 0.05), (6, 30), (6, 30)),
        Preset("amazon", "Amazon", "16:9", SafeArea(0.05, 0.05, 0.05, 0.05), (6, 45), (15, 30)),
    )
}

# A job without a preset: the strictest area of every preset of its ratio, so one layout is
# safe on all of them.
RATIO_SAFE_AREAS: dict[str, SafeArea] = {
    ratio: SafeArea(
        max(p.safe.top for p in group),
        max(p.safe.bottom for p in group),
        max(p.safe.left for p in group),
        max(p.safe.right for p in group),
    )
    for ratio in ("9:16", "1:1", "16:9")
    if (group := [p for p in PRESETS.values() if p.aspect_ratio == ratio])
}


def durations(preset: Preset) -> dict[str, int]:
    """The lengths a job of `preset` can ask for: what the platform accepts within what the
    providers make, and its default (what `GET /api/v1/config` lists)."""
    return {
        "min": clamp_duration(preset.allowed[0]),
        "max": clamp_duration(preset.allowed[1]),
        "default": preset.default_duration,
    }


def clamp_duration(seconds: int) -> int:
    return max(DURATION_MIN, min(DURATION_MAX, seconds))


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, not {name!r}") from None


def safe_area(aspect_ratio: str, preset: str | None = None) -> SafeArea:
    """The text-safe area of a job: its preset's, else the strictest of its ratio."""
    if preset:
        return get_preset(preset).safe
    try:
        return RATIO_SAFE_AREAS[aspect_ratio]
    except KeyError:
        raise ValueError(f"no safe area for aspect ratio {aspect_ratio!r}") from None


def duration_note(preset: str, duration: int) -> str | None:
    """What the job says when its length is outside what the preset's platform accepts or
    does best with (never silently): None when it fits."""
    p = get_preset(preset)
    if duration < p.allowed[0]:
        return f"{p.label} accepts {p.allowed[0]}-{p.allowed[1]} s; this clip is {duration} s"
    if not p.best[0] <= duration <= p.best[1]:
        return (
            f"{p.label} ads do best at {p.best[0]}-{p.best[1]} s; "
            f"made {duration} s (clips are {DURATION_MIN}-{DURATION_MAX} s long)"
        )
    return None
