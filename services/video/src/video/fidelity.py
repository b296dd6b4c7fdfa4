"""Product fidelity: how much of the product photo an AI clip still shows. Image-to-video
models drift (labels melt, logos change); the clip's first and middle frames are compared
with the photo on the product's region (SSIM of blurred greyscale thumbnails, tolerant of
a little camera movement), giving `video.fidelity` from 0 (nothing alike) to 1 (the same).
Under FIDELITY_WARN_BELOW the job carries a warning for the owner."""

import contextlib
import logging
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageFilter

from common.media_work import media_work
from common.metrics import VIDEO_FIDELITY as FIDELITY
from common.metrics import VIDEO_FIDELITY_WARNINGS as FIDELITY_WARNINGS
from video.config import VideoSettings
from video.render import RenderError
from video.render.canvas import open_photo, product_region
from video.render.geometry import Box, cover, fit

log = logging.getLogger(__name__)

THUMB = 48  # pixels on the longer side of the compared region
# The frames are converted at this size on their longer side (not the clip's own): the
# product's region in it is still several times THUMB, and the conversion of two whole
# frames to RGB was a quarter of the step.
FRAME_SIDE = 480
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _grey(image: Image.Image, box: Box) -> np.ndarray:
    region = image.crop((round(box.x), round(box.y), round(box.right), round(box.bottom)))
    scale = THUMB / max(region.size)
    size = (max(round(region.width * scale), 8), max(round(region.height * scale), 8))
    small = region.convert("L").resize(size, Image.Resampling.BOX)
    return np.asarray(small.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float64)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over 7x7 windows (uniform), clipped to 0..1."""
    k = 7
    if min(a.shape) < k:
        k = min(a.shape)

    def mean(x: np.ndarray) -> np.ndarray:
        c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), axis=0), axis=1)
        return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)

    ma, mb = mean(a), mean(b)
    va, vb = mean(a * a) - ma**2, mean(b * b) - mb**2
    cov = mean(a * b) - ma * mb
    score = ((2 * ma * mb + _C1) * (2 * cov + _C2)) / ((ma**2 + mb**2 + _C1) * (va + vb + _C2))
    return float(np.clip(score.mean(), 0.0, 1.0))


def frames(clip: Path) -> list[Image.Image]:
    """The clip's first frame and its frame at the middle of its length (its last frame
    when no frame's time is known). Decoded for a 48-pixel thumbnail: on one thread,
    without the frames nothing refers to (most B-frames) and without the deblocking
    filter, since the score needs no fine detail; after the first frame the decoder jumps
    to the keyframe before the middle instead of decoding everything up to it (that
    decoding was most of this step's CPU)."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.thread_count = 1
        codec.skip_frame = "NONREF"
        codec.options = {"skip_loop_filter": "all"}
        base = stream.time_base
        start = float(stream.start_time * base) if stream.start_time and base else 0.0
        middle = start + _length(container, stream) / 2
        first = next(container.decode(stream), None)
        if first is None:
            raise ValueError("the clip has no video frames")
        if base and first.time is not None and middle > first.time:
            # The keyframe at or before the middle: decoding goes on from there (or from
            # where it is, in a file that cannot seek).
            with contextlib.suppress(av.FFmpegError):
                container.seek(int(middle / base), stream=stream, backward=True)
        last = first
        for frame in container.decode(stream):
            last = frame
            if frame.time is not None and frame.time >= middle:
                break
        return [_small(first), _small(last)]


def _small(frame: Any) -> Image.Image:
    """The frame as RGB, FRAME_SIDE pixels on its longer side at most."""
    scale = min(1.0, FRAME_SIDE / max(frame.width, frame.height))
    return frame.to_image(
        width=max(round(frame.width * scale), 1), height=max(round(frame.height * scale), 1)
    )


def _length(container: Any, stream: Any) -> float:
    """The video stream's length in seconds (the container's when the stream has none)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / av.time_base


def score(photo_path: Path, clip: Path) -> float:
    """The fidelity of the clip to the photo, 0-1."""
    return score_frames(photo_path, frames(clip))


def score_frames(photo_path: Path, shown: list[Image.Image]) -> float:
    """The fidelity of the clip's `shown` frames to the photo, 0-1."""
    frame_w, frame_h = shown[0].size
    photo = open_photo(photo_path, (frame_w, frame_h))
    if photo.mode == "RGBA":
        flat = Image.new("RGB", photo.size, (128, 128, 128))
        flat.paste(photo, mask=photo.getchannel("A"))
        photo = flat
    region = product_region(photo)
    reference = _grey(photo, region)
    best = 0.0
    # The model got the photo as its first frame; it either fills its frame with it
    # (cropping) or fits it whole. Whichever matches the first frame better is how it did.
    for placed in _placements(photo.size, (frame_w, frame_h)):
        sx, sy = placed.w / photo.width, placed.h / photo.height
        seen = Box(
            placed.x + region.x * sx, placed.y + region.y * sy, region.w * sx, region.h * sy
        ).intersection(Box(0, 0, frame_w, frame_h))
        if seen.w < 8 or seen.h < 8:
            continue
        scores = [ssim(reference, _resized(_grey(f, seen), reference.shape)) for f in shown]
        best = max(best, sum(scores) / len(scores))
    return round(best, 3)


def _placements(photo: tuple[int, int], frame: tuple[int, int]) -> list[Box]:
    width, height = photo
    kept = cover(width, height, *frame)  # the part of the photo a cropping model keeps
    scale = frame[0] / kept.w
    cropped = Box(-kept.x * scale, -kept.y * scale, width * scale, height * scale)
    return [cropped, fit(width, height, Box(0, 0, *frame))]


def _resized(grey: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    image = Image.fromarray(grey.astype(np.uint8)).resize(
        (shape[1], shape[0]), Image.Resampling.BILINEAR
    )
    return np.asarray(image, dtype=np.float64)


async def fidelity_fields(photo: Path, clip: Path, settings: VideoSettings) -> dict[str, Any]:
    """`fidelity` and `fidelity_warning` for the job's `video`, the metric observed."""
    try:
        value = await media_work("fidelity", score, photo, clip)
    except (av.FFmpegError, RenderError, OSError, ValueError) as e:
        # A score is a courtesy to the owner: no reason to fail a clip that is paid for.
        log.warning("the clip's fidelity could not be scored: %s", e)
        return {"fidelity": None, "fidelity_warning": False}
    warn = value < settings.fidelity_warn_below
    provider = settings.video_provider
    FIDELITY.labels(provider=provider).observe(value)
    if warn:
        FIDELITY_WARNINGS.labels(provider=provider).inc()
        log.warning("the clip keeps little of the product photo (fidelity %.2f)", value)
    return {"fidelity": value, "fidelity_warning": warn}
