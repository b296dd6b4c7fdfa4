"""The interface every video provider implements, and the choice of one from settings."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from video.config import VideoSettings

# How far the clip is, from 0 to 1; providers that cannot tell may never call it.
ProgressCallback = Callable[[float], Awaitable[None]]
# Stores what a provider needs to resume a paid job after a crash (its job id, say).
CheckpointCallback = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class VideoRequest:
    job_id: str
    image: Path  # the product photo, downloaded
    prompt: str
    title: str
    aspect_ratio: str  # "9:16", "1:1" or "16:9"
    duration: int  # seconds
    seed: int
    # What an earlier attempt saved through `checkpoint` (the job's `provider_job`).
    provider_job: dict[str, Any] | None = field(default=None)


class VideoProvider(Protocol):
    name: str  # "local", "openrouter", ...

    async def generate(
        self,
        request: VideoRequest,
        workdir: Path,
        progress: ProgressCallback,
        checkpoint: CheckpointCallback | None = None,
    ) -> Path:
        """Make the clip inside `workdir` and return its path (an MP4). Raise
        `common.errors.JobError` to fail the job or, when retryable, to try again."""
        ...


def _local(settings: VideoSettings) -> VideoProvider:
    from video.providers.local import LocalProvider

    return LocalProvider(settings)


PROVIDERS: dict[str, Callable[[VideoSettings], VideoProvider]] = {"local": _local}


def get_provider(settings: VideoSettings) -> VideoProvider:
    try:
        factory = PROVIDERS[settings.video_provider]
    except KeyError:
        names = ", ".join(repr(n) for n in PROVIDERS)
        raise ValueError(
            f"VIDEO_PROVIDER must be one of {names}, not {settings.video_provider!r}"
        ) from None
    return factory(settings)
