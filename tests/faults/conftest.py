"""The whole system as real processes, tuned for fault injection, both providers on the
fake OpenRouter of the test process (see harness.py)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _run
from tests.faults.harness import FAULT_ENV, QUICK, REPORTED, openrouter_env
from tests.support import processes
from tests.support.fake_openrouter import FakeOpenRouter


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    """The fake OpenRouter every scenario's providers use: clips after a couple of polls."""
    with FakeOpenRouter.running() as server:
        server.video_plan = QUICK
        yield server


@pytest.fixture
def fault_env(system_env: dict[str, str], fake: FakeOpenRouter) -> dict[str, str]:
    return {**system_env, **FAULT_ENV, **openrouter_env(fake)}


@pytest.fixture
def fault_system(
    request: pytest.FixtureRequest, fault_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.System]:
    yield from _run(request, fault_env, tmp_path / "logs", processes.ALL)


@pytest.fixture
async def fault_api(fault_system: processes.System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fault_system.gateway.url, timeout=30) as client:
        yield client


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures of every fault scenario that ran, passed or failed."""
    if REPORTED:
        terminalreporter.section("fault injection: figures")
        for figures in REPORTED:
            terminalreporter.line(figures.line())
            for failure in figures.failures:
                terminalreporter.line(f"    failed: {failure}")
