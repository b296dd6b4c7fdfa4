"""The title card: the product's title in white on a dark gradient over the bottom
third of the frame, drawn with Pillow (so any script is shaped right, right-to-left
included) and laid over the clip by ffmpeg."""

import functools
import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
DEFAULT_FONTS = (FONT_DIR / "DejaVuSans-Bold.ttf", FONT_DIR / "DejaVuSans.ttf")

MAX_LINES = 3
# Tried in turn until the title fits in MAX_LINES; past the last it is cut with an ellipsis.
FONT_SCALES = (1.0, 0.85, 0.72)
ELLIPSIS = "…"
BAND_SHARE = 0.36  # of the frame height
GRADIENT_OPACITY = 0.78  # at the band's bottom edge
TEXT_WIDTH_SHARE = 0.86  # of the frame width

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class TitleCard:
    path: Path
    y: int  # the band's top edge in the frame
    lines: tuple[str, ...]


@functools.lru_cache(maxsize=32)
def load_font(size: int, font_path: Path | None = None) -> Font:
    """The configured font, else DejaVu Sans when installed, else Pillow's built-in one."""
    for candidate in (font_path, *DEFAULT_FONTS):
        if candidate is not None and candidate.is_file():
            return ImageFont.truetype(str(candidate), size)
    return ImageFont.load_default(size=size)


@functools.lru_cache(maxsize=8192)
def _glyph(font: Font, char: str) -> bytes:
    """A fingerprint of how the font draws the character."""
    side = 2 * int(getattr(font, "size", 16)) + 8
    mask = Image.new("L", (side, side))
    ImageDraw.Draw(mask).text((4, 4), char, font=font, fill=255)
    return hashlib.blake2b(mask.tobytes(), digest_size=16).digest()


def _invisible(char: str) -> bool:
    """Combining and format marks (accents, joiners, direction marks): drawn with their
    neighbours, never alone."""
    return unicodedata.category(char) in ("Mn", "Me", "Cf")


def drawable(text: str, font: Font) -> str:
    """The words of the text without characters the font has no glyph for (most emoji,
    scripts it does not cover): those would show as empty boxes."""
    missing = _glyph(font, "\U0010fffd")  # a private-use character: no font draws it
    words = (
        "".join(c for c in w if _invisible(c) or _glyph(font, c) != missing) for w in text.split()
    )
    # A word left with marks only (the joiners of an emoji sequence) is no word.
    return " ".join(w for w in words if not all(_invisible(c) for c in w))


def clean(title: str) -> str:
    """One line of text: composed characters, no control characters, single spaces."""
    text = unicodedata.normalize("NFC", title)
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return " ".join(text.split())


def _split_word(word: str, font: Font, max_width: float) -> list[str]:
    """A word too long for a line (or a run of text without spaces), cut into pieces."""
    pieces = []
    while word and font.getlength(word) > max_width:
        cut = 1
        while cut < len(word) and font.getlength(word[: cut + 1]) <= max_width:
            cut += 1
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word] if word else pieces


def wrap(text: str, font: Font, max_width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        *full, current = _split_word(word, font, max_width)
        lines.extend(full)
    if current:
        lines.append(current)
    return lines


def _shorten(line: str, font: Font, max_width: float) -> str:
    while line and font.getlength(line.rstrip() + ELLIPSIS) > max_width:
        line = line[:-1]
    return line.rstrip() + ELLIPSIS


def layout(
    title: str, frame: tuple[int, int], font_path: Path | None = None
) -> tuple[Font, list[str]]:
    """The font and lines of the title: at most MAX_LINES within the text width."""
    width, height = frame
    max_width = width * TEXT_WIDTH_SHARE
    base = round(min(width, height) * 0.066)
    for scale in FONT_SCALES:
        font = load_font(round(base * scale), font_path)
        lines = wrap(drawable(title, font), font, max_width)
        if len(lines) <= MAX_LINES:
            return font, lines
    lines = lines[:MAX_LINES]
    lines[-1] = _shorten(lines[-1], font, max_width)
    return font, lines


def _gradient(size: tuple[int, int]) -> Image.Image:
    """Alpha from clear at the top to GRADIENT_OPACITY at the bottom, easing in."""
    ramp = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    return ramp.point(lambda v: round(GRADIENT_OPACITY * 255 * (v / 255) ** 1.6))


def render_title_card(
    title: str, frame: tuple[int, int], out: Path, font_path: Path | None = None
) -> TitleCard | None:
    """Write the card (an RGBA PNG as wide as the frame) to `out`; None when the title
    has nothing to show."""
    text = clean(title)
    if not text:
        return None
    font, lines = layout(text, frame, font_path)
    if not lines:
        return None
    width, height = frame
    band_height = round(height * BAND_SHARE)
    size = getattr(font, "size", 16)
    line_height = round(size * 1.25)
    bottom = band_height - round(height * 0.06)
    top = max(bottom - line_height * len(lines), 0)

    text_mask = Image.new("L", (width, band_height), 0)
    draw = ImageDraw.Draw(text_mask)
    for i, line in enumerate(lines):
        draw.text((width / 2, top + i * line_height), line, font=font, fill=255, anchor="ma")

    card = Image.new("RGBA", (width, band_height), (0, 0, 0, 0))
    card.putalpha(_gradient((width, band_height)))
    # A soft dark halo keeps white text readable over a bright photo.
    halo = text_mask.filter(ImageFilter.GaussianBlur(max(size / 14, 1.5)))
    card.paste((0, 0, 0, 255), mask=halo.point(lambda v: round(v * 0.7)))
    card.paste((255, 255, 255, 255), mask=text_mask)
    card.save(out, format="PNG")
    return TitleCard(out, height - band_height, tuple(lines))
