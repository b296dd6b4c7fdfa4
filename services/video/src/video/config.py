"""Settings of the video worker (environment variables, no prefix)."""

from pathlib import Path

from pydantic import Field

from common.settings import CommonSettings


class VideoSettings(CommonSettings):
    service_name: str = "video"
    # Which provider makes clips: "local" (ffmpeg, offline); "openrouter" comes later.
    video_provider: str = "local"
    # Clips in flight per worker: a local render keeps about two cores busy.
    prefetch: int = Field(default=2, ge=1)
    # How long a claim on a job's generating stage holds before another worker may take over;
    # renewed while the clip is being made.
    lease_seconds: float = Field(default=300, gt=0)
    render_fps: int = Field(default=30, ge=10, le=60)
    # A hung ffmpeg is killed after this long (a retryable failure).
    render_timeout_seconds: float = Field(default=180, gt=0)
    # The title card's font; by default DejaVu Sans Bold when installed, else Pillow's own.
    title_font_path: Path | None = None
