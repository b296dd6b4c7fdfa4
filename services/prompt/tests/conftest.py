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
async def worker(settings: CommonSettings) -> AsyncIterator[Worker]:
    prompt_settings = PromptSettings()  # the environment `settings` set up
    ctx = WorkerContext.create(prompt_settings)
    provider = CountingProvider(TemplateProvider(prompt_settings.template_version))
    register(ctx, prompt_settings, provider)
    await ctx.broker.start()
    await ctx.start()
    try:
        yield Worker(ctx, provider, ctx.repo)
    finally:
        await ctx.broker.stop()
        await ctx.broker.connect()
        await ctx.topology.delete(ctx.broker)
        await ctx.broker.stop()
        await ctx.client.drop_database(prompt_settings.mongodb_database)
        await ctx.stop()
