"""The services as real processes, the way they run in production: each one a
uvicorn process with its own port, talking to the others only through the
broker, the database and storage.

Each process writes its output to a log file; `System.logs()` collects them so a
failing test shows what the services said.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scripts import run as run_script
from tests.support.backends import free_port

STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Spec:
    name: str
    app: str
    extra_args: tuple[str, ...] = ()
    # Serves /metrics and /readyz with detail on an ops port of its own (OPS_PORT).
    ops: bool = False


# The same commands `make run` uses (and the Dockerfiles, checked by tests/test_chart.py).
SPECS = {
    s.name: Spec(s.name, s.app, s.extra_args, ops=s.ops_port is not None)
    for s in run_script.SERVICES
}
ALL = tuple(SPECS)


@dataclass
class Service:
    spec: Spec
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    ops_port: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """Where its /metrics and detailed /readyz are: the ops port, or a worker's one port."""
        return f"http://127.0.0.1:{self.ops_port or self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class System:
    """The running services and the environment they share."""

    env: dict[str, str]
    services: dict[str, Service] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    @property
    def gateway(self) -> Service:
        return self.services["gateway"]

    @property
    def notifier(self) -> Service:
        return self.services["notifier"]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.notifier.port}/ws"

    def logs(self) -> str:
        parts = []
        for service in self.services.values():
            code = service.process.poll()
            state = "running" if code is None else f"exited with {code}"
            parts.append(f"----- {service.name} ({state}) -----\n{service.log()}")
        return "\n".join(parts)


def _start(spec: Spec, port: int, env: dict[str, str], log_dir: Path) -> Service:
    log_path = log_dir / f"{spec.name}-{port}.log"
    ops_port = free_port() if spec.ops else None
    if ops_port:
        env = {**env, "OPS_PORT": str(ops_port)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                spec.app,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *spec.extra_args,
            ],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Service(spec, port, log_path, process, ops_port)


def _not_ready(client: httpx.Client, service: Service) -> str | None:
    """Why `service` is not ready yet (None once it answers /healthz and, on its ops port,
    uncached /readyz): what a timeout reports for each service still pending."""
    for url in (f"{service.url}/healthz", f"{service.ops_url}/readyz"):
        try:
            response = client.get(url, timeout=5)
        except httpx.HTTPError as e:
            return f"{url.rsplit('/', 1)[1]}: {type(e).__name__}"
        if response.status_code != 200:
            return f"{url.rsplit('/', 1)[1]}: {response.status_code} {response.text[:300]}"
    return None


def wait_ready(system: System, timeout: float = STARTUP_TIMEOUT) -> None:
    """Until every service is ready (`_not_ready`); fails early when one exits. The reasons
    come last in the error, after the logs, so the end of a CI log says what was waited for."""
    started = time.strftime("%H:%M:%S")
    deadline = time.monotonic() + timeout
    pending = list(system.services.values())
    with httpx.Client() as client:
        while pending:
            for service in pending:
                if service.process.poll() is not None:
                    raise RuntimeError(
                        f"{system.logs()}\n{service.name} exited with "
                        f"{service.process.returncode} while starting (waited since {started})"
                    )
            reasons = {s.name: _not_ready(client, s) for s in pending}
            pending = [s for s in pending if reasons[s.name] is not None]
            if pending and time.monotonic() > deadline:
                why = "; ".join(f"{s.name}: {reasons[s.name]}" for s in pending)
                raise TimeoutError(
                    f"{system.logs()}\nnot ready after {timeout}s (waited from {started} to "
                    f"{time.strftime('%H:%M:%S')}): {why}"
                )
            if pending:
                time.sleep(0.2)


def exit_on_sigterm() -> None:
    """For a script that starts services (the benches): SIGTERM (a `kill`, a CI timeout)
    unwinds it like Ctrl-C does, so its `running` blocks stop the services they started
    instead of leaving them behind."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def run_script(args: list[str]) -> int:
    """Run a child script to its end; if this one is stopped meanwhile, the child is told
    to stop too (SIGTERM, so it can stop its own services) and waited for."""
    with subprocess.Popen(args) as child:
        try:
            return child.wait()
        except BaseException:
            child.terminate()
            child.wait(STOP_TIMEOUT * 2)
            raise


@contextmanager
def running(env: dict[str, str], log_dir: Path, names: Iterable[str] = ALL) -> Iterator[System]:
    """Start the named services with `env` on free ports; stop them all afterwards."""
    ports = {name: free_port() for name in names}
    env = dict(env)
    if "notifier" in ports:
        # What the gateway tells browsers (GET /api/v1/config) is this test's notifier.
        env.setdefault("PUBLIC_WS_URL", f"ws://127.0.0.1:{ports['notifier']}/ws")
    log_dir.mkdir(parents=True, exist_ok=True)
    system = System(env)
    try:
        for name, port in ports.items():
            system.services[name] = _start(SPECS[name], port, env, log_dir)
        wait_ready(system)
        yield system
    finally:
        # All told at once, then waited for: each takes a second or two to shut down.
        for service in system.services.values():
            service.terminate()
        for service in system.services.values():
            service.stop()
