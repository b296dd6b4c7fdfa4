"""Free-tier limits through a real gateway process: the per-email and per-IP
counts trigger at their configured numbers, reset when their window ends, and a
spoofed X-Forwarded-For from an untrusted peer changes nothing."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from tests.support import client as user
from tests.support import processes

pytestmark = pytest.mark.timeout(120)

WINDOW = 6


@pytest.fixture
def limited(system_env: dict[str, str], tmp_path: Path) -> Iterator[processes.System]:
    env = {
        **system_env,
        "FREE_WINDOW_SECONDS": str(WINDOW),
        "FREE_JOBS_PER_EMAIL": "2",
        "FREE_JOBS_PER_IP": "3",
    }
    try:
        with processes.running(env, tmp_path / "logs", ("gateway",)) as system:
            yield system
    finally:
        with MongoClient[dict[str, object]](env["MONGODB_URL"]) as client:
            client.drop_database(env["MONGODB_DATABASE"])


async def early_in_a_window() -> None:
    """Start at the beginning of a window, so the test's requests share one."""
    await asyncio.sleep(WINDOW - time.time() % WINDOW + 0.05)


async def submit_as(api: httpx.AsyncClient, session: str, spoofed: str) -> httpx.Response:
    return await user.submit(
        api,
        user.product_photo(seed=3, size=(400, 300)),
        headers={**user.auth(session), "X-Forwarded-For": spoofed},
    )


async def test_email_and_ip_limits_trigger_and_reset(limited: processes.System) -> None:
    async with httpx.AsyncClient(base_url=limited.gateway.url, timeout=30) as api:
        alice, bob = await user.sign_in(api), await user.sign_in(api)
        await early_in_a_window()
        # Each request claims another address: from an untrusted peer that counts for nothing.
        assert (await submit_as(api, alice, "203.0.113.1")).status_code == 202
        assert (await submit_as(api, alice, "203.0.113.2")).status_code == 202
        over = await submit_as(api, alice, "203.0.113.3")
        assert over.status_code == 429, over.text
        error = over.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["details"]["limit"] == "jobs_per_email" and error["details"]["max"] == 2
        assert 1 <= int(over.headers["retry-after"]) <= WINDOW

        assert (await submit_as(api, bob, "198.51.100.1")).status_code == 202
        by_ip = await submit_as(api, bob, "198.51.100.2")  # the 4th job from 127.0.0.1
        assert by_ip.status_code == 429, by_ip.text
        assert by_ip.json()["error"]["details"]["limit"] == "jobs_per_ip"

        # When the window ends, Alice may submit again.
        async def accepted() -> bool:
            response = await submit_as(api, alice, "203.0.113.4")
            return response.status_code == 202

        await user.wait_for(
            accepted, within=WINDOW + 3, interval=0.5, what="the limit to reset with its window"
        )
