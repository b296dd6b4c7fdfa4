"""The still the camera moves over, composed with Pillow at a multiple of the frame size (so
the move is smooth and the product sharp). The product fills the frame: its longer side
spans HERO_SPAN of the frame's matching side, unless the other side would then leave the
frame (then it fills HERO_FIT of that side, as large as it can be uncut). Small photos are
upscaled with Lanczos, never stretched.

- A transparent cut-out stands on a generated studio backdrop in the palette (a light
  sweep with a glow behind the product) with a soft contact shadow.
- An opaque photo keeps its own background: the backdrop is the colour of the photo's
  border, and the photo's edges are feathered into it, so a studio shot looks seamless.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps, UnidentifiedImageError

from video.render import RenderError
from video.render.geometry import Box

HERO_SPAN = 0.84  # the product's longer side, of the frame's matching side
HERO_FIT = 0.9  # at most this much of either side, so it stays whole
# A busy photo (no product found apart from its background) is cropped up to this much
# closer rather than shown as a small band: it fills the frame like a scene.
SCENE_CLOSER = 1.45
SCENE_SHARE = 0.7  # a "product" covering this much of the photo is the whole scene
FEATHER = 0.035  # of the photo's shorter side: its edges fade into the backdrop
SHADOW_OPACITY = 0.42
# An opaque photo's product: pixels this far from the border colour (0-255 per channel).
PRODUCT_DISTANCE = 40


@dataclass(frozen=True)
class Still:
    image: Image.Image  # RGB, the canvas size
    product: Box  # where the product is, canvas pixels
    scene: bool = False  # a busy photo shown as a scene (cropped to fill), no product found


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
    if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert("RGB")  # an alpha channel with nothing transparent
    return image


def _thumb(photo: Image.Image, side: int = 96) -> tuple[Image.Image, float]:
    scale = side / max(photo.size)
    size = (max(round(photo.width * scale), 1), max(round(photo.height * scale), 1))
    return photo.resize(size, Image.Resampling.BOX), scale


def border_colour(photo: Image.Image) -> tuple[int, int, int]:
    """The median colour of the photo's outer edge (its background, on a studio shot)."""
    thumb, _ = _thumb(photo.convert("RGB"), 64)
    a = np.asarray(thumb)
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    r, g, b = (int(v) for v in np.median(edge, axis=0))
    return r, g, b


def product_region(photo: Image.Image) -> Box:
    """Where the product is in the photo, in photo pixels: a cut-out's opaque part; on an
    opaque photo what differs from its border colour; the whole photo when that is unclear
    (a busy scene)."""
    whole = Box(0.0, 0.0, float(photo.width), float(photo.height))
    if photo.mode == "RGBA":
        box = photo.getchannel("A").point(lambda v: 255 if v > 24 else 0).getbbox()
        return Box(*box[:2], box[2] - box[0], box[3] - box[1]) if box else whole
    thumb, scale = _thumb(photo)
    a = np.asarray(thumb.convert("RGB"), dtype=np.int16)
    mask = np.abs(a - np.array(border_colour(photo))).max(axis=2) > PRODUCT_DISTANCE
    if mask.mean() < 0.02 or mask.mean() > 0.9:
        return whole
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x0, x1 = cols[0] / scale, (cols[-1] + 1) / scale
    y0, y1 = rows[0] / scale, (rows[-1] + 1) / scale
    found = Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0)).shrunk(1.04)
    found = found.intersection(whole)
    return found if found.w * found.h > 0.03 * whole.w * whole.h else whole


def hero_scale(region: Box, canvas: tuple[int, int]) -> float:
    """How much the photo is scaled so the product fills the frame (see the module doc)."""
    width, height = canvas
    span = HERO_SPAN * (width / region.w if region.w >= region.h else height / region.h)
    return min(span, HERO_FIT * width / region.w, HERO_FIT * height / region.h)


def _studio(size: tuple[int, int], palette: list[tuple[int, int, int]]) -> Image.Image:
    """A light sweep tinted with the palette, brighter behind the product."""
    base = max(palette, key=sum)
    light = tuple(round(255 - (255 - c) * 0.25) for c in base)
    dark = tuple(round(c * 0.78) for c in light)
    ramp = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    image = Image.composite(Image.new("RGB", size, dark), Image.new("RGB", size, light), ramp)
    glow = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(glow).ellipse((8, 8, 56, 56), fill=110)
    glow = glow.filter(ImageFilter.GaussianBlur(10)).resize(size, Image.Resampling.BILINEAR)
    image.paste((255, 255, 255), mask=glow)
    return image


