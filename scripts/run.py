"""`make run`: the whole system on this machine.

Makes sure RabbitMQ answers (starting the local one when it is installed),
starts SecantusDB as the embedded MongoDB, then runs the four services under
honcho (one coloured, prefixed log stream). Ctrl-C or SIGTERM stops them all;
the data stays in `.data/`.

Set AMQP_URL, MONGODB_URL or STORAGE_URL to use servers of your own instead, and
RUN_BASE_PORT to move the four services off 8000-8003 (gateway on it, the rest after it;
the gateway's and notifier's ops ports, 8100 and 8101, move with them).
"""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from honcho.manager import Manager
from honcho.printer import Message

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
BIN = Path(sys.executable).parent
# SecantusDB with our fixes to it (scripts/secantusd.py says which): make run, tests, benches.
SECANTUSD = ROOT / "scripts" / "secantusd.py"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
MONGO_PORT = 27017
STARTUP_TIMEOUT = 90.0


@dataclass(frozen=True)
class Service:
    name: str
    app: str
    port: int
    extra_args: tuple[str, ...] = ()
    # /metrics and /readyz with detail (OPS_PORT, common/ops.py); the workers serve them on
    # their one port.
    ops_port: int | None = None

    def command(self) -> str:
        args = [str(BIN / "uvicorn"), self.app, "--host", "127.0.0.1", "--port", str(self.port)]
        return "exec " + shlex.join([*args, *self.extra_args])

    def env(self) -> dict[str, str]:
        return {"OPS_PORT": str(self.ops_port)} if self.ops_port else {}

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.ops_port) if self.ops_port else (self.port,)


SERVICES = (
    # The gateway and the notifier believe X-Forwarded-For only from TRUSTED_PROXIES
    # (common.client_ip, docs/security.md): uvicorn must not rewrite the peer before them.
    Service("gateway", "gateway.main:app", 8000, ("--no-proxy-headers",), ops_port=8100),
    Service(
        "notifier",
        "notifier.main:app",
        8001,
        ("--no-proxy-headers", "--ws-per-message-deflate", "false", "--ws-max-size", "65536"),
        ops_port=8101,
    ),
    Service("prompt", "prompt.main:app", 8002),
    Service("video", "video.main:app", 8003),
)


class Abort(Exception):
    """A reason not to start, said to the user as it is."""


def services_on(base_port: str) -> tuple[Service, ...]:
    """The services with the gateway on `base_port` and the others on the ports after it."""
    if not base_port.isdigit() or not 1024 <= int(base_port) <= 65434:
        raise Abort(f"RUN_BASE_PORT must be a port number from 1024 to 65434, not {base_port!r}")
    shift = int(base_port) - SERVICES[0].port
    return tuple(
        replace(s, port=s.port + shift, ops_port=s.ops_port and s.ops_port + shift)
        for s in SERVICES
    )


def say(message: str) -> None:
    print(f"run: {message}", flush=True)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check, timeout: float, interval: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def ensure_rabbitmq() -> str:
    if url := os.environ.get("AMQP_URL"):
        return url
    if port_open("127.0.0.1", 5672):
        return LOCAL_AMQP_URL
    if not shutil.which("rabbitmq-server"):
        raise Abort(
            "RabbitMQ does not answer on 127.0.0.1:5672 and is not installed.\n"
            "  Install it (Debian/Ubuntu: `sudo apt-get install rabbitmq-server`, "
            "macOS: `brew install rabbitmq`),\n"
            "  or point at a broker of yours: AMQP_URL=amqp://user:password@host:5672/ make run"
        )
    say("starting RabbitMQ (rabbitmq-server -detached); it keeps running after this stops")
    subprocess.run(["rabbitmq-server", "-detached"], check=False)
    if not wait_until(lambda: port_open("127.0.0.1", 5672), 90):
        raise Abort("RabbitMQ was started but does not answer on 127.0.0.1:5672 after 90s")
    return LOCAL_AMQP_URL


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def embedded_mongodb() -> Iterator[str]:
    """SecantusDB on 127.0.0.1:27017 with its files in .data/mongo, unless MONGODB_URL is set."""
    if url := os.environ.get("MONGODB_URL"):
        yield url
        return
    pidfile = DATA / "mongo.pid"
    if port_open("127.0.0.1", MONGO_PORT):
        raise Abort(
            f"port {MONGO_PORT} is taken by another program"
            + (
                f" (maybe a SecantusDB left over from an earlier run: pid {pidfile.read_text()})"
                if pidfile.exists()
                else ""
            )
            + ".\n  Stop it, or if it is a MongoDB you want to use: "
            f"MONGODB_URL=mongodb://127.0.0.1:{MONGO_PORT}/ make run"
        )
    (DATA / "mongo").mkdir(parents=True, exist_ok=True)
    log_path = DATA / "mongo.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(SECANTUSD),
                "--host",
                "127.0.0.1",
                "--port",
                str(MONGO_PORT),
                "--storage-path",
                str(DATA / "mongo"),
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches the services first, the database stops last.
            start_new_session=True,
        )
    pidfile.write_text(str(process.pid))
    try:
        up = wait_until(
            lambda: process.poll() is not None or port_open("127.0.0.1", MONGO_PORT), 60
        )
        if process.poll() is not None or not up:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            raise Abort(f"SecantusDB did not start (log: {log_path}):\n{tail}")
        say(f"SecantusDB (embedded MongoDB) on 127.0.0.1:{MONGO_PORT}, data in .data/mongo")
        yield f"mongodb://127.0.0.1:{MONGO_PORT}/"
    finally:
        stop(process)
        pidfile.unlink(missing_ok=True)


