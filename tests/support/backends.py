"""Backing services for tests, resolved in order: a URL from the environment,
else a testcontainers container when Docker answers, else the local one
(RabbitMQ on this machine, a SecantusDB daemon, a moto S3 server).

In CI (`CI=true`) a service that cannot be had is a failure, never a skip.
"""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from common.settings import CommonSettings
from common.topology import Topology
from scripts.run import SECANTUSD

LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def unavailable(what: str) -> None:
    """Fail in CI, skip elsewhere: a missing backing service is never a silent pass."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is not available, and CI needs it", pytrace=False)
    pytest.skip(f"{what} is not available")


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _bin(name: str) -> str:
    """A console script of this virtual environment."""
    return str(Path(sys.executable).with_name(name))


@contextmanager
def rabbitmq() -> Iterator[str]:
    if url := os.environ.get("AMQP_URL"):
        yield url
        return
    if docker_available():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as c:
            host, port = c.get_container_host_ip(), c.get_exposed_port(c.port)
            yield f"amqp://guest:guest@{host}:{port}/"
        return
    parsed = urlparse(LOCAL_AMQP_URL)
    if not port_open(parsed.hostname or "127.0.0.1", parsed.port or 5672):
        unavailable("RabbitMQ (start it with `rabbitmq-server -detached` or set AMQP_URL)")
    yield LOCAL_AMQP_URL


class SecantusDaemon:
    """A SecantusDB server in its own process, so tests can stop and restart it."""

    def __init__(self, storage: Path, port: int | None = None) -> None:
        self.storage = storage
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        log = (self.storage.parent / f"secantus-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(SECANTUSD),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self.storage),
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        # Generous: `make test` starts one per test process at once, beside the services.
        wait_for_port("127.0.0.1", self.port, timeout=90)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def mongodb(workdir: Path) -> Iterator[str]:
    if url := os.environ.get("MONGODB_URL"):
        yield url
        return
    if docker_available():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:8") as c:
            yield c.get_connection_url()
        return
    daemon = SecantusDaemon(workdir / "mongo")
    try:
        daemon.start()
    except (OSError, TimeoutError) as e:
        unavailable(f"SecantusDB ({e})")
    try:
        yield daemon.url
    finally:
        daemon.stop()


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """Endpoint and credentials of an S3-compatible server."""
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    if url := os.environ.get("S3_ENDPOINT_URL"):
        yield {
            "S3_ENDPOINT_URL": url,
            **creds,
            **{k: os.environ[k] for k in creds if k in os.environ},
        }
        return
    if docker_available():
        from testcontainers.minio import MinioContainer

        with MinioContainer() as c:
            cfg = c.get_config()
            yield {
                "S3_ENDPOINT_URL": f"http://{cfg['endpoint']}",
                "AWS_ACCESS_KEY_ID": cfg["access_key"],
                "AWS_SECRET_ACCESS_KEY": cfg["secret_key"],
            }
        return
    port = free_port()
    process = subprocess.Popen(
        [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        process.kill()
        unavailable("moto S3 server")
    try:
        yield {"S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", **creds}
    finally:
        process.terminate()
        process.wait(10)


def delete_topology(env: dict[str, str]) -> None:
    """Remove a test's queues: left-over quorum queues exhaust the broker's file handles."""

    async def delete() -> None:
        settings = CommonSettings(
            amqp_url=env["AMQP_URL"],
            amqp_prefix=env["AMQP_PREFIX"],
            retry_delays=json.loads(env["RETRY_DELAYS"]),
            amqp_queue_expires_seconds=int(env["AMQP_QUEUE_EXPIRES_SECONDS"]),
        )
        await Topology(settings).delete()

    # In a thread of its own: asyncio.run must not touch the tests' event loop.
    worker = threading.Thread(target=asyncio.run, args=(delete(),))
    worker.start()
    worker.join(30)
