"""Captions: the hook and each benefit as PNG overlays (white text on a plate in the
palette), wrapped inside the preset's text-safe area, big enough to read on a phone and
with a contrast ratio of at least 4.5:1 whatever the clip shows behind them.

The hook sits at the top of the safe area, benefits at its bottom, both centred.
"""

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from common.presets import SafeArea
from video.finishing.text import RGB, darken_for, draw_line, hex_rgb, wrap
from video.finishing.timeline import Caption

TEXT: RGB = (255, 255, 255)
PLATE_ALPHA = 0.82
# Font size as a share of the frame height (ADS.md: >= 3.5 % on 9:16, >= 4.5 % on 16:9).
SIZES = {"portrait": (0.050, 0.042, 0.036), "landscape": (0.066, 0.056, 0.046)}
MAX_LINES = 3
LINE_SPACING = 1.18


@dataclass(frozen=True)
class Overlay:
    path: Path
    x: int
    y: int
    width: int
    height: int
    start: float
    end: float
    text_size: int = 0


def font_sizes(frame: tuple[int, int], kind: str) -> list[int]:
    """Sizes to try, largest first; the last is the smallest ADS.md allows."""
    width, height = frame
    hook, benefit, smallest = SIZES["portrait" if height > width else "landscape"]
    first = hook if kind == "hook" else benefit
    return sorted(
        {round(height * s) for s in (first, (first + smallest) / 2, smallest)}, reverse=True
    )


def plate_colour(palette: list[str]) -> RGB:
    """The darkest palette colour, darkened until white text on it reads (>= 4.5:1)."""
    darkest = min((hex_rgb(c) for c in palette), key=sum)
    return darken_for(TEXT, darkest, PLATE_ALPHA)


def render_caption(
    caption: Caption,
    frame: tuple[int, int],
    safe: SafeArea,
    palette: list[str],
    out: Path,
) -> Overlay:
    left, top, right, bottom = safe.box(*frame)
    pad = round(frame[1] * 0.014)
    max_width = right - left - 2 * pad
    for size in font_sizes(frame, caption.kind):
        lines = wrap(caption.text, size, max_width)
        if len(lines) <= MAX_LINES:
            break
    images = [draw_line(line, size, TEXT) for line in lines]
    step = round(size * LINE_SPACING)
    text_w = min(max(i.width for i in images), max_width)
    plate_w = text_w + 2 * pad
    plate_h = step * (len(images) - 1) + images[-1].height + pad
    plate = Image.new("RGBA", (plate_w, plate_h), (0, 0, 0, 0))
    ImageDraw.Draw(plate).rounded_rectangle(
        (0, 0, plate_w - 1, plate_h - 1),
        radius=round(size * 0.35),
        fill=(*plate_colour(palette), round(255 * PLATE_ALPHA)),
    )
    for i, image in enumerate(images):
        line = image if image.width <= max_width else image.crop((0, 0, max_width, image.height))
        plate.alpha_composite(line, ((plate_w - line.width) // 2, pad // 2 + i * step))
    x = left + (right - left - plate_w) // 2
    y = top if caption.kind == "hook" else bottom - plate_h
    plate.save(out, format="PNG", compress_level=1)
    return Overlay(out, x, y, plate_w, plate_h, caption.start, caption.end, size)
