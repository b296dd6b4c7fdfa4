"""The prompt worker running in-process on the real broker, database and storage."""

from collections.abc import AsyncIterator

import pytest

from common.settings import CommonSettings
from common.worker import WorkerContext
from prompt.config import PromptSettings
from prompt.handlers import register
from prompt.providers.template import TemplateProvider
from services.prompt.tests.support import CountingProvider, Worker


@pytest.fixture
def delay() -> float:
    """Seconds each prompt takes to write (a test sets it for a slow provider)."""
    return 0.0


@pytest.fixture
async def worker(settings: CommonSettings, delay: float) -> AsyncIterator[Worker]:
    prompt_settings = PromptSettings()  # the environment `settings` set up
    ctx = WorkerContext.create(prompt_settings)
    provider = CountingProvider(TemplateProvider(prompt_settings.template_version), delay=delay)
    stage = register(ctx, prompt_settings, provider)
    await ctx.broker.start()
    await ctx.start()
    try:
        yield Worker(ctx, provider, ctx.repo, stage)
    finally:
        await ctx.broker.stop()
        await ctx.broker.connect()
        await ctx.topology.delete(ctx.broker)
        await ctx.broker.stop()
        await ctx.client.drop_database(prompt_settings.mongodb_database)
        await ctx.stop()
