"""Fixtures shared by every test: the real backing services and settings that
isolate one test session (its own queue prefix, database and storage)."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from common.settings import CommonSettings
from tests.support import backends, mail
from tests.support.fake_openrouter import FakeOpenRouter

# Every settings object and service process of the tests dead-letters at-most-once: see
# `amqp_dead_letter_strategy` in common/settings.py for why.
os.environ.setdefault("AMQP_DEAD_LETTER_STRATEGY", "at-most-once")

FAULTS = "tests/faults/"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs the suite on several processes (pytest-xdist, `--dist loadgroup`):
    each test file is one unit of work (its module fixtures set up once, its tests in
    order), and the fault suite is one unit, handed out first, its scenarios one after
    another: each runs a whole system and measures its recovery, and on two cores two at
    once (seen in a run) starve each other past their deadlines."""
    for item in items:
        group = "faults" if item.nodeid.startswith(FAULTS) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: not item.nodeid.startswith(FAULTS))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures of every fault scenario that ran, passed or failed (tests/faults puts
    them on the scenario's report, which reaches this process from any test process)."""
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    lines = [
        value
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "fault_figures"
    ]
    if lines:
        terminalreporter.section("fault injection: figures")
        for line in lines:
            terminalreporter.line(line)


@pytest.fixture(scope="session")
def session_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with backends.rabbitmq() as url:
        yield url


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backends.mongodb(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    with backends.s3_server() as env:
        yield env


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[mail.MailSink]:
    """A real SMTP server that every gateway under test sends its sign-in codes to."""
    yield mail.shared_sink()
    mail.stop_shared_sink()


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    """A fake OpenRouter (chat and video API) speaking its HTTP protocol; scripted per test."""
    with FakeOpenRouter.running() as server:
        yield server


# Free-tier limits and paid-clip caps no test suite reaches unless it sets its own (tests
# of the limits do).
UNLIMITED = {
    name: "100000"
    for name in (
        "FREE_JOBS_PER_IP",
        "FREE_JOBS_PER_EMAIL",
        "FREE_RUNNING_JOBS_PER_EMAIL",
        "FREE_CODES_PER_IP",
        "FREE_CODES_PER_EMAIL",
        "FREE_VERIFIES_PER_IP",
        "REFUSED_PHOTOS_PER_EMAIL",
        "PAID_CLIPS_PER_USER_PER_DAY",
    )
}


@pytest.fixture
def service_env(
    amqp_url: str, mongodb_url: str, tmp_path: Path, mail_sink: mail.MailSink
) -> Iterator[dict[str, str]]:
    """Environment for services under test: a fresh prefix, database and folder per test."""
    run = uuid.uuid4().hex[:8]
    env = {
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": f"test.{run}.",
        "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": f"pv_test_{run}",
        "STORAGE_URL": f"file://{tmp_path / 'objects'}",
        "SIGNING_KEY": f"test-signing-key-{run}",
        "LOG_FORMAT": "text",
        "RETRY_DELAYS": "[1,2,3]",
        "AMQP_QUEUE_EXPIRES_SECONDS": "900",
        # Sign-in codes go to the test's SMTP server, where the test helpers read them.
        **mail_sink.env,
        **UNLIMITED,
    }
    yield env
    backends.delete_topology(env)


@pytest.fixture
def settings(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CommonSettings:
    for key, value in service_env.items():
        monkeypatch.setenv(key, value)
    return CommonSettings()


@pytest.fixture
async def mongo_db(settings: CommonSettings) -> AsyncIterator[object]:
    from common import db

    client, database = db.connect(settings)
    await db.ensure_indexes(database)
    yield database
    await client.drop_database(settings.mongodb_database)
    await client.close()
