"""The interface every prompt provider implements, and the choice of one from settings."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.storage import Storage
from prompt.config import PromptSettings
from prompt.photo_facts import PhotoFacts


@dataclass(frozen=True)
class VideoOptions:
    aspect_ratio: str
    duration: int
    style: str | None = None

    @classmethod
    def from_job(cls, options: dict[str, Any]) -> "VideoOptions":
        return cls(
            aspect_ratio=str(options["aspect_ratio"]),
            duration=int(options["duration"]),
            style=options.get("style") or None,
        )


@dataclass(frozen=True)
class PromptRequest:
    job_id: str
    title: str
    description: str
    options: VideoOptions
    facts: PhotoFacts
    # The photo itself, for providers that look at it (an LLM with image input).
    image: bytes = field(repr=False)
    content_type: str
    # Its storage key, for providers that hand the model a link instead (S3).
    image_key: str | None = None


@dataclass(frozen=True)
class PromptResult:
    text: str
    model: str
    cost: float = 0.0  # US dollars
    details: dict[str, Any] = field(default_factory=dict)
    # The creative brief written with the prompt (`common.brief.Brief` as JSON), before the
    # owner's CTA and price are added (`prompt.brief.for_job`).
    brief: dict[str, Any] | None = None


class PromptProvider(Protocol):
    name: str  # "template", "openrouter", ...
    model: str  # part of the reuse key: another model writes another prompt

    async def write(self, request: PromptRequest) -> PromptResult:
        """Write the video prompt and its brief, in one go; raise `common.errors.JobError`
        to fail or retry."""
        ...


def _template(settings: PromptSettings, storage: Storage | None) -> PromptProvider:
    from prompt.providers.template import TemplateProvider

    return TemplateProvider(settings.template_version)


def _openrouter(settings: PromptSettings, storage: Storage | None) -> PromptProvider:
    from prompt.providers.openrouter import OpenRouterPromptProvider

    return OpenRouterPromptProvider(settings, storage)


PROVIDERS: dict[str, Callable[[PromptSettings, Storage | None], PromptProvider]] = {
    "template": _template,
    "openrouter": _openrouter,
}


def get_provider(settings: PromptSettings, storage: Storage | None = None) -> PromptProvider:
    try:
        factory = PROVIDERS[settings.prompt_provider]
    except KeyError:
        names = ", ".join(repr(n) for n in PROVIDERS)
        raise ValueError(
            f"PROMPT_PROVIDER must be one of {names}, not {settings.prompt_provider!r}"
        ) from None
    return factory(settings, storage)
