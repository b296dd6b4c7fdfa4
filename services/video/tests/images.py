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


def bottle(size: tuple[int, int] = (600, 900), cut_out: bool = False) -> bytes:
    """A red bottle on a near-white studio background (or on transparency)."""
    background = (0, 0, 0, 0) if cut_out else (246, 245, 242, 255)
    image = Image.new("RGBA", size, background)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rounded_rectangle(
        (w * 0.3, h * 0.25, w * 0.7, h * 0.9), radius=w // 12, fill=(*PRODUCT, 255)
    )
    draw.rectangle((w * 0.42, h * 0.1, w * 0.58, h * 0.26), fill=(*PRODUCT, 255))
    draw.rectangle((w * 0.34, h * 0.45, w * 0.66, h * 0.6), fill=(250, 250, 250, 255))  # label
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
