"""The camera move of a clip: chosen from the prompt's words, gentle enough that the
product (placed inside every frame's view) stays whole from the first frame to the last."""

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from video.render.geometry import Box


class Move(StrEnum):
    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"


# Phrases that ask for a move. In a prompt naming several, the first one named wins
# ("zoom out from a close detail to reveal…" is a zoom out).
_PHRASES: dict[Move, tuple[str, ...]] = {
    Move.ZOOM_IN: (
        r"zoom(?:s|ed|ing)?[\s-]+in(?:to)?",
        r"push(?:es|ed|ing)?[\s-]+in",
        r"(?:dolly|dollies|dollying|move|moves|moving)[\s-]+(?:in|closer)",
        r"close[\s-]?ups?",
        r"closer?",
    ),
    Move.ZOOM_OUT: (
        r"zoom(?:s|ed|ing)?[\s-]+out",
        r"pull(?:s|ed|ing)?[\s-]+(?:back|out)",
        r"(?:dolly|dollies|dollying)[\s-]+(?:out|back)",
        r"reveal(?:s|ed|ing)?",
        r"widen(?:s|ed|ing)?",
    ),
    Move.PAN_LEFT: (
        r"(?:pan(?:s|ned|ning)?|truck(?:s|ing)?|track(?:s|ing)?|slid(?:e|es|ing))"
        r"(?:[\s-]+to[\s-]+the)?[\s-]+left(?:wards?)?",
        r"right[\s-]+to[\s-]+left",
    ),
    Move.PAN_RIGHT: (
        r"(?:pan(?:s|ned|ning)?|truck(?:s|ing)?|track(?:s|ing)?|slid(?:e|es|ing))"
        r"(?:[\s-]+to[\s-]+the)?[\s-]+right(?:wards?)?",
        r"left[\s-]+to[\s-]+right",
    ),
}
_PATTERNS = [
    (move, re.compile(rf"\b(?:{'|'.join(phrases)})\b", re.IGNORECASE))
    for move, phrases in _PHRASES.items()
]
# Without a named move, the prompt's hash picks one of these (stable across runs).
_FALLBACK = (Move.ZOOM_IN, Move.ZOOM_OUT, Move.PAN_LEFT, Move.PAN_RIGHT)


def choose_move(prompt: str) -> Move:
    """The move the prompt names first; else one picked by a hash of the prompt."""
    found = [(m.start(), move) for move, pattern in _PATTERNS if (m := pattern.search(prompt))]
    if found:
        return min(found, key=lambda hit: hit[0])[1]
    normalised = " ".join(prompt.casefold().split())
    digest = hashlib.sha256(normalised.encode()).digest()
    return _FALLBACK[digest[0] % len(_FALLBACK)]


@dataclass(frozen=True)
class View:
    """What the camera sees: `zoom` times closer than the whole canvas, centred at
    (cx, cy) in canvas fractions."""

    zoom: float
    cx: float = 0.5
    cy: float = 0.5

    @property
    def box(self) -> Box:
        """The seen part of the canvas, in canvas fractions."""
        w = h = 1 / self.zoom
        return Box(self.cx - w / 2, self.cy - h / 2, w, h)


def ease(t: float) -> float:
    """Smoothstep: the move starts and ends at rest, without a jolt."""
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


ZOOM = 1.12  # the closest view of a zoom: 12 % nearer
PAN_ZOOM = 1.10  # a pan looks through a slightly closer view, so it has room to travel
PAN_SHIFT = 0.035  # how far the pan's view centre moves each way, in canvas widths
# The product fills this share of the area every view shows, leaving a little air.
PRODUCT_MARGIN = 0.94


@dataclass(frozen=True)
class Motion:
    move: Move
    start: View
    end: View

    def at(self, t: float) -> View:
        """The view at t (0 = first frame, 1 = last), eased."""
        e = ease(t)
        return View(
            self.start.zoom + (self.end.zoom - self.start.zoom) * e,
            self.start.cx + (self.end.cx - self.start.cx) * e,
            self.start.cy + (self.end.cy - self.start.cy) * e,
        )

    def product_area(self) -> Box:
        """Where the product goes (canvas fractions): inside every view of the move.
        Each edge of the view only moves one way, from its start to its end position,
        so what the first and the last frame both see, every frame sees."""
        return self.start.box.intersection(self.end.box).shrunk(PRODUCT_MARGIN)


def motion_for(move: Move) -> Motion:
    if move is Move.ZOOM_IN:
        return Motion(move, View(1.0), View(ZOOM))
    if move is Move.ZOOM_OUT:
        return Motion(move, View(ZOOM), View(1.0))
    # Panning left turns the camera left: the view slides towards the canvas's left side.
    direction = -1 if move is Move.PAN_LEFT else 1
    return Motion(
        move,
        View(PAN_ZOOM, 0.5 - direction * PAN_SHIFT),
        View(PAN_ZOOM, 0.5 + direction * PAN_SHIFT),
    )


HERO_ZOOM = 1.07  # the hero shot moves gently: the product stays whole in every frame
HERO_PAN_ZOOM, HERO_PAN_SHIFT = 1.05, 0.02
DETAIL_ZOOM = (1.75, 1.95)  # the detail shot pushes in on a part of the product


def hero_motion(move: Move) -> Motion:
    """The prompt's move, gentle enough for a product that fills the frame."""
    if move is Move.ZOOM_IN:
        return Motion(move, View(1.0), View(HERO_ZOOM))
    if move is Move.ZOOM_OUT:
        return Motion(move, View(HERO_ZOOM), View(1.0))
    direction = -1 if move is Move.PAN_LEFT else 1
    return Motion(
        move,
        View(HERO_PAN_ZOOM, 0.5 - direction * HERO_PAN_SHIFT),
        View(HERO_PAN_ZOOM, 0.5 + direction * HERO_PAN_SHIFT),
    )


def detail_motion(focus: tuple[float, float]) -> Motion:
    """A slow push in on `focus` (canvas fractions), every view inside the canvas."""

    def view(zoom: float) -> View:
        half = 1 / (2 * zoom)
        return View(
            zoom,
            min(max(focus[0], half), 1 - half),
            min(max(focus[1], half), 1 - half),
        )

    return Motion(Move.ZOOM_IN, view(DETAIL_ZOOM[0]), view(DETAIL_ZOOM[1]))
