"""The whole system as real processes, tuned for fault injection (see harness.py)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _run
from tests.faults.harness import FAULT_ENV, REPORTED
from tests.support import processes


@pytest.fixture
def fault_system(
    request: pytest.FixtureRequest, system_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.System]:
    yield from _run(request, {**system_env, **FAULT_ENV}, tmp_path / "logs", processes.ALL)


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
