"""RabbitMQ restarted again and again while 20 jobs run: the services reconnect by
themselves, all four say not ready (`/readyz` 503) while it is down, every job ends
completed or failed with a reason, none lost or doubled (harness.check), and a job
submitted after the last restart completes.

The scenario runs a RabbitMQ node of its own (its own node name, ports, data and logs;
the shared broker on 5672 is never touched) and restarts its `rabbit` application."""

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.conftest import _run
from tests.faults.harness import (
    N_JOBS,
    all_not_ready,
    assert_sound,
    check,
    hold,
    release,
    submit_and_watch,
    wait_for_status,
    watchers_subscribed,
)
from tests.support import processes
from tests.support.backends import free_port, port_open, unavailable
from tests.support.fake_openrouter import FakeOpenRouter

pytestmark = pytest.mark.timeout(300)

RESTARTS = 3
DOWN_SECONDS = 2.0


class RabbitNode:
    """A second RabbitMQ node, started with `rabbitmq-server -detached`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"pvfault{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            ["rabbitmqctl", "-n", self.name, *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"RabbitMQ node {self.name} not up after {timeout}s")
            time.sleep(0.2)

    def start(self) -> None:
        # The node runs as the rabbitmq user: its folder must be reachable and writable
        # for it (pytest's tmp_path is private to the user running the tests).
        self.base.chmod(0o777)
        plugins = self.base / "enabled_plugins"
        plugins.write_text("[].\n")
        config = self.base / "rabbitmq.conf"
        # The machine's rabbitmq.conf names port 5672: this node has a config of its own.
        config.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        for path in (plugins, config):
            path.chmod(0o644)
        env = {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_CONFIG_FILE": str(config),
        }
        subprocess.run(
            ["rabbitmq-server", "-detached"], env={**os.environ, **env}, check=True, timeout=60
        )
        self.wait_up()

    def restart_app(self, down: float) -> None:
        self.ctl("stop_app")
        time.sleep(down)
        self.ctl("start_app")
        self.wait_up()

    def remove(self) -> None:
        """Its folder; the halting node may still write its last log lines meanwhile."""
        deadline = time.monotonic() + 15
        while self.base.exists() and time.monotonic() < deadline:
            shutil.rmtree(self.base, ignore_errors=True)
            time.sleep(0.2)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.ctl("stop")


@pytest.fixture
def own_broker() -> Iterator[RabbitNode]:
    if not (shutil.which("rabbitmq-server") and shutil.which("rabbitmqctl")):
        unavailable("rabbitmq-server to start a second node")
    node = RabbitNode(Path(tempfile.mkdtemp(prefix="pvfault-rabbit-")))
    try:
        node.start()
        yield node
    finally:
        node.stop()
        node.remove()


@pytest.fixture
def broker_fault_system(
    request: pytest.FixtureRequest,
    fault_env: dict[str, str],
    own_broker: RabbitNode,
    tmp_path: Path,
) -> Iterator[processes.System]:
    env = {**fault_env, "AMQP_URL": own_broker.url}
    yield from _run(request, env, tmp_path / "logs", processes.ALL)


@pytest.fixture
async def fault_client(broker_fault_system: processes.System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=broker_fault_system.gateway.url, timeout=30) as c:
        yield c


async def test_rabbitmq_restarted_mid_run(
    broker_fault_system: processes.System,
    fault_client: httpx.AsyncClient,
    own_broker: RabbitNode,
    database: AsyncDatabase,
    fake: FakeOpenRouter,
) -> None:
    system = broker_fault_system
    hold(fake)
    run = await submit_and_watch(system, fault_client)
    ids = run.ids

    await watchers_subscribed(system)
    faults = 0
    for _ in range(RESTARTS):
        await wait_for_status(database, ids, "generating", within=90)
        # Some provider jobs end now: their clips are stored and announced meanwhile.
        release(fake, N_JOBS // (RESTARTS + 1))
        if faults == 0:
            # Off the event loop: the WebSocket watchers run on it meanwhile.
            await asyncio.to_thread(own_broker.ctl, "stop_app")
            # Checked once: every service says it is not ready.
            await all_not_ready(system, processes.ALL)
            await asyncio.to_thread(own_broker.ctl, "start_app")
            await asyncio.to_thread(own_broker.wait_up)
        else:
            await asyncio.to_thread(own_broker.restart_app, DOWN_SECONDS)
        faults += 1
    last_fault = time.monotonic()
    release(fake)
    # After the last restart a new job goes all the way: the gateway publishes again and
    # the consumers resume.
    await asyncio.to_thread(processes.wait_ready, system)
    late = await submit_and_watch(system, fault_client, 1, first=N_JOBS)
    run.extend(late)
    figures = await check(
        "RabbitMQ restarted",
        run,
        database,
        fake,
        system,
        faults=faults,
        last_fault_at=last_fault,
    )
    assert_sound(figures)
    assert figures.completed == N_JOBS + 1
    processes.wait_ready(system)
