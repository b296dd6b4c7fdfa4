"""The account page in a real browser (Chromium driven by Playwright) against the real
gateway and notifier: a shop owner makes an API key and uses it, revokes it; adds a
webhook endpoint, sees a delivery arrive and redelivers it; disables the endpoint; lists
the sessions and signs out everywhere."""

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from standardwebhooks import Webhook

from common.db import connect
from common.jobs import JobRepository
from common.messaging import Publishers, make_broker
from common.pipeline import Pipeline
from common.settings import CommonSettings
from common.topology import Topology
from tests.conftest import _run
from tests.support import client as user
from tests.support import processes
from tests.support.browser import chromium_executable
from tests.support.finished_jobs import complete_job
from tests.support.receiver import Receiver

WEBHOOK_ENV = {
    "OUTBOUND_ALLOW_PRIVATE": "true",  # the receiver listens on loopback
    "WEBHOOK_POLL_SECONDS": "0.5",
}


@pytest.fixture
def account_system(
    request: pytest.FixtureRequest, system_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.System]:
    yield from _run(
        request, {**system_env, **WEBHOOK_ENV}, tmp_path / "logs", ("gateway", "notifier")
    )


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(
            executable_path=chromium_executable(), args=["--no-sandbox"]
        )
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(30_000)
        yield page
        await browser.close()


async def test_the_account_page_manages_keys_webhooks_and_sessions(
    account_system: processes.System, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = account_system
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        email = user.new_email()
        token = await user.sign_in(api, email)
        # Signed in as the main page leaves it, then to the account page by its link.
        await page.goto(system.gateway.url)
        await page.evaluate(
            "([token, email]) => localStorage.setItem('productVideos.session',"
            " JSON.stringify({token, email}))",
            [token, email],
        )
        await page.reload()
        await page.click("text=Account")
        await expect(page.locator("#account-email")).to_have_text(email)

        # An API key: shown once, works, listed without its secret, revoked.
        await page.fill("#key-name", "Shop sync")
        await page.click("#key-create")
        await expect(page.locator("#new-key-value")).to_have_text(re.compile(r"^pv_live_"))
        key = await page.locator("#new-key-value").text_content()
        assert key and key.startswith("pv_live_")
        row = page.locator("#keys-list tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("Shop sync")
        await expect(row).to_contain_text("jobs:read, jobs:write")
        assert key not in await page.locator("#keys-table").inner_text()
        assert (await api.get("/api/v1/jobs", headers=user.auth(key))).status_code == 200
        await row.get_by_role("button", name="Revoke").click()
        await expect(page.locator("#no-keys")).to_be_visible()
        assert (await api.get("/api/v1/jobs", headers=user.auth(key))).status_code == 401

        async with Receiver() as receiver:
            # A webhook endpoint: its secret shown once; a finished job is delivered.
            await page.fill("#endpoint-url", f"{receiver.url}/hooks")
            await page.click("#endpoint-create")
            await expect(page.locator("#new-secret-value")).to_have_text(re.compile(r"^whsec_"))
            secret = await page.locator("#new-secret-value").text_content()
            assert secret and secret.startswith("whsec_")
            endpoint = page.locator("#endpoints-list li")
            await expect(endpoint).to_contain_text(f"{receiver.url}/hooks")
            await expect(endpoint.locator(".state")).to_have_text("Enabled")

            job_id = await finish_a_job(system, email, monkeypatch)
            [request] = await receiver.wait_for(1)
            assert Webhook(secret).verify(request.body, request.headers)["data"]["id"] == job_id

            await endpoint.get_by_role("button", name="Deliveries").click()
            delivery = page.locator("#deliveries-list tr")
            await expect(delivery).to_contain_text(job_id)
            for _ in range(20):  # the answer is recorded just after the receiver has it
                if await delivery.locator(".status").text_content() == "delivered":
                    break
                await page.click("#deliveries-refresh")
            await expect(delivery.locator(".status")).to_have_text("delivered")
            await delivery.get_by_role("button", name="Redeliver").click()
            await receiver.wait_for(2)
            assert receiver.received[1].headers["webhook-id"] == request.headers["webhook-id"]

            await endpoint.get_by_role("button", name="Disable").click()
            await expect(endpoint.locator(".state")).to_contain_text("Disabled")

        # Sessions: this browser's is listed; signing out everywhere ends it.
        await expect(page.locator("#sessions-list li")).to_contain_text("this browser")
        await page.click("#sign-out-everywhere")
        await expect(page.locator("#signin")).to_be_visible()
        assert (await api.get("/api/v1/auth/me", headers=user.auth(token))).status_code == 401
    assert problems == []


async def finish_a_job(
    system: processes.System, owner: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A job of the owner completes, as the video worker completes one."""
    for name, value in system.env.items():
        monkeypatch.setenv(name, value)
    settings = CommonSettings()
    broker = make_broker(settings)
    publishers = Publishers(broker, Topology(settings))
    client, db = connect(settings)
    await broker.start()
    try:
        repo = JobRepository(db)
        return await complete_job(repo, Pipeline(repo, publishers), owner)
    finally:
        await broker.stop()
        await client.close()
