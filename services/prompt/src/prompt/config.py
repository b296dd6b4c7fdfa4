"""Settings of the prompt worker (environment variables, no prefix)."""

from typing import Literal, Self

from pydantic import Field, model_validator

from common.settings import CommonSettings


class PromptSettings(CommonSettings):
    service_name: str = "prompt"
    # Which provider writes new prompts: "template" (offline) or "openrouter" (an LLM that
    # looks at the photo). Unset: "openrouter" when OPENROUTER_API_KEY is set, else "template".
    prompt_provider: str = ""
    # Part of the reuse key: bump it when the template's or the system prompt's wording changes.
    template_version: str = "t1"
    # Whose prompts a job may reuse: its owner's only (the default), or anyone's ("shared":
    # fewer LLM calls, but a reuse tells one owner another submitted the same product;
    # prompt/reuse.py).
    prompt_reuse_scope: Literal["owner", "shared"] = "owner"
    # How long a claim on a job's prompting stage holds before another worker may take over.
    lease_seconds: float = Field(default=120, gt=0)

    # The OpenRouter prompt writer: a vision model with JSON-schema output.
    openrouter_prompt_model: str = "google/gemini-2.5-flash"
    openrouter_prompt_temperature: float = Field(default=0.7, ge=0, le=2)
    # Per read/write of one chat call (a reply of a few hundred tokens takes seconds).
    openrouter_prompt_timeout_seconds: float = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _choose_provider(self) -> Self:
        if not self.prompt_provider:
            self.prompt_provider = "openrouter" if self.openrouter_api_key else "template"
        return self
