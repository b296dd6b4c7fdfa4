"""The video worker running in-process on the real broker, database and storage."""

from collections.abc import AsyncIterator

import pytest

from common.settings import CommonSettings
from common.worker import WorkerContext
from services.video.tests.support import CountingProvider, Worker, delete_topology
from video.config import VideoSettings
from video.handlers import register
from video.providers.local import LocalProvider


@pytest.fixture
async def worker(settings: CommonSettings) -> AsyncIterator[Worker]:
    video_settings = VideoSettings()  # the environment `settings` set up
    ctx = WorkerContext.create(video_settings)
    provider = CountingProvider(LocalProvider(video_settings))
    register(ctx, video_settings, provider)
    await ctx.broker.start()
    await ctx.start()
    try:
        yield Worker(ctx, provider)
    finally:
        await ctx.broker.stop()
        await ctx.broker.connect()
        await delete_topology(ctx)
        await ctx.broker.stop()
        await ctx.client.drop_database(video_settings.mongodb_database)
        await ctx.stop()
