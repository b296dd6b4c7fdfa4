"""The gateway run in-process (its real lifespan) against the real broker, database
and storage, plus helpers to look at what it left behind and to make test photos."""

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from common.topology import Topology
from gateway.core.config import GatewaySettings
from gateway.core.services import Services
from gateway.main import create_app
from tests.support import client as user


def photo(
    fmt: str = "JPEG",
    size: tuple[int, int] = (640, 480),
    mode: str = "RGB",
    color: Any = (200, 40, 40),
    **save: Any,
) -> bytes:
    """A photo encoded in `fmt`."""
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt, **save)
    return buf.getvalue()


@pytest.fixture
def make_photo() -> Callable[..., bytes]:
    return photo


class Gateway:
    """A running gateway and what it is connected to."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, amqp: Any) -> None:
        self.app = app
        self.client = client
        self.amqp = amqp
        self.session: str | None = None  # the default user's session token
        self.email: str | None = None

    async def sign_in(self, email: str | None = None) -> str:
        """Sign in through the real flow (the code arrives at the test's SMTP server);
        returns the session token. Without `email`, as a new user."""
        return await user.sign_in(self.client, email or user.new_email())

    async def auth(self) -> dict[str, str]:
        """The default user's Authorization header (signed in on first use)."""
        if self.session is None:
            self.email = user.new_email()
            self.session = await self.sign_in(self.email)
        return user.auth(self.session)

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def settings(self) -> GatewaySettings:
        return self.services.settings

    @property
    def prompt_queue(self) -> str:
        return self.services.topology.prompt_jobs.queue.name

    async def submit(
        self,
        image: bytes | None = None,
        *,
        filename: str = "photo.jpg",
        content_type: str = "image/jpeg",
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> httpx.Response:
        data = {"title": "Red mug", "description": "A sturdy red mug.", **fields}
        data = {k: v for k, v in data.items() if v is not None}
        files = {"image": (filename, image if image is not None else photo(), content_type)}
        # As the default signed-in user, unless the test says who it is.
        headers = {**await self.auth(), **(headers or {})}
        return await self.client.post("/api/v1/jobs", data=data, files=files, headers=headers)

    async def job_count(self) -> int:
        return int(await self.services.db["jobs"].count_documents({}))

    def stored_files(self) -> list[Path]:
        root = self.settings.storage_root
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    async def queue_depth(self, name: str) -> int:
        async with self.amqp.channel() as channel:
            queue = await channel.declare_queue(name, passive=True)
            return int(queue.declaration_result.message_count or 0)

    async def next_message(self, name: str) -> aio_pika.abc.AbstractIncomingMessage | None:
        async with self.amqp.channel() as channel:
            queue = await channel.declare_queue(name, passive=True)
            return await queue.get(no_ack=True, fail=False)

    async def assert_nothing_left(self) -> None:
        """A refused request leaves no job, no stored object and no queued message."""
        assert await self.job_count() == 0
        assert self.stored_files() == []
        assert await self.queue_depth(self.prompt_queue) == 0


async def _delete_topology(amqp: Any, settings: GatewaySettings) -> None:
    topology = Topology(settings)
    async with amqp.channel() as channel:
        for work in topology.work_queues:
            for queue in work.all_queues:
                await channel.queue_delete(queue.name)
        await channel.exchange_delete(topology.exchange.name)


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[Any]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()


@pytest.fixture
def start_gateway(settings: Any, mongo_db: Any, amqp: Any) -> Callable[..., Any]:
    """`async with start_gateway(**setting_overrides) as gateway:` runs one gateway."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Gateway]:
        gateway_settings = GatewaySettings().model_copy(update=overrides)
        app = create_app(gateway_settings)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://testserver"
                ) as client:
                    yield Gateway(app, client, amqp)
        finally:
            await _delete_topology(amqp, gateway_settings)

    return start


@pytest.fixture
async def gateway(start_gateway: Callable[..., Any]) -> AsyncIterator[Gateway]:
    async with start_gateway() as running:
        yield running
