"""What a provider's clip must be before it is stored: every provider, same rules."""

from common.errors import JobError
from common.media import VideoInfo, frame_size
from video.providers.base import VideoRequest

# Generous enough for a model's frame rounding (e.g. 121 frames at 24 fps for 5 s).
DURATION_TOLERANCE = 0.25
# Pixel formats every browser decodes.
PLAYABLE_PIX_FMTS = ("yuv420p", "yuvj420p")


def check_clip(info: VideoInfo, request: VideoRequest) -> None:
    """Raise `invalid_video` unless the clip is H.264 4:2:0 of the frame size of its
    aspect ratio and (within DURATION_TOLERANCE) the requested duration."""
    problems = []
    if info.codec != "h264":
        problems.append(f"its codec is {info.codec}, not h264")
    if info.pix_fmt not in PLAYABLE_PIX_FMTS:
        problems.append(f"its pixel format is {info.pix_fmt}, not yuv420p")
    width, height = frame_size(request.aspect_ratio)
    if (info.width, info.height) != (width, height):
        problems.append(
            f"it is {info.width}x{info.height}, not {width}x{height} ({request.aspect_ratio})"
        )
    if abs(info.duration - request.duration) > DURATION_TOLERANCE:
        problems.append(f"it lasts {info.duration:.2f}s, not {request.duration}s")
    if problems:
        raise JobError("invalid_video", f"The generated clip is not usable: {'; '.join(problems)}.")
