"""Text drawn with Pillow for the finished ad (captions, end card): a chain of fonts so any
script the title may use has its glyphs (Latin with diacritics, Arabic shaped right to left
through raqm, Hebrew, Devanagari, Thai, CJK, colour emoji), wrapped to a width, and a
contrast check (WCAG) for what is drawn behind it.

Fonts come from Debian's Noto packages (`make fonts`, the image's Dockerfile); DejaVu and
Pillow's own font stand in where they are missing. A character no font in the chain draws
becomes U+FFFD (a visible "?" mark), never an empty box.
"""

import functools
import hashlib
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, features

log = logging.getLogger(__name__)

NOTO = Path("/usr/share/fonts/truetype/noto")
NOTO_CJK = Path("/usr/share/fonts/opentype/noto")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
# Tried in this order for every character; the first that draws it wins.
FONT_CHAIN: tuple[Path, ...] = (
    NOTO / "NotoSans-Bold.ttf",
    NOTO / "NotoSansArabic-Bold.ttf",
    NOTO / "NotoSansHebrew-Bold.ttf",
    NOTO / "NotoSansDevanagari-Bold.ttf",
    NOTO / "NotoSansThai-Bold.ttf",
    NOTO_CJK / "NotoSansCJK-Bold.ttc",
    DEJAVU / "DejaVuSans-Bold.ttf",
    DEJAVU / "DejaVuSans.ttf",
)
EMOJI_FONT = NOTO / "NotoColorEmoji.ttf"
EMOJI_SIZE = 109  # the only size of Noto Color Emoji's bitmaps
REPLACEMENT = "\ufffd"
RTL_BIDI = ("R", "AL")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[int, int, int]


def shaping() -> bool:
    """Whether Pillow lays text out with raqm (Arabic joined, right to left)."""
    return bool(features.check("raqm"))


@functools.lru_cache(maxsize=64)
def _font(path: Path | None, size: int) -> Font:
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(path), size)


@functools.lru_cache(maxsize=1)
def fonts_available() -> tuple[Path, ...]:
    found = tuple(p for p in FONT_CHAIN if p.is_file())
    if not found:
        log.warning("no TrueType fonts found (install fonts-noto-core); using Pillow's own")
    return found


@functools.lru_cache(maxsize=16384)
def _draws(path: Path | None, char: str) -> bool:
    """Whether the font has a glyph for the character (its drawing differs from that of a
    private-use character no font has)."""
    font = _font(path, 24)

    def fingerprint(c: str) -> bytes:
        mask = Image.new("L", (64, 64))
        ImageDraw.Draw(mask).text((8, 8), c, font=font, fill=255)
        return hashlib.blake2b(mask.tobytes(), digest_size=16).digest()

    return fingerprint(char) != fingerprint("\U0010fffd")


@functools.lru_cache(maxsize=1)
def _emoji_ok() -> bool:
    return EMOJI_FONT.is_file()


def _emoji_draws(char: str) -> bool:
    if not _emoji_ok():
        return False
    try:
        return _draws_emoji(char)
    except OSError:
        return False


@functools.lru_cache(maxsize=4096)
def _draws_emoji(char: str) -> bool:
    font = ImageFont.truetype(str(EMOJI_FONT), EMOJI_SIZE)
    return font.getbbox(char)[2] > 0 and _emoji_image(char, font) is not None


