"""Boxes and the two ways a photo is placed in a frame: fitted whole, or covering it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def scaled(self, sx: float, sy: float | None = None) -> "Box":
        sy = sx if sy is None else sy
        return Box(self.x * sx, self.y * sy, self.w * sx, self.h * sy)

    def shrunk(self, factor: float) -> "Box":
        """The same centre, `factor` times the size."""
        w, h = self.w * factor, self.h * factor
        return Box(self.x + (self.w - w) / 2, self.y + (self.h - h) / 2, w, h)

    def intersection(self, other: "Box") -> "Box":
        x, y = max(self.x, other.x), max(self.y, other.y)
        return Box(
            x,
            y,
            max(min(self.right, other.right) - x, 0),
            max(min(self.bottom, other.bottom) - y, 0),
        )

    def contains(self, other: "Box", tolerance: float = 1e-9) -> bool:
        return (
            other.x >= self.x - tolerance
            and other.y >= self.y - tolerance
            and other.right <= self.right + tolerance
            and other.bottom <= self.bottom + tolerance
        )

    def rounded(self) -> tuple[int, int, int, int]:
        """Whole pixels (x, y, w, h), never empty."""
        return round(self.x), round(self.y), max(round(self.w), 1), max(round(self.h), 1)


def fit(width: float, height: float, box: Box) -> Box:
    """The largest box of the photo's proportions inside `box`, centred: nothing cut, nothing
    squashed."""
    scale = min(box.w / width, box.h / height)
    w, h = width * scale, height * scale
    return Box(box.x + (box.w - w) / 2, box.y + (box.h - h) / 2, w, h)


def cover(width: float, height: float, target_w: float, target_h: float) -> Box:
    """The centred part of a width x height photo with the target's proportions (what is kept
    when the photo is scaled to cover the target). Always inside the photo: the side that
    binds is taken whole, exactly, never recomputed through a float scale (which can land a
    hair outside, and Pillow refuses a crop box a hair below zero)."""
    if target_w * height >= target_h * width:  # the target is wider: keep the full width
        h = min(width * target_h / target_w, height)
        return Box(0.0, max((height - h) / 2, 0.0), float(width), h)
    w = min(height * target_w / target_h, width)
    return Box(max((width - w) / 2, 0.0), 0.0, w, float(height))
