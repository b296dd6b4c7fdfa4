"""Synthetic product photos for tests."""

from io import BytesIO

from PIL import Image

RGB = tuple[int, int, int]


def photo(
    size: tuple[int, int], colour: RGB, *, product: RGB | None = None, fmt: str = "PNG"
) -> bytes:
    """A flat image, or a `product` rectangle on a flat background of `colour`."""
    image = Image.new("RGB", size, colour)
    if product is not None:
        width, height = size
        image.paste(Image.new("RGB", (width // 2, height // 2), product), (width // 4, height // 4))
    out = BytesIO()
    image.save(out, fmt)
    return out.getvalue()
