"""The interface every prompt provider implements, and the choice of one from settings."""

from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass(frozen=True)
class PromptResult:
    text: str
    model: str
    cost: float = 0.0  # US dollars
    details: dict[str, Any] = field(default_factory=dict)


class PromptProvider(Protocol):
    name: str  # "template", "openrouter", ...
    model: str  # part of the reuse key: another model writes another prompt

    async def write(self, request: PromptRequest) -> PromptResult:
        """Write the video prompt; raise `common.errors.JobError` to fail or retry."""
        ...


def get_provider(settings: PromptSettings) -> PromptProvider:
    from prompt.providers.template import TemplateProvider

    if settings.prompt_provider == "template":
        return TemplateProvider(settings.template_version)
    raise ValueError(f"PROMPT_PROVIDER must be 'template', not {settings.prompt_provider!r}")
