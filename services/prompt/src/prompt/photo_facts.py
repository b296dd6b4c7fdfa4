"""What a prompt can say about the photo without a vision model: its orientation,
its dominant colours in plain words, its brightness and a plain background; and what the
brief takes from it: the palette (the photo's own colours as hex) and where its detail is."""

from dataclasses import asdict, dataclass
from io import BytesIO
from typing import Any, Literal, cast

from PIL import Image, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

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
    # 2-3 colours measured from the photo as `#rrggbb`: the product's first, then the
    # backdrop's (a shade of the only colour when the photo has one).
    palette: tuple[str, ...] = ("#808080", "#404040")
    # Where the most detail is (edges), as shares of the width and height: where a close-up
    # shot looks.
    focus: tuple[float, float] = (0.5, 0.5)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["colours"] = list(self.colours)
        data["palette"] = list(self.palette)
        data["focus"] = list(self.focus)
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


def _dominant(image: Image.Image) -> tuple[list[tuple[str, float]], dict[str, str]]:
    """Palette names by share of pixels, largest first; and for each name the mean colour
    of its pixels in the photo, as `#rrggbb`."""
    mapped = image.quantize(palette=_PALETTE_IMAGE, dither=Image.Dither.NONE)
    indices = mapped.tobytes()  # one palette index per pixel
    rgb = image.tobytes()  # three bytes per pixel
    sums: dict[str, list[int]] = {}
    for pixel, index in enumerate(indices):
        name = PALETTE[index % len(PALETTE)][0]
        acc = sums.setdefault(name, [0, 0, 0, 0])
        acc[0] += rgb[3 * pixel]
        acc[1] += rgb[3 * pixel + 1]
        acc[2] += rgb[3 * pixel + 2]
        acc[3] += 1
    total = sum(acc[3] for acc in sums.values())
    shares = sorted(((n, acc[3] / total) for n, acc in sums.items()), key=lambda x: (-x[1], x[0]))
    means = {
        n: "#" + "".join(f"{round(acc[c] / acc[3]):02x}" for c in range(3))
        for n, acc in sums.items()
    }
    return shares, means


def _shade(colour: str) -> str:
    """A clearly lighter or darker version of `#rrggbb`, for a photo of one colour."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    light = sum(rgb) / 3 > 127
    return "#" + "".join(
        f"{(round(c * 0.45) if light else round(c + (255 - c) * 0.6)):02x}" for c in rgb
    )


def _palette(
    colours: tuple[str, ...],
    subject: list[tuple[str, float]],
    background: str | None,
    means: dict[str, str],
) -> tuple[str, ...]:
    """The product's main colours, then the backdrop's, then other large areas."""
    names = list(colours[:2])
    if background is not None and background not in names:
        names.append(background)
    names += [n for n, s in subject if s >= MIN_SHARE and n not in names]
    palette = tuple(means[n] for n in names[:MAX_COLOURS])
    return palette if len(palette) >= 2 else (palette[0], _shade(palette[0]))


FOCUS_GRID = 3


def _focus(image: Image.Image) -> tuple[float, float]:
    """The centre of the edge energy in the most detailed cell of a 3x3 grid (the centre
    cell wins ties); the middle of a photo without edges."""
    edges = image.convert("L").filter(ImageFilter.FIND_EDGES)
    width, height = edges.size
    # FIND_EDGES marks the image's own border: leave a pixel out on every side.
    pixels = edges.load()
    assert pixels is not None
    best: tuple[float, int, int] | None = None
    for row in range(FOCUS_GRID):
        for col in range(FOCUS_GRID):
            x0, x1 = (
                max(1, col * width // FOCUS_GRID),
                min(width - 1, (col + 1) * width // FOCUS_GRID),
            )
            y0, y1 = (
                max(1, row * height // FOCUS_GRID),
                min(height - 1, (row + 1) * height // FOCUS_GRID),
            )
            energy = sum(cast(int, pixels[x, y]) for y in range(y0, y1) for x in range(x0, x1))
            centre_first = (row, col) == (1, 1)
            if energy and (
                best is None or energy > best[0] or (energy == best[0] and centre_first)
            ):
                best = (energy, row, col)
    if best is None:
        return (0.5, 0.5)
    _, row, col = best
    x0, x1 = max(1, col * width // FOCUS_GRID), min(width - 1, (col + 1) * width // FOCUS_GRID)
    y0, y1 = max(1, row * height // FOCUS_GRID), min(height - 1, (row + 1) * height // FOCUS_GRID)
    weight = sx = sy = 0.0
    for y in range(y0, y1):
        for x in range(x0, x1):
            value = cast(int, pixels[x, y])
            weight += value
            sx += value * (x + 0.5)
            sy += value * (y + 0.5)
    return (round(sx / weight / width, 2), round(sy / weight / height, 2))


def describe(data: bytes) -> PhotoFacts:
    """Facts about an image; raises InvalidImage when it cannot be decoded."""
    image = _open(data)
    width, height = image.size
    small = image.copy()
    small.thumbnail((THUMBNAIL, THUMBNAIL))

    shares, means = _dominant(small)
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
        palette=_palette(colours, subject, background, means),
        focus=_focus(small),
    )
