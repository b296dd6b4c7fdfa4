"""The account page in a real browser (Chromium driven by Playwright) against the real
gateway and notifier: a shop owner makes an API key and uses it; adds a webhook endpoint
(and a second with a long URL), sees a delivery arrive; on a phone every table fits the
screen and the key's Revoke, the URL, the delivery's status and Redeliver are on it, on a
desktop the tables stay tables; redelivers, disables the endpoint, revokes the key; lists
the sessions (two) and signs out everywhere. Screenshots at phone and desktop widths
(WEB_SCREENSHOTS=folder keeps them)."""

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect
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
from tests.test_catalogue_page import no_sideways_scroll, on_one_line, on_screen
from tests.test_web_client import DESKTOP, NARROW, PHONE, screenshots

WEBHOOK_ENV = {
    "OUTBOUND_ALLOW_PRIVATE": "true",  # the receiver listens on loopback
    "WEBHOOK_POLL_SECONDS": "0.5",
}

# An endpoint only ever sent batch.completed here: the URL is there to be long.
LONG_URL = (
    "https://localhost/integrations/product-videos/webhooks/"
    "shop-7f3c2a91-4b1e-4d8a-9c55-2e6b0f1a3d77/receive?source=account-page&version=2025-01"
)


@pytest.fixture
def account_system(
    request: pytest.FixtureRequest, system_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.System]:
    yield from _run(
        request, {**system_env, **WEBHOOK_ENV}, tmp_path / "logs", ("gateway", "notifier")
    )


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: WEB_SCREENSHOTS=folder keeps them for a look."""
    folder = Path(os.environ.get("WEB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
    account_system: processes.System,
    page: Page,
    monkeypatch: pytest.MonkeyPatch,
    shots: Path,
) -> None:
    system = account_system
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    async with httpx.AsyncClient(base_url=system.gateway.url, timeout=30) as api:
        email = user.new_email()
        token = await user.sign_in(api, email)
        await user.sign_in(api, email)  # signed in elsewhere too: two sessions
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

            # A second endpoint with a long URL (for batches only, so nothing is sent to it).
            await page.fill("#endpoint-url", LONG_URL)
            for event in ("job.completed", "job.failed", "batch.completed"):
                await page.locator(f'input[name="event"][value="{event}"]').set_checked(
                    event == "batch.completed"
                )
            await page.click("#endpoint-create")
            await expect(endpoint).to_have_count(2)
            await expect(page.locator("#sessions-list li")).to_have_count(2)
            await the_page_fits_a_phone(page, LONG_URL)
            await screenshots(page, shots, "account")

            await delivery.get_by_role("button", name="Redeliver").click()
            await receiver.wait_for(2)
            assert receiver.received[1].headers["webhook-id"] == request.headers["webhook-id"]

            first = endpoint.filter(has_text=f"{receiver.url}/hooks")
            await first.get_by_role("button", name="Disable").click()
            await expect(first.locator(".state")).to_contain_text("Disabled")

        await row.get_by_role("button", name="Revoke").click()
        await expect(page.locator("#no-keys")).to_be_visible()
        assert (await api.get("/api/v1/jobs", headers=user.auth(key))).status_code == 401

        # Sessions: this browser's is listed; signing out everywhere ends it.
        await expect(page.locator("#sessions-list li", has_text="(this browser)")).to_have_count(1)
        await page.click("#sign-out-everywhere")
        await expect(page.locator("#signin")).to_be_visible()
        assert (await api.get("/api/v1/auth/me", headers=user.auth(token))).status_code == 401
    assert problems == []


async def the_page_fits_a_phone(page: Page, long_url: str) -> None:
    """At 390 and 600 px no card or table scrolls sideways, and what a user acts on or reads (the
    key's Revoke, an endpoint's URL and buttons, a delivery's status and Redeliver) is whole
    on screen, a button's label or the status not broken mid-word as in a squeezed column; at
    1280 px the tables are still tables, a row on one line, its words whole."""
    key = page.locator("#keys-list tr")
    endpoint = page.locator("#endpoints-list li").filter(has_text=long_url)
    delivery = page.locator("#deliveries-list tr")
    for size in (PHONE, NARROW):
        await fits(page, size["width"], key, endpoint, delivery, long_url)
    await page.set_viewport_size(DESKTOP)
    await expect(page.locator("#keys-table thead")).to_be_visible()
    await on_one_line(key)
    await on_one_line(delivery)
    # The deliveries' six columns keep their words whole on a desktop too.
    for word in (
        delivery.locator("td").first,  # job.completed
        delivery.locator(".status"),
        delivery.get_by_role("button", name="Redeliver"),
        page.locator("#deliveries-table th").filter(has_text="Status"),
        page.locator("#deliveries-table th").filter(has_text="Attempts"),
    ):
        await on_one_text_line(word)


async def fits(
    page: Page, width: int, key: Locator, endpoint: Locator, delivery: Locator, long_url: str
) -> None:
    await page.set_viewport_size({"width": width, "height": 900})
    for name in ("API keys", "Webhooks", "Deliveries to", "Sessions"):
        await no_sideways_scroll(page.get_by_role("region", name=re.compile(f"^{name}")))
    for table in await page.locator("table.list").all():
        await no_sideways_scroll(table)
    await on_screen(key.get_by_role("button", name="Revoke"), width)
    await on_screen(key.get_by_text("Shop sync"), width)
    await on_screen(endpoint.get_by_text(long_url), width)
    await no_sideways_scroll(endpoint.get_by_text(long_url))  # wrapped, not cut off
    for action in ("Deliveries", "Disable", "Rotate secret", "Delete"):
        await on_screen(endpoint.get_by_role("button", name=action), width)
    await on_screen(delivery.locator(".status"), width)
    await on_screen(delivery.get_by_role("button", name="Redeliver"), width)
    for word in (
        key.get_by_role("button", name="Revoke"),
        delivery.locator(".status"),
        delivery.get_by_role("button", name="Redeliver"),
    ):
        await on_one_text_line(word)
    await on_screen(page.locator("#sessions-list li").first, width)


async def on_one_text_line(item: Locator) -> None:
    """Its text on one line: a word squeezed into a narrow column breaks mid-word."""
    lines = await item.evaluate(
        "e => { const r = document.createRange(); r.selectNodeContents(e);"
        " return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size }"
    )
    text = await item.text_content()
    assert lines == 1, f"{text!r} on {lines} lines"


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
