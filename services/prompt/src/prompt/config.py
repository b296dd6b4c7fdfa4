"""Settings of the prompt worker (environment variables, no prefix)."""

from pydantic import Field

from common.settings import CommonSettings


class PromptSettings(CommonSettings):
    service_name: str = "prompt"
    # Which provider writes new prompts: "template" (offline); "openrouter" comes later.
    prompt_provider: str = "template"
    # Part of the reuse key: bump it when the template's wording changes.
    template_version: str = "t1"
    # How long a claim on a job's prompting stage holds before another worker may take over.
    lease_seconds: float = Field(default=120, gt=0)
