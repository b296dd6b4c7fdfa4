"""The end card's soft shadow is blurred over the product's box at half size: it must look
the same as the whole frame blurred at full size, wherever the product sits (edges too)."""

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter

from video.finishing.endcard import _soft_shadow

FRAME = (320, 240)


def _whole_frame(card: Image.Image, product: Image.Image, at: tuple[int, int], radius: int):  # type: ignore[no-untyped-def]
    shadow = Image.new("RGBA", card.size, (0, 0, 0, 0))
    silhouette = Image.new("RGBA", product.size, (0, 0, 0, 100))
    silhouette.putalpha(product.getchannel("A").point(lambda v: v * 100 // 255))
    shadow.alpha_composite(silhouette, at)
    card.alpha_composite(shadow.filter(ImageFilter.GaussianBlur(radius)))


@settings(max_examples=60, deadline=None)
@given(
    w=st.integers(1, FRAME[0]),
    h=st.integers(1, FRAME[1]),
    x=st.integers(-40, FRAME[0]),
    y=st.integers(-40, FRAME[1]),
    radius=st.integers(2, 24),
    round_shape=st.booleans(),
)
@example(w=60, h=48, x=100, y=80, radius=10, round_shape=True)  # halved, as real cards are
def test_the_shadow_matches_the_whole_frame_blur(
    w: int, h: int, x: int, y: int, radius: int, round_shape: bool
) -> None:
    product = Image.new("RGBA", (w, h), (200, 40, 40, 0 if round_shape else 255))
    if round_shape:  # a cut-out: the shadow follows its outline
        ImageDraw.Draw(product).ellipse((0, 0, w - 1, h - 1), fill=(200, 40, 40, 255))
    ours, reference = (Image.new("RGBA", FRAME, (240, 240, 240, 255)) for _ in range(2))
    at = (min(x, FRAME[0] - 1), min(y, FRAME[1] - 1))
    at = (max(at[0], 0), max(at[1], 0))
    _soft_shadow(ours, product, at, radius)
    _whole_frame(reference, product, at, radius)
    diff = np.abs(np.asarray(ours, dtype=int) - np.asarray(reference, dtype=int))
    # A shadow at most 100/255 dark: half-size blurring moves a pixel by a few levels.
    assert diff.max() <= 6, diff.max()
    assert diff.mean() <= 0.5
