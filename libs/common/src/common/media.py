"""ffmpeg location and media probing (PyAV reads the same containers ffprobe does)."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import av

# Output size of a clip per aspect ratio (720p class); one place for every provider and check.
FRAME_SIZES: dict[str, tuple[int, int]] = {
    "9:16": (720, 1280),
    "1:1": (720, 720),
    "16:9": (1280, 720),
}


def frame_size(aspect_ratio: str) -> tuple[int, int]:
    """Width and height of a clip with this aspect ratio."""
    try:
        return FRAME_SIZES[aspect_ratio]
    except KeyError:
        raise ValueError(
            f"aspect ratio must be one of {', '.join(FRAME_SIZES)}, not {aspect_ratio!r}"
        ) from None


def ffmpeg_exe() -> str:
    """The system ffmpeg if there is one, else the static build shipped by imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    pix_fmt: str
    width: int
    height: int
    duration: float
    frames: int
    fps: float


class InvalidMedia(Exception):
    pass


def probe_video(path: Path) -> VideoInfo:
    """Codec, pixel format, size and duration of the first video stream."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidMedia("the file has no video stream")
            stream = container.streams.video[0]
            if container.duration is not None:
                duration = container.duration / av.time_base
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            return VideoInfo(
                codec=stream.codec_context.name,
                pix_fmt=stream.codec_context.pix_fmt or "",
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                duration=round(duration, 3),
                frames=stream.frames,
                fps=float(stream.average_rate or 0),
            )
    except av.FFmpegError as e:
        raise InvalidMedia(f"not a readable video: {e}") from e