def _emoji_image(text: str, font: Font | None = None) -> Image.Image | None:
    font = font or ImageFont.truetype(str(EMOJI_FONT), EMOJI_SIZE)
    box = font.getbbox(text)
    if box[2] <= box[0]:
        return None
    image = Image.new("RGBA", (int(box[2]) + 4, EMOJI_SIZE + 30), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((0, 0), text, font=font, embedded_color=True)
    return image if image.getbbox() else None


def _silent(char: str) -> bool:
    """Spaces, joiners and combining marks: drawn with their neighbours."""
    return char.isspace() or unicodedata.category(char) in ("Mn", "Me", "Cf")


def _is_emoji(char: str) -> bool:
    return ord(char) >= 0x2190 and unicodedata.category(char) == "So"


@dataclass(frozen=True)
class Run:
    font: Path | None  # None: Pillow's own font; EMOJI_FONT: colour emoji
    text: str


def clean(text: str) -> str:
    """One line: composed characters, no control characters, single spaces."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return " ".join(text.split())


def font_for(char: str) -> Path | None:
    """The first font of the chain that draws the character; None when none does."""
    if _is_emoji(char) and _emoji_draws(char):
        return EMOJI_FONT
    chain = fonts_available()
    for path in chain:
        if _draws(path, char):
            return path
    if not chain and _draws(None, char):
        return None
    if _emoji_draws(char):
        return EMOJI_FONT
    raise LookupError(char)


def runs(text: str) -> list[Run]:
    """The text cut into runs of one font each; characters no font draws become U+FFFD."""
    out: list[Run] = []
    default = fonts_available()[0] if fonts_available() else None
    for char in clean(text):
        if _silent(char) and out:
            out[-1] = Run(out[-1].font, out[-1].text + char)
            continue
        try:
            font = font_for(char)
        except LookupError:
            log.info("no font draws %r (U+%04X); shown as U+FFFD", char, ord(char))
            char, font = REPLACEMENT, default
        if out and out[-1].font == font:
            out[-1] = Run(font, out[-1].text + char)
        else:
            out.append(Run(font, char))
    return out


def is_rtl(text: str) -> bool:
    """Whether the first strong character reads right to left."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in RTL_BIDI:
            return True
        if kind == "L":
            return False
    return False


def _run_width(run: Run, size: int) -> float:
    if run.font == EMOJI_FONT:
        image = _emoji_image(run.text)
        return 0 if image is None else image.width * size / EMOJI_SIZE
    return _font(run.font, size).getlength(run.text)


def line_width(text: str, size: int) -> float:
    return sum(_run_width(r, size) for r in runs(text))


def wrap(text: str, size: int, max_width: float) -> list[str]:
    """Words onto lines no wider than max_width; a word longer than a line (or a run of
    text without spaces, as CJK is written) is cut between characters."""
    lines: list[str] = []
    current = ""
    for word in clean(text).split(" "):
        candidate = f"{current} {word}" if current else word
        if line_width(candidate, size) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        for char in word:
            if current and line_width(current + char, size) > max_width:
                lines.append(current)
                current = ""
            current += char
    if current:
        lines.append(current)
    return lines


def draw_line(text: str, size: int, fill: RGB) -> Image.Image:
    """One line as an RGBA image `size * 1.4` high, the baseline at the same height for
    every font; runs laid right to left when the line reads that way."""
    parts = runs(text)
    if is_rtl(text):
        parts = parts[::-1]
    height = round(size * 1.45)
    baseline = round(size * 1.08)
    width = max(round(sum(_run_width(r, size) for r in parts)) + 2, 1)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    x = 0.0
    for run in parts:
        if run.font == EMOJI_FONT:
            emoji = _emoji_image(run.text)
            if emoji is not None:
                scaled = emoji.resize(
                    (
                        max(round(emoji.width * size / EMOJI_SIZE), 1),
                        max(round(emoji.height * size / EMOJI_SIZE), 1),
                    ),
                    Image.Resampling.LANCZOS,
                )
                image.alpha_composite(scaled, (round(x), max(baseline - round(size * 0.92), 0)))
                x += emoji.width * size / EMOJI_SIZE
            continue
        font = _font(run.font, size)
        direction = "rtl" if is_rtl(run.text) and shaping() else None
        draw.text(
            (x, baseline), run.text, font=font, fill=(*fill, 255), anchor="ls", direction=direction
        )
        x += (
            font.getlength(run.text, direction=direction) if direction else font.getlength(run.text)
        )
    # Trimmed to the ink left and right (spaces, an emoji's padding), so lines centre on
    # what shows; the full height is kept, so every line's baseline is at the same place.
    ink = image.getchannel("A").getbbox()
    return image.crop((ink[0], 0, ink[2], height)) if ink else image


def luminance(colour: RGB) -> float:
    """WCAG relative luminance."""

    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio, 1 to 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def blend(top: RGB, bottom: RGB, alpha: float) -> RGB:
    r, g, b = (round(t * alpha + u * (1 - alpha)) for t, u in zip(top, bottom, strict=True))
    return r, g, b


def hex_rgb(value: str) -> RGB:
    value = value.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def darken_for(text: RGB, plate: RGB, alpha: float, minimum: float = 4.5) -> RGB:
    """The plate colour, darkened until text on it keeps `minimum` contrast whatever is
    behind the plate (a white or a black frame shows through its transparency)."""
    colour = plate
    for _ in range(64):
        worst = min(
            contrast(text, blend(colour, behind, alpha)) for behind in ((255,) * 3, (0,) * 3)
        )
        if worst >= minimum:
            return colour
        r, g, b = colour
        colour = (int(r * 0.9), int(g * 0.9), int(b * 0.9))
    return (0, 0, 0)
