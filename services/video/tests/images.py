"""Synthetic product photos: a solid-coloured product, easy to find in a frame."""

import io

from PIL import Image, ImageDraw

PRODUCT = (220, 40, 40)


def solid(size: tuple[int, int], colour: tuple[int, int, int] = PRODUCT, fmt: str = "PNG") -> bytes:
    """A photo that is all product: every pixel of it must show, none squashed."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def mug(size: tuple[int, int] = (900, 1200)) -> bytes:
    """A navy mug-ish shape on a light studio background."""
    image = Image.new("RGB", size, (238, 236, 230))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rounded_rectangle((w * 0.25, h * 0.3, w * 0.7, h * 0.8), radius=w // 20, fill=(25, 35, 90))
    draw.ellipse((w * 0.62, h * 0.42, w * 0.82, h * 0.65), outline=(25, 35, 90), width=w // 30)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
