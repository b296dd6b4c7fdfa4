"""The end card: the last 1.5-2 s of the ad, a full frame in the brief's palette with the
product, its title, the call to action and (when given) the price, all inside the preset's
text-safe area (the product may use the whole width above the text). In a clip too short
for both, the hook caption stays on over the top of it."""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageOps

from common.presets import SafeArea
from video.finishing.text import RGB, blend, contrast, draw_line, hex_rgb, luminance, wrap

WHITE: RGB = (255, 255, 255)
INK: RGB = (17, 17, 17)


def _text_on(background: RGB) -> RGB:
    return WHITE if contrast(WHITE, background) >= contrast(INK, background) else INK


def _readable(colour: RGB, text: RGB, minimum: float = 4.5) -> RGB:
    """The colour, darkened (for white text) or lightened (for dark text) until it reads."""
    towards = (0, 0, 0) if text == WHITE else WHITE
    for _ in range(40):
        if contrast(colour, text) >= minimum:
            return colour
        colour = blend(towards, colour, 0.1)
    return (0, 0, 0) if text == WHITE else WHITE


def colours(palette: list[str]) -> tuple[RGB, RGB, RGB, RGB]:
    """Background top and bottom, the text colour on them, and the button's colour."""
    rgb = [hex_rgb(c) for c in palette]
    base = min(rgb, key=luminance)  # the darkest colour as the ground: product pops off it
    top = blend(WHITE, base, 0.12)
    bottom = blend((0, 0, 0), base, 0.25)
    text = _text_on(base)
    top, bottom = _readable(top, text), _readable(bottom, text)
    accent = max(rgb, key=lambda c: max(c) - min(c))  # the most colourful
    if accent == base:
        accent = max(rgb, key=luminance)
    return top, bottom, text, accent


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    ramp = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)


def _product(photo: Image.Image, box: tuple[int, int]) -> Image.Image:
    """The photo fitted in box, rounded corners when it is opaque, as RGBA."""
    fitted = ImageOps.contain(photo, box, Image.Resampling.LANCZOS)
    if fitted.mode == "RGBA":
        return fitted
    fitted = fitted.convert("RGBA")
    mask = Image.new("L", fitted.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (0, 0, fitted.width - 1, fitted.height - 1), radius=max(min(fitted.size) // 14, 2), fill=255
    )
    fitted.putalpha(mask)
    return fitted


def _lines(text: str, size: int, width: int, colour: RGB, max_lines: int) -> list[Image.Image]:
    lines = wrap(text, size, width)[:max_lines]
    return [draw_line(line, size, colour) for line in lines]


def _soft_shadow(card: Image.Image, product: Image.Image, at: tuple[int, int], radius: int) -> None:
    """A soft shadow of the product's own shape (a cut-out's outline, a photo's card) at
    `at`. Blurred over its own box and the blur's reach only, at half size: the whole frame
    at full size was half the card's CPU (80 ms of a 9:16 card) for the same soft edge
    (services/video/tests/test_end_card_shadow.py)."""
    reach = 3 * radius + 2  # beyond it the blur of a transparent surround stays transparent
    x0, y0 = max(at[0] - reach, 0), max(at[1] - reach, 0)
    x1 = min(at[0] + product.width + reach, card.width)
    y1 = min(at[1] + product.height + reach, card.height)
    box = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
    silhouette = Image.new("RGBA", product.size, (0, 0, 0, 100))
    silhouette.putalpha(product.getchannel("A").point(lambda v: v * 100 // 255))
    box.alpha_composite(silhouette, (at[0] - x0, at[1] - y0))
    # Half size for a wide blur of a shape much larger than it (every real card's: the
    # radius is 12 px or more from 720 px wide) away from the frame's edges: the same soft
    # edge. A small blur or shape, or one at an edge, keeps its size: halving would show.
    inside = (x0, y0) == (at[0] - reach, at[1] - reach) and (x1, y1) == (
        at[0] + product.width + reach,
        at[1] + product.height + reach,
    )
    scale = 2 if inside and radius >= 8 and min(product.size) >= 4 * radius else 1
    small = box.resize(
        (max(box.width // scale, 1), max(box.height // scale, 1)), Image.Resampling.BOX
    )
    blurred = small.filter(ImageFilter.GaussianBlur(radius / scale)).resize(
        box.size, Image.Resampling.BILINEAR
    )
    card.alpha_composite(blurred, (x0, y0))


def render_end_card(
    photo: Image.Image,
    title: str,
    cta: str,
    price: str | None,
    palette: list[str],
    frame: tuple[int, int],
    safe: SafeArea,
    out: Path,
) -> Path:
    """Write the card: an opaque BMP of the frame size (ffmpeg decodes the still again for
    every frame it is shown, and a BMP costs next to nothing to write and to read, where a
    PNG of 720x1280 took ~50-200 ms to encode and a sixth of the compose graph's CPU)."""
    width, height = frame
    top_c, bottom_c, text_c, accent = colours(palette)
    card = _gradient(frame, top_c, bottom_c).convert("RGBA")
    left, _, right, bottom = safe.box(width, height)
    safe_w = right - left
    portrait = height > width
    unit = height * (0.045 if portrait else 0.062)

    # Text first (its height decides the product's room): title, price, button.
    title_imgs = _lines(title, round(unit * 0.9), safe_w, text_c, 2)
    price_imgs = _lines(price, round(unit * 1.1), safe_w, text_c, 1) if price else []
    cta_size = round(unit)
    cta_text = _text_on(accent)
    button_c = _readable(accent, cta_text)
    cta_img = draw_line(cta, cta_size, cta_text)
    pad_x, pad_y = round(cta_size * 0.9), round(cta_size * 0.35)
    button_w = min(cta_img.width + 2 * pad_x, safe_w)
    button_h = cta_img.height + 2 * pad_y
    gap = round(unit * 0.35)
    text_h = sum(i.height for i in title_imgs + price_imgs) + button_h + gap * 3

    # The product may use the whole width above the text (only text keeps to the safe area).
    product_top = round(height * 0.06)
    text_top = bottom - text_h
    room = (round(width * 0.84), max(text_top - gap - product_top, round(height * 0.2)))
    product = _product(photo, room)
    px = (width - product.width) // 2
    py = product_top + (room[1] - product.height) // 2
    _soft_shadow(card, product, (px, py + max(product.height // 40, 2)), max(width // 60, 2))
    card.alpha_composite(product, (px, py))

    y = max(text_top, py + product.height + gap)
    for image in title_imgs + price_imgs:
        crop = image.crop((0, 0, min(image.width, safe_w), image.height))
        card.alpha_composite(crop, (left + (safe_w - crop.width) // 2, y))
        y += image.height
    y += gap
    bx = left + (safe_w - button_w) // 2
    ImageDraw.Draw(card).rounded_rectangle(
        (bx, y, bx + button_w, y + button_h), radius=button_h // 2, fill=(*button_c, 255)
    )
    crop = cta_img.crop((0, 0, min(cta_img.width, button_w - 2), cta_img.height))
    card.alpha_composite(crop, (bx + (button_w - crop.width) // 2, y + pad_y))
    card.convert("RGB").save(out, format="BMP")
    return out