def storage_url() -> str:
    """The same absolute folder for every process, whatever their working directory."""
    url = os.environ.get("STORAGE_URL", "file://.data/objects")
    if not url.startswith("file://"):
        return url
    path = Path(url.removeprefix("file://")).expanduser()
    return f"file://{(ROOT / path).resolve()}"


def service_env(amqp_url: str, mongodb_url: str, notifier: Service) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AMQP_URL=amqp_url, MONGODB_URL=mongodb_url, STORAGE_URL=storage_url())
    env.setdefault("LOG_FORMAT", "text")
    env.setdefault("PUBLIC_WS_URL", f"ws://localhost:{notifier.port}/ws")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def check_ports_free(services: tuple[Service, ...]) -> None:
    taken = [
        f"{s.name} ({port})" for s in services for port in s.ports if port_open("127.0.0.1", port)
    ]
    if taken:
        raise Abort(
            f"ports already in use: {', '.join(taken)}. Is `make run` running already?\n"
            "  Or move the services: RUN_BASE_PORT=9000 make run"
        )


def healthy(service: Service) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{service.port}/healthz", timeout=2
        ) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def announce_when_healthy(
    manager: Manager, stopping: threading.Event, services: tuple[Service, ...]
) -> None:
    """Tell the user where to go once every service answers /healthz."""

    def line(text: str) -> None:
        manager.events.put(Message("line", text + "\n", datetime.now(), "run", None))

    pending = list(services)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while pending and not stopping.is_set() and time.monotonic() < deadline:
        pending = [s for s in pending if not healthy(s)]
        stopping.wait(0.3)
    if stopping.is_set():
        return
    if pending:
        names = ", ".join(s.name for s in pending)
        line(f"still no answer on /healthz from {names} after {STARTUP_TIMEOUT:.0f}s")
        return
    line("all four services answer /healthz")
    url = f"http://localhost:{services[0].port}"
    line(f"Open {url}   (Ctrl-C stops everything; data stays in .data/)")
    if not os.environ.get("SMTP_HOST"):
        line(
            "Sign-in codes: no SMTP_HOST is set, so the gateway prints each code in its log "
            "above (a `gateway | ... sign-in code for <email>: <code>` line)"
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Until honcho takes over the signals, SIGTERM unwinds like Ctrl-C (stopping the database).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        services = services_on(os.environ.get("RUN_BASE_PORT", str(SERVICES[0].port)))
        check_ports_free(services)
        amqp_url = ensure_rabbitmq()
        with embedded_mongodb() as mongodb_url:
            env = service_env(amqp_url, mongodb_url, services[1])
            say(
                f"broker {urlparse(amqp_url).hostname}:{urlparse(amqp_url).port or 5672}, "
                f"storage {env['STORAGE_URL']}"
            )
            manager = Manager()
            for service in services:
                manager.add_process(
                    service.name, service.command(), env={**env, **service.env()}, cwd=str(ROOT)
                )
            stopping = threading.Event()
            watcher = threading.Thread(
                target=announce_when_healthy, args=(manager, stopping, services), daemon=True
            )
            watcher.start()
            try:
                manager.loop()  # returns once every service has stopped
            finally:
                stopping.set()
            requested = manager.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM)
            say("stopped" if requested else f"a service stopped (rc={manager.returncode})")
            return 0 if requested else int(manager.returncode or 1)
    except Abort as e:
        say(str(e))
        return 1
    except KeyboardInterrupt:
        say("stopped before everything had started")
        return 0


if __name__ == "__main__":
    sys.exit(main())
