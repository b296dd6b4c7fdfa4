"""The web client in a real browser (Chromium driven by Playwright) against the four real
services: a shop owner signs in with the emailed code, makes a video, watches it finish,
plays it, finds it again under "My videos" after a reload, and signs out."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support import client as user
from tests.support import processes
from tests.support.browser import chromium_executable
from tests.support.mail import MailSink

# Markup and right-to-left text must come back exactly as typed, never as markup.
TITLE = 'Mug <img src=x onerror="window.pwned=1"> ☕ مرحبا'


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_executable(), args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(30_000)
    yield page
    await context.close()


async def test_a_shop_owner_signs_in_makes_a_video_and_finds_it_again(
    system: processes.System, page: Page, mail_sink: MailSink
) -> None:
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            # The wrong code and the stale link below are refused on purpose.
            if m.type == "error" and not any(f"status of {n}" in m.text for n in (400, 403))
            else None
        ),
    )
    await page.goto(system.gateway.url)

    # The email step: a code goes out, a wrong one is refused, the right one signs in.
    email = user.new_email()
    await expect(page.locator("#signin")).to_be_visible()
    await page.fill("#email", email)
    await page.click("#email-submit")
    await expect(page.locator("#code-sent")).to_contain_text(email)
    code = await mail_sink.next_code(email, seen=0)
    await page.fill("#code", "000000" if code != "000000" else "111111")
    await page.click("#code-submit")
    await expect(page.locator("#signin-error")).to_contain_text("not right")
    await page.fill("#code", code)
    await page.click("#code-submit")
    await expect(page.locator("#create")).to_be_visible()
    await expect(page.locator("#account-email")).to_have_text(email)

    # A video: photo, title and description in; the steps tick by live; the clip plays.
    await page.set_input_files(
        "#image",
        files=[{"name": "mug.jpg", "mimeType": "image/jpeg", "buffer": user.product_photo(5)}],
    )
    await page.fill("#title", TITLE)
    await page.fill("#description", "Hand-glazed stoneware mug, 350 ml.")
    await page.click("#submit")
    await expect(page.locator("#watch")).to_be_visible()
    await expect(page.locator("#result")).to_be_visible(timeout=120_000)
    for step in await page.locator("#steps li").all():
        await expect(step).to_have_attribute("data-state", "done")
    await expect(page.locator("#job-title")).to_have_text(TITLE)
    await page.wait_for_function(
        "document.querySelector('#player').readyState >= 1", timeout=30_000
    )
    assert await page.evaluate("document.querySelector('#player').duration") > 1
    # Links that expire in minutes; no token in any URL.
    download = await page.get_attribute("#download", "href") or ""
    assert download.startswith("/api/v1/files/") and "download=" in download
    src = await page.evaluate("document.querySelector('#player').src")
    assert "/api/v1/files/" in src and "token=" not in src + download
    # A link gone stale (a seek long after) is replaced by a fresh one from the job.
    await page.evaluate("document.querySelector('#player').src = '/api/v1/files/expired'")
    # (Polled from here: the page's CSP forbids the eval wait_for_function polls with.)
    player = "document.querySelector('#player')"
    fresh = (
        f"{player}.src.includes('/api/v1/files/') && !{player}.src.endsWith('/expired')"
        f" && {player}.readyState >= 1"
    )
    for _ in range(300):
        if await page.evaluate(fresh):
            break
        await asyncio.sleep(0.1)
    assert await page.evaluate(fresh), await page.evaluate(f"{player}.src")

    # After a reload: still signed in, the job under "My videos", finished.
    await page.reload()
    listed = page.locator("#jobs-list li").first
    await expect(listed).to_contain_text(TITLE)
    await expect(listed).to_contain_text("Done")

    await page.click("#sign-out")
    await expect(page.locator("#signin")).to_be_visible()
    assert await page.evaluate("window.pwned === undefined"), "the title ran as markup"
    assert problems == []
