"""The video worker running in-process on the real broker, database and storage."""

from collections.abc import AsyncIterator

import pytest

from common.settings import CommonSettings
from services.video.tests.support import Worker, running_worker, worker_on
from tests.support.fake_openrouter import FakeOpenRouter


@pytest.fixture
async def worker(settings: CommonSettings) -> AsyncIterator[Worker]:
    async with running_worker() as running:  # the environment `settings` set up
        yield running


@pytest.fixture
async def openrouter_worker(
    settings: CommonSettings, fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Worker]:
    async with worker_on(fake, monkeypatch) as worker:
        yield worker
