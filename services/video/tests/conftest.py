"""The video worker running in-process on the real broker, database and storage."""

from collections.abc import AsyncIterator

import pytest

from common.settings import CommonSettings
from services.video.tests.support import Worker, running_worker


@pytest.fixture
async def worker(settings: CommonSettings) -> AsyncIterator[Worker]:
    async with running_worker() as running:  # the environment `settings` set up
        yield running
