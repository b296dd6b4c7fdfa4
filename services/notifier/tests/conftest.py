"""A real notifier (uvicorn, its own status queue) and a driver that moves jobs."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect

from common.jobs import JobRepository
from common.messaging import Publishers, make_broker
from common.pipeline import Pipeline
from common.settings import CommonSettings
from common.tokens import Signer
from common.topology import Topology
from notifier.config import NotifierSettings
from notifier.main import create_app
from services.notifier.tests.support import Client, Driver, start_server
from tests.support.backends import free_port

StartNotifier = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_notifier(settings: CommonSettings) -> AsyncIterator[StartNotifier]:
    """Starts notifier replicas (settings from the test environment plus overrides);
    returns each one's base URL (http://127.0.0.1:port)."""
    running = []

    async def start(server_options: dict[str, Any] | None = None, **overrides: Any) -> str:
        port = free_port()
        app = create_app(NotifierSettings(**overrides))
        running.append(await start_server(app, port, **(server_options or {})))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in running:
        server.should_exit = True
        await task


@pytest.fixture
async def notifier(start_notifier: StartNotifier) -> str:
    return await start_notifier()


@pytest.fixture
async def driver(settings: CommonSettings, mongo_db: Any) -> AsyncIterator[Driver]:
    broker = make_broker(settings)
    topology = Topology(settings)
    publishers = Publishers(broker, topology)
    repo = JobRepository(mongo_db)
    await broker.start()
    await topology.declare(broker)
    yield Driver(broker, topology, publishers, repo, Pipeline(repo, publishers), Signer(settings))
    await broker.stop()


@pytest.fixture(autouse=True)
async def remove_topology(settings: CommonSettings) -> AsyncIterator[None]:
    """Every notifier declares the whole topology (quorum queues); the broker is shared
    with other sessions, so this test's queues go when it ends (set up first, torn down last)."""
    yield
    broker = make_broker(settings)
    await broker.connect()
    try:
        await Topology(settings).delete(broker)
    finally:
        await broker.stop()


@pytest.fixture
async def client(notifier: str) -> AsyncIterator[Client]:
    async with connect(notifier.replace("http", "ws") + "/ws") as ws:
        yield Client(ws)
