"""A RabbitMQ node of a test's own, started with `rabbitmq-server -detached`: its own node
name, ports, data and logs, so the shared broker on 5672 is never touched (a test may
restart this one, or enable a plugin on it)."""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support.backends import free_port, port_open, unavailable


class RabbitNode:
    def __init__(self, base: Path, prefix: str = "pvtest", prometheus: bool = False) -> None:
        self.base = base
        self.name = f"{prefix}{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        # Its `rabbitmq_prometheus` endpoint, when the plugin is enabled on this node only.
        self.prometheus_port = free_port() if prometheus else None

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

    def wait_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        ports = [p for p in (self.port, self.prometheus_port) if p]
        while not all(port_open("127.0.0.1", p) for p in ports):
            if time.monotonic() > deadline:
                raise TimeoutError(f"RabbitMQ node {self.name} not up after {timeout}s")
            time.sleep(0.2)

    def start(self) -> None:
        # The node runs as the rabbitmq user: its folder must be reachable and writable
        # for it (pytest's tmp_path is private to the user running the tests).
        self.base.chmod(0o777)
        plugins = self.base / "enabled_plugins"
        plugins.write_text("[rabbitmq_prometheus].\n" if self.prometheus_port else "[].\n")
        config = self.base / "rabbitmq.conf"
        # The machine's rabbitmq.conf names port 5672: this node has a config of its own.
        lines = [f"listeners.tcp.local = 127.0.0.1:{self.port}"]
        if self.prometheus_port:
            lines += [
                f"prometheus.tcp.port = {self.prometheus_port}",
                "prometheus.tcp.ip = 127.0.0.1",
                # Queue figures are refreshed every second (default 5 s) for short tests.
                "collect_statistics_interval = 1000",
            ]
        config.write_text("\n".join(lines) + "\n")
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


@contextlib.contextmanager
def private_node(prefix: str, prometheus: bool = False) -> Iterator[RabbitNode]:
    """A started node, stopped and removed afterwards; skipped (failed in CI) without
    rabbitmq-server."""
    if not (shutil.which("rabbitmq-server") and shutil.which("rabbitmqctl")):
        unavailable("rabbitmq-server to start a second node")
    node = RabbitNode(Path(tempfile.mkdtemp(prefix=f"{prefix}-rabbit-")), prefix, prometheus)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        node.remove()
