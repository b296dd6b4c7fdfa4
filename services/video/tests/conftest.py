"""The video worker running in-process on the real broker, database and storage."""

from collections.abc import AsyncIterator

import pytest

from common.settings import CommonSettings
from common.worker import WorkerContext
from services.video.tests.support import Worker, running_worker
from tests.support.fake_openrouter import FakeOpenRouter
from video.config import VideoSettings
from video.handlers import register


@pytest.fixture
async def worker(settings: CommonSettings) -> AsyncIterator[Worker]:
    async with running_worker() as running:  # the environment `settings` set up
        yield running


@pytest.fixture
async def openrouter_worker(
    settings: CommonSettings, fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Worker]:
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VIDEO_PROVIDER", raising=False)
    video_settings = VideoSettings()
    ctx = WorkerContext.create(video_settings)
    stage = register(ctx, video_settings)
    await ctx.broker.start()
    await ctx.start()
    try:
        yield Worker(ctx, stage.provider)  # type: ignore[arg-type]
    finally:
        await ctx.broker.stop()
        await ctx.broker.connect()
        await ctx.topology.delete(ctx.broker)
        await ctx.broker.stop()
        await ctx.client.drop_database(video_settings.mongodb_database)
        await ctx.stop()
