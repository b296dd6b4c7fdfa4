"""The interface every video provider implements, and the choice of one from settings."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from common.brief import Brief
from common.storage import Storage
from video.budget import Spending
from video.config import VideoSettings

# How far the clip is, from 0 to 1; providers that cannot tell may never call it.
ProgressCallback = Callable[[float], Awaitable[None]]
# Stores what a provider needs to resume a paid job after a crash (its job id, say).
CheckpointCallback = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class VideoRequest:
    job_id: str
    image: Path  # the product photo, downloaded (not when resuming a provider_job with an id)
    prompt: str
    title: str
    aspect_ratio: str  # "9:16", "1:1" or "16:9"
    duration: int  # seconds
    seed: int
    # What an earlier attempt saved through `checkpoint` (the job's `provider_job`).
    provider_job: dict[str, Any] | None = field(default=None)
    # The photo's storage key, for providers that hand the model a link instead (S3).
    image_key: str | None = None
    # Whose job it is: paid providers count their clips against the owner's cap.
    owner: str = ""
    # The job's batch, whose `max_cost_usd` paid providers reserve the clip from.
    batch_id: str | None = None
    # The ad around the clip (job `brief` and `options`; older jobs have none of them).
    brief: Brief | None = None
    preset: str | None = None
    cta: str | None = None
    price: str | None = None
    music: str = "on"  # "on" | "off"
    captions: str = "on"  # "on" | "off"
    finish: bool = True


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


class CancellableProvider(Protocol):
    """Optional: a provider that can stop a job it runs implements `cancel`; the worker
    calls it with the job's saved `provider_job` when the job is canceled or timed out."""

    async def cancel(self, provider_job: dict[str, Any]) -> None: ...


class SubmissionUnderWay(Exception):
    """Another handler of this job (a duplicate delivery) has marked or made the paid
    submission already: this one sends nothing and leaves the job to it."""


class PollLater(Exception):
    """Not an error: the provider's job is still running; ask again after `seconds`. The
    worker hands the job back and re-schedules its event, holding no slot meanwhile.
    `progress` (0 to 1, as for `ProgressCallback`): how far the provider says the clip
    is, stored in the same write that hands the job back."""

    def __init__(self, seconds: float, status: str = "", progress: float | None = None) -> None:
        super().__init__(f"{status or 'running'}; poll again in {seconds:.0f}s")
        self.seconds = seconds
        self.status = status
        self.progress = progress


def _local(
    settings: VideoSettings, storage: Storage | None, spending: Spending | None
) -> VideoProvider:
    from video.providers.local import LocalProvider

    return LocalProvider(settings)


def _openrouter(
    settings: VideoSettings, storage: Storage | None, spending: Spending | None
) -> VideoProvider:
    from video.providers.openrouter import OpenRouterVideoProvider

    return OpenRouterVideoProvider(settings, storage, spending)


# A paid provider takes `spending` and reserves every paid clip from it before paying.
PROVIDERS: dict[str, Callable[[VideoSettings, Storage | None, Spending | None], VideoProvider]] = {
    "local": _local,
    "openrouter": _openrouter,
}


def get_provider(
    settings: VideoSettings, storage: Storage | None = None, spending: Spending | None = None
) -> VideoProvider:
    try:
        factory = PROVIDERS[settings.video_provider]
    except KeyError:
        names = ", ".join(repr(n) for n in PROVIDERS)
        raise ValueError(
            f"VIDEO_PROVIDER must be one of {names}, not {settings.video_provider!r}"
        ) from None
    return factory(settings, storage, spending)
