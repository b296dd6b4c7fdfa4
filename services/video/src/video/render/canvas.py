"""The still the camera moves over, composed with Pillow at a multiple of the frame
size (so the move is smooth and the product sharp): the whole photo, fitted without
cropping or squashing, over a blurred, darkened copy of itself that fills the frame."""

from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter, ImageOps, UnidentifiedImageError

from video.render import RenderError
from video.render.geometry import Box, cover, fit

BACKGROUND_BRIGHTNESS = 0.45
BACKGROUND_SATURATION = 0.85
# The background is blurred at 1/BLUR_REDUCTION of the canvas size: cheap and very soft.
BLUR_REDUCTION = 16
SHADOW_OPACITY = 0.45


def open_photo(path: Path, at_least: tuple[int, int]) -> Image.Image:
    """The photo upright (EXIF orientation applied), as RGB or RGBA."""
    try:
        with Image.open(path) as opened:
            # JPEGs decode at a reduced scale when that still covers the needed size.
            opened.draft("RGB", at_least)
            upright = ImageOps.exif_transpose(opened)
            has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            image = upright.convert("RGBA" if has_alpha else "RGB")
    except Image.DecompressionBombError as e:
        raise RenderError(f"The product photo is too large to render: {e}") from e
    except UnidentifiedImageError as e:
        raise RenderError("The product photo is not an image format we can read.") from e
    except Exception as e:  # a damaged file fails in many ways inside the decoders
        raise RenderError(f"The product photo cannot be decoded: {e}") from e
    if min(image.size) < 1:
        raise RenderError("The product photo is empty.")
    return image


def _background(photo: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The photo scaled to cover the canvas, blurred and darkened."""
    width, height = size
    small = (max(width // BLUR_REDUCTION, 1), max(height // BLUR_REDUCTION, 1))
    crop = cover(photo.width, photo.height, *small)
    flat = photo
    if photo.mode == "RGBA":  # transparent parts of a cut-out product become mid-grey
        flat = Image.new("RGB", photo.size, (96, 96, 96))
        flat.paste(photo, mask=photo.getchannel("A"))
    reduced = flat.resize(
        small, Image.Resampling.BOX, box=(crop.x, crop.y, crop.right, crop.bottom)
    )
    reduced = reduced.filter(ImageFilter.GaussianBlur(max(min(small) / 24, 1.5)))
    reduced = ImageEnhance.Color(reduced).enhance(BACKGROUND_SATURATION)
    reduced = ImageEnhance.Brightness(reduced).enhance(BACKGROUND_BRIGHTNESS)
    return reduced.resize(size, Image.Resampling.BICUBIC)


def _shadow(canvas: Image.Image, product: Image.Image, box: tuple[int, int, int, int]) -> None:
    """A soft shadow under the product, so it stands off the background."""
    x, y, w, h = box
    scale = BLUR_REDUCTION // 2
    small = (max(canvas.width // scale, 1), max(canvas.height // scale, 1))
    mask = Image.new("L", small, 0)
    shape = product.getchannel("A") if product.mode == "RGBA" else Image.new("L", product.size, 255)
    sw, sh = max(w // scale, 1), max(h // scale, 1)
    offset = max(h // 60, 1)
    mask.paste(
        shape.resize((sw, sh), Image.Resampling.BOX),
        ((x + offset) // scale, (y + offset * 2) // scale),
    )
    mask = mask.filter(ImageFilter.GaussianBlur(max(min(sw, sh) / 25, 1.0)))
    mask = mask.point(lambda v: int(v * SHADOW_OPACITY)).resize(
        canvas.size, Image.Resampling.BICUBIC
    )
    canvas.paste((0, 0, 0), mask=mask)


def product_box(photo_size: tuple[int, int], area: Box, canvas_size: tuple[int, int]) -> Box:
    """Where the photo lands on a canvas, in pixels: fitted inside `area` (canvas fractions)."""
    return fit(*photo_size, area.scaled(*canvas_size))


def compose(photo: Image.Image, area: Box, canvas_size: tuple[int, int]) -> tuple[Image.Image, Box]:
    """The canvas of an opened photo, and where the product is on it, in pixels."""
    canvas = _background(photo, canvas_size)
    placed = product_box(photo.size, area, canvas_size)
    x, y, w, h = placed.rounded()
    product = photo.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    _shadow(canvas, product, (x, y, w, h))
    canvas.paste(product, (x, y), mask=product if product.mode == "RGBA" else None)
    return canvas, placed


def compose_canvas(photo_path: Path, area: Box, canvas_size: tuple[int, int], out: Path) -> Box:
    """Write the canvas to `out` (PNG); returns where the product is on it, in pixels."""
    canvas, placed = compose(open_photo(photo_path, canvas_size), area, canvas_size)
    canvas.save(out, format="PNG", compress_level=1)
    return placed
