"""The whole system as real processes, tuned for fault injection, both providers on the
fake OpenRouter of the test process (see harness.py)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _run
from tests.faults.harness import FAULT_ENV, FIGURES, QUICK, REPORTED, openrouter_env
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """The figures a scenario measured ride on its report, so they reach the summary (the
    root conftest.py prints them) from whichever test process ran it."""
    report = yield
    if call.when == "call":
        while REPORTED:
            figures = REPORTED.pop(0)
            lines = [figures.line(), *(f"    failed: {f}" for f in figures.failures)]
            report.user_properties.append((FIGURES, "\n".join(lines)))
    return report
