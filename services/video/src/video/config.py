"""Settings of the video worker (environment variables, no prefix)."""

from typing import Self

from pydantic import Field, model_validator

from common.settings import CommonSettings

# The default prefetch with the OpenRouter provider (see `prefetch`).
OPENROUTER_PREFETCH = 64


class VideoSettings(CommonSettings):
    service_name: str = "video"
    # Which provider makes clips: "local" (ffmpeg, offline) or "openrouter" (an
    # image-to-video model). Unset: "openrouter" when OPENROUTER_API_KEY is set, else "local".
    video_provider: str = ""
    # Messages handled at once per worker. Default: 2 with the local renderer (a render keeps
    # about two cores busy), 64 with OpenRouter (a delivery is mostly one poll waiting on
    # HTTP and the database: hundreds of jobs in flight are polled as often as the poll
    # interval asks only with many polls at once), where MEDIA_CONCURRENCY bounds the
    # clips finished at once instead.
    prefetch: int = Field(default=2, ge=1)
    # ffmpeg processes (render, re-encode, poster) at once in this worker, and clips
    # checked, finished and stored at once (a provider's clip once it is there).
    media_concurrency: int = Field(default=2, ge=1)
    # How long a claim on a job's generating stage holds before another worker may take over;
    # renewed while the clip is being made.
    lease_seconds: float = Field(default=300, gt=0)
    render_fps: int = Field(default=30, ge=10, le=60)
    # A hung ffmpeg is killed after this long (a retryable failure).
    render_timeout_seconds: float = Field(default=180, gt=0)

    # The OpenRouter provider: the model, and how its paid job is followed.
    openrouter_video_model: str = "bytedance/seedance-2.0"
    # Asked for when the model lists it (else the nearest it lists); the clip is scaled to
    # the frame size of its aspect ratio either way.
    openrouter_video_resolution: str = "720p"
    # Polls start this far apart and spread out to the maximum as the job ages (a sixth of
    # its age: every 5 s for the first half minute, every 15 s from 90 s on, for models
    # that take 30-180 s, in whole seconds below 20 s); each poll is one delivery, the
    # message waiting in the delay queue of that many seconds in between, holding no
    # slot. Polls per second in all: about jobs in flight / interval (webhook mode needs
    # far fewer).
    openrouter_poll_interval_seconds: float = Field(default=5, gt=0)
    openrouter_poll_max_interval_seconds: float = Field(default=15, gt=0)
    # A job OpenRouter has not finished this long after submission fails as provider_timeout.
    openrouter_video_deadline_seconds: float = Field(default=1200, gt=0)
    # How long the model list (GET /videos/models) is trusted before it is read again.
    openrouter_models_ttl_seconds: float = Field(default=3600, ge=0)
    # Per read/write of one call; downloads of the clip stream within it.
    openrouter_video_timeout_seconds: float = Field(default=60, gt=0)

    # Spending caps on paid clips (video/budget.py): the deployment's budget per UTC day
    # (0: none) and paid clips per account per UTC day (0: none), apart from the free tier.
    spend_limit_usd_per_day: float = Field(default=0, ge=0)
    paid_clips_per_user_per_day: int = Field(default=20, ge=0)
    # A clip's price per second when the model lists none (pricing_skus), for the budget.
    openrouter_video_usd_per_second: float = Field(default=0.15, ge=0)
    # AI clips scoring under this product fidelity (0-1, video/fidelity.py) carry a warning.
    fidelity_warn_below: float = Field(default=0.45, ge=0, le=1)

    @model_validator(mode="after")
    def _choose_provider(self) -> Self:
        if not self.video_provider:
            self.video_provider = "openrouter" if self.openrouter_api_key else "local"
        if self.video_provider == "openrouter" and "prefetch" not in self.model_fields_set:
            self.prefetch = OPENROUTER_PREFETCH
        return self
