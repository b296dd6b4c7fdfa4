"""Prompt providers: who writes a new prompt when the reuse cache has none."""

from prompt.providers.base import PromptProvider, PromptRequest, PromptResult, get_provider

__all__ = ["PromptProvider", "PromptRequest", "PromptResult", "get_provider"]
