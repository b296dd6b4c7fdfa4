"""The poster: one frame of the clip as a JPEG of the same size, shown before it plays."""

from pathlib import Path

from video.render.ffmpeg import run_ffmpeg

POSTER_AT = 1.0  # seconds: the product with its title card, past the fade-in
JPEG_QUALITY = 3  # ffmpeg's -q:v scale, 2 (best) to 31


def poster_time(duration: float) -> float:
    return min(POSTER_AT, duration / 2)


async def extract_poster(clip: Path, out: Path, *, at: float, time_limit: float = 60) -> Path:
    await run_ffmpeg(
        [
            "-ss",
            f"{at:.3f}",
            "-i",
            str(clip),
            "-frames:v",
            "1",
            "-q:v",
            str(JPEG_QUALITY),
            "-update",
            "1",
            "-y",
            str(out),
        ],
        time_limit=time_limit,
    )
    return out
