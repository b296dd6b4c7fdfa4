"""Fixtures shared by every test: the real backing services and settings that
isolate one test session (its own queue prefix, database and storage)."""

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from faststream.rabbit import RabbitBroker

from common.settings import CommonSettings
from common.topology import Topology
from tests.support import backends


@pytest.fixture(scope="session")
def session_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with backends.rabbitmq() as url:
        yield url


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backends.mongodb(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    with backends.s3_server() as env:
        yield env


def _delete_topology(env: dict[str, str]) -> None:
    """Remove a test's queues: left-over quorum queues exhaust the broker's file handles."""

    async def delete() -> None:
        settings = CommonSettings(
            amqp_url=env["AMQP_URL"],
            amqp_prefix=env["AMQP_PREFIX"],
            retry_delays=json.loads(env["RETRY_DELAYS"]),
            amqp_queue_expires_seconds=int(env["AMQP_QUEUE_EXPIRES_SECONDS"]),
        )
        broker = RabbitBroker(settings.amqp_url, logger=None)
        async with broker:
            await broker.connect()
            await Topology(settings).delete(broker)

    # In a thread of its own: asyncio.run must not touch the tests' event loop.
    worker = threading.Thread(target=asyncio.run, args=(delete(),))
    worker.start()
    worker.join(30)


@pytest.fixture
def service_env(amqp_url: str, mongodb_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for services under test: a fresh prefix, database and folder per test."""
    run = uuid.uuid4().hex[:8]
    env = {
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": f"test.{run}.",
        "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": f"pv_test_{run}",
        "STORAGE_URL": f"file://{tmp_path / 'objects'}",
        "SIGNING_KEY": f"test-signing-key-{run}",
        "LOG_FORMAT": "text",
        "RETRY_DELAYS": "[1,2,3]",
        "AMQP_QUEUE_EXPIRES_SECONDS": "900",
    }
    yield env
    _delete_topology(env)


@pytest.fixture
def settings(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CommonSettings:
    for key, value in service_env.items():
        monkeypatch.setenv(key, value)
    return CommonSettings()


@pytest.fixture
async def mongo_db(settings: CommonSettings) -> AsyncIterator[object]:
    from common import db

    client, database = db.connect(settings)
    await db.ensure_indexes(database)
    yield database
    await client.drop_database(settings.mongodb_database)
    await client.close()
