"""The local renderer never crashes on a valid photo: every size the gateway accepts (from
the minimum side to the pixel limit, any proportions), every aspect ratio and preset, every
image mode; including sizes whose float geometry lands a hair outside the photo."""

import io
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from common.media import frame_size
from common.presets import PRESETS
from video.render.canvas import compose, open_photo
from video.render.geometry import Box, cover

MIN_SIDE = 256  # the gateway's MIN_IMAGE_SIDE
MAX_PIXELS = 40_000_000  # the gateway's MAX_IMAGE_PIXELS
RATIOS = sorted({p.aspect_ratio for p in PRESETS.values()})
MODES = ("RGB", "RGBA", "L", "CMYK")


@st.composite
def photo_sizes(draw: st.DrawFn) -> tuple[int, int]:
    """Any size within the gateway's limits, spread over small, large and extreme shapes."""
    width = draw(st.integers(MIN_SIDE, MAX_PIXELS // MIN_SIDE))
    height = draw(st.integers(MIN_SIDE, max(MAX_PIXELS // width, MIN_SIDE)))
    return width, height


@given(
    size=st.tuples(st.integers(1, 200_000), st.integers(1, 200_000)),
    target=st.tuples(st.integers(1, 10_000), st.integers(1, 10_000)),
)
@example(size=(256, 427), target=(135, 240))  # y was -2.8e-14: "box offset can't be negative"
def test_cover_stays_inside_the_photo(size: tuple[int, int], target: tuple[int, int]) -> None:
    kept = cover(*size, *target)
    assert kept.x >= 0 and kept.y >= 0
    assert kept.right <= size[0] and kept.bottom <= size[1]
    assert kept.w > 0 and kept.h > 0


def photo(size: tuple[int, int], mode: str) -> Image.Image:
    """A product-ish photo of any size in `mode`, cheap to make even at 40 M pixels."""
    small = Image.new("RGBA" if mode == "RGBA" else "RGB", (64, 64), (240, 238, 232, 0))
    ImageDraw.Draw(small).ellipse((12, 8, 52, 58), fill=(30, 60, 140, 255))
    image = small.resize(size, Image.Resampling.NEAREST)
    return image.convert(mode) if mode != "RGBA" else image


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=photo_sizes(), mode=st.sampled_from(MODES), ratio=st.sampled_from(RATIOS))
@example(size=(600, 400), mode="RGB", ratio="16:9")  # the small landscape WebP of the report
@example(size=(256, 427), mode="RGB", ratio="9:16")
@example(size=(MIN_SIDE, MAX_PIXELS // MIN_SIDE), mode="L", ratio="16:9")
@example(size=(MAX_PIXELS // MIN_SIDE, MIN_SIDE), mode="RGBA", ratio="9:16")
def test_any_valid_photo_composes(size: tuple[int, int], mode: str, ratio: str) -> None:
    frame = frame_size(ratio)
    still = compose(_as_opened(photo(size, mode)), frame, [(30, 60, 140), (240, 238, 232)])
    assert still.image.size == frame and still.image.mode == "RGB"
    placed = still.product
    # Whole (inside the frame; a busy scene is cropped instead) and as large as the hero
    # rule wants it.
    assert still.scene or Box(-1, -1, frame[0] + 2, frame[1] + 2).contains(placed)
    long_side, matching = (placed.w, frame[0]) if placed.w >= placed.h else (placed.h, frame[1])
    assert long_side >= 0.7 * matching - 1 or max(placed.w / frame[0], placed.h / frame[1]) >= 0.85


def _as_opened(image: Image.Image) -> Image.Image:
    """What `open_photo` hands the composer: RGB, or RGBA for a cut-out."""
    return image.convert("RGBA" if image.mode == "RGBA" else "RGB")


def test_every_mode_and_a_rotated_portrait_open_upright(tmp_path: Path) -> None:
    for mode, fmt in (("RGB", "WEBP"), ("RGBA", "PNG"), ("L", "PNG"), ("CMYK", "JPEG")):
        path = tmp_path / f"p-{mode}.{fmt.lower()}"
        photo((600, 400), mode).save(path, format=fmt)
        opened = open_photo(path, (1280, 720))
        assert opened.mode == ("RGBA" if mode == "RGBA" else "RGB")
        assert opened.size == (600, 400)
    # A phone portrait stored sideways with EXIF orientation 6.
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    photo((1280, 960), "RGB").save(buffer, format="JPEG", exif=exif)
    (tmp_path / "phone.jpg").write_bytes(buffer.getvalue())
    assert open_photo(tmp_path / "phone.jpg", (1280, 720)).size == (960, 1280)
