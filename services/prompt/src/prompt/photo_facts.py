"""What a prompt can say about the photo without a vision model: its orientation,
its dominant colours in plain words, its brightness and a plain background."""

from dataclasses import asdict, dataclass
from io import BytesIO
from typing import Any, Literal, cast

from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

# Plain-word names a shop owner would use; every pixel is mapped to the nearest one.
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("white", (246, 246, 246)),
    ("ivory", (238, 232, 214)),
    ("light grey", (196, 196, 196)),
    ("grey", (128, 128, 128)),
    ("charcoal grey", (62, 62, 66)),
    ("black", (14, 14, 14)),
    ("red", (200, 30, 35)),
    ("burgundy", (110, 20, 35)),
    ("pink", (240, 150, 175)),
    ("coral", (245, 120, 95)),
    ("orange", (240, 130, 30)),
    ("warm beige", (214, 190, 154)),
    ("caramel brown", (176, 120, 70)),
    ("chocolate brown", (95, 60, 35)),
    ("mustard yellow", (205, 165, 45)),
    ("yellow", (245, 215, 50)),
    ("olive green", (115, 120, 50)),
    ("green", (50, 150, 70)),
    ("forest green", (30, 80, 45)),
    ("mint green", (170, 225, 195)),
    ("teal", (20, 125, 130)),
    ("sky blue", (130, 190, 235)),
    ("blue", (40, 90, 200)),
    ("deep navy", (22, 32, 72)),
    ("lavender", (180, 160, 220)),
    ("purple", (110, 50, 150)),
)

THUMBNAIL = 64
# A colour counts as dominant from this share of the pixels on.
MIN_SHARE = 0.1
MAX_COLOURS = 3
# Border pixels this uniform (mean per-channel standard deviation) are a plain background.
UNIFORM_BORDER_STDDEV = 12.0
SQUARE_TOLERANCE = 0.05

Orientation = Literal["portrait", "landscape", "square"]
Brightness = Literal["bright", "dark", "medium"]


class InvalidImage(Exception):
    pass


@dataclass(frozen=True)
class PhotoFacts:
    width: int
    height: int
    orientation: Orientation
    colours: tuple[str, ...]  # most dominant first
    brightness: Brightness
    background: str | None  # e.g. "plain white" when the border is uniform

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["colours"] = list(self.colours)
        return data


def _palette_image() -> Image.Image:
    image = Image.new("P", (1, 1))
    # Cycle the names through all 256 slots: unused slots would otherwise be black.
    flat = [c for i in range(256) for c in PALETTE[i % len(PALETTE)][1]]
    image.putpalette(flat)
    return image


_PALETTE_IMAGE = _palette_image()


def colour_name(rgb: tuple[int, int, int]) -> str:
    return min(PALETTE, key=lambda p: sum((a - b) ** 2 for a, b in zip(p[1], rgb, strict=True)))[0]


def orientation_of(width: int, height: int) -> Orientation:
    if abs(width - height) <= SQUARE_TOLERANCE * max(width, height):
        return "square"
    return "portrait" if height > width else "landscape"


def _open(data: bytes) -> Image.Image:
    try:
        opened = Image.open(BytesIO(data))
        opened.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InvalidImage(f"not a readable image: {e}") from e
    # Phone photos are often stored sideways with an EXIF rotation: describe what people see.
    image: Image.Image = ImageOps.exif_transpose(opened)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _border(image: Image.Image) -> list[tuple[int, int, int]]:
    width, height = image.size
    strip = max(1, min(width, height) // 10)
    pixels = image.load()
    assert pixels is not None
    return [
        pixels[x, y]  # type: ignore[misc]
        for y in range(height)
        for x in range(width)
        if x < strip or y < strip or x >= width - strip or y >= height - strip
    ]


def _background(image: Image.Image) -> str | None:
    """The border's colour name, when the border is uniform."""
    border = _border(image)
    strip = Image.new("RGB", (len(border), 1))
    strip.putdata(border)
    stat = ImageStat.Stat(strip)
    if sum(stat.stddev) / 3 > UNIFORM_BORDER_STDDEV:
        return None
    red, green, blue = (round(v) for v in stat.mean)
    return colour_name((red, green, blue))


def _dominant(image: Image.Image) -> list[tuple[str, float]]:
    """Palette names by share of pixels, largest first."""
    mapped = image.quantize(palette=_PALETTE_IMAGE, dither=Image.Dither.NONE)
    counts: dict[str, int] = {}
    for count, index in mapped.getcolors(256) or []:
        name = PALETTE[cast(int, index) % len(PALETTE)][0]
        counts[name] = counts.get(name, 0) + count
    total = sum(counts.values())
    return sorted(((n, c / total) for n, c in counts.items()), key=lambda x: (-x[1], x[0]))


def describe(data: bytes) -> PhotoFacts:
    """Facts about an image; raises InvalidImage when it cannot be decoded."""
    image = _open(data)
    width, height = image.size
    small = image.copy()
    small.thumbnail((THUMBNAIL, THUMBNAIL))

    shares = _dominant(small)
    background = _background(small)
    subject = shares
    if background is not None:
        # Name the product's colours, not the backdrop's, when there is anything else.
        others = [(n, s) for n, s in shares if n != background]
        if others and others[0][1] >= MIN_SHARE / 2:
            total = sum(s for _, s in others)
            subject = [(n, s / total) for n, s in others]
        else:
            background = None  # one flat colour: there is no separate backdrop
    colours = tuple(n for n, s in subject if s >= MIN_SHARE)[:MAX_COLOURS] or (subject[0][0],)

    # HSV value rather than luminance: a saturated red is vivid, not dark.
    value = ImageStat.Stat(small.convert("HSV")).mean[2]
    brightness: Brightness = "bright" if value > 170 else "dark" if value < 80 else "medium"
    return PhotoFacts(
        width=width,
        height=height,
        orientation=orientation_of(width, height),
        colours=colours,
        brightness=brightness,
        background=None if background is None else f"plain {background}",
    )
