"""A bench (or any script that starts the services through `tests.support.processes`)
stopped with SIGTERM stops the services it started: killed benches used to leave their
services, and their load, behind on the machine."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
# Starts the gateway, says its pid, then waits to be stopped.
SCRIPT = """
import json, sys, time
from pathlib import Path
from tests.support import processes
if sys.argv[3] == "handled":
    processes.exit_on_sigterm()
with processes.running(json.loads(sys.argv[1]), Path(sys.argv[2]), ("gateway",)) as system:
    print(system.gateway.process.pid, flush=True)
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def env(system_env: dict[str, str]) -> Iterator[dict[str, str]]:
    yield system_env
    with MongoClient[dict[str, object]](system_env["MONGODB_URL"]) as client:
        client.drop_database(system_env["MONGODB_DATABASE"])


def start_and_stop(env: dict[str, str], logs: Path, how: str) -> int:
    """The gateway's pid, after the script that started it was sent SIGTERM and ended."""
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(env), str(logs), how],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert script.stdout is not None
    gateway = int(script.stdout.readline())
    script.send_signal(signal.SIGTERM)
    script.wait(40)
    return gateway


def test_a_script_stopped_with_sigterm_stops_its_services(
    env: dict[str, str], tmp_path: Path
) -> None:
    gateway = start_and_stop(env, tmp_path / "logs", "handled")
    deadline = time.monotonic() + 5
    while alive(gateway) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(gateway), "the gateway outlived the script that started it"


def test_without_the_handler_the_services_are_left_behind(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Why `exit_on_sigterm` exists (and that the test above can fail)."""
    gateway = start_and_stop(env, tmp_path / "logs", "default")
    try:
        assert alive(gateway)
    finally:
        if alive(gateway):
            os.kill(gateway, signal.SIGKILL)