def _feathered(product: Image.Image) -> Image.Image:
    """An opaque photo with its edges fading out, as RGBA (a sliver stays as it is)."""
    if min(product.size) < 16:
        return product.convert("RGBA")
    edge = max(round(min(product.size) * FEATHER), 1)
    small = (max(product.width // 4, 1), max(product.height // 4, 1))
    mask = Image.new("L", small, 0)
    inset = max(edge // 4, 1)
    ImageDraw.Draw(mask).rectangle(
        (inset, inset, small[0] - inset - 1, small[1] - inset - 1), fill=255
    )
    mask = mask.filter(ImageFilter.GaussianBlur(max(edge / 8, 0.5))).resize(
        product.size, Image.Resampling.BILINEAR
    )
    out = product.convert("RGBA")
    out.putalpha(mask)
    return out


def _shadow(canvas: Image.Image, product: Image.Image, x: int, y: int) -> None:
    """A soft drop shadow of the cut-out and a contact shadow under it."""
    if min(product.size) < 16:
        return
    scale = 4
    small = (max(canvas.width // scale, 1), max(canvas.height // scale, 1))
    mask = Image.new("L", small, 0)
    pw, ph = max(product.width // scale, 1), max(product.height // scale, 1)
    shape = product.getchannel("A").resize((pw, ph), Image.Resampling.BOX)
    mask.paste(shape.point(lambda v: v * 0.5), (x // scale + pw // 40, y // scale + ph // 30))
    floor = Image.new("L", small, 0)
    foot = y // scale + ph
    ImageDraw.Draw(floor).ellipse(
        (x // scale + pw * 0.12, foot - ph * 0.035, x // scale + pw * 0.88, foot + ph * 0.035),
        fill=200,
    )
    mask = Image.fromarray(np.maximum(np.asarray(mask), np.asarray(floor)))
    mask = mask.filter(ImageFilter.GaussianBlur(max(min(pw, ph) / 22, 1.5)))
    mask = mask.point(lambda v: round(v * SHADOW_OPACITY)).resize(
        canvas.size, Image.Resampling.BILINEAR
    )
    canvas.paste((0, 0, 0), mask=mask)


def compose(
    photo: Image.Image,
    canvas_size: tuple[int, int],
    palette: list[tuple[int, int, int]] | None = None,
) -> Still:
    """The canvas of an opened photo (RGB or RGBA), the product at its hero size in the
    middle (a little above it on a tall frame)."""
    width, height = canvas_size
    region = product_region(photo)
    scale = hero_scale(region, canvas_size)
    cut_out = photo.mode == "RGBA"
    scene = not cut_out and region.w * region.h >= SCENE_SHARE * photo.width * photo.height
    if scene:
        covering = max(width / photo.width, height / photo.height)
        scale = max(scale, min(covering, scale * SCENE_CLOSER))
    if cut_out:
        canvas = _studio(canvas_size, palette or [border_colour(photo)])
    else:
        canvas = Image.new("RGB", canvas_size, border_colour(photo))
    centre_y = height * (0.46 if height > width else 0.5)
    # The product's centre at the canvas's; the photo around it, cut at the canvas edge.
    left = width / 2 - (region.x + region.w / 2) * scale
    top = centre_y - (region.y + region.h / 2) * scale
    visible = Box(left, top, photo.width * scale, photo.height * scale).intersection(
        Box(0, 0, width, height)
    )
    # A panorama at the pixel limit may be under a pixel high: it still gets one.
    visible = Box(visible.x, visible.y, max(visible.w, 1.0), max(visible.h, 1.0))
    # Only the part of the photo that shows is resampled (cheap for huge photos).
    source = Box(
        (visible.x - left) / scale,
        (visible.y - top) / scale,
        visible.w / scale,
        visible.h / scale,
    ).intersection(Box(0, 0, photo.width, photo.height))
    source = Box(
        min(source.x, photo.width - 1.0),
        min(source.y, photo.height - 1.0),
        max(source.w, 1.0),
        max(source.h, 1.0),
    )
    x, y, w, h = visible.rounded()
    product = photo.resize(
        (w, h),
        Image.Resampling.LANCZOS,
        box=(source.x, source.y, source.right, source.bottom),
        reducing_gap=3.0,
    )
    if cut_out:
        _shadow(canvas, product, x, y)
        canvas.paste(product, (x, y), mask=product)
    else:
        feathered = _feathered(product)
        canvas.paste(feathered, (x, y), mask=feathered)
    placed = Box(
        left + region.x * scale, top + region.y * scale, region.w * scale, region.h * scale
    )
    return Still(canvas, placed, scene)


def compose_canvas(
    photo_path: Path,
    canvas_size: tuple[int, int],
    out: Path,
    palette: list[tuple[int, int, int]] | None = None,
) -> Box:
    """Write the canvas to `out` (PNG); returns where the product is on it, in pixels."""
    still = compose(open_photo(photo_path, canvas_size), canvas_size, palette)
    still.image.save(out, format="PNG", compress_level=1)
    return still.product
