"""The catalogue page in a real browser (Chromium driven by Playwright) against the four
real services (local renderer, template prompts): a shop owner signs in, picks a CSV and a
photos zip with one bad row and sees the problem beside that row, nothing sent; fixes it,
reads the quote, sends (a double click makes one batch), watches every video complete in the
live table, downloads the CSV export; then cancels a second batch. On a phone the refused
row's reason and every video's status and links are on screen, nothing scrolls sideways; on a
desktop the tables stay tables. Screenshots at phone and desktop widths (WEB_SCREENSHOTS=folder
keeps them)."""

import csv
import io
import os
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    FilePayload,
    Locator,
    Page,
    Request,
    async_playwright,
    expect,
)
from pymongo.asynchronous.database import AsyncDatabase

from tests.support import client as user
from tests.support import processes
from tests.support.browser import chromium_executable
from tests.support.mail import MailSink
from tests.test_web_client import DESKTOP, NARROW, PHONE, screenshots

pytestmark = pytest.mark.timeout(300)


def manifest(rows: list[dict[str, str]]) -> FilePayload:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";")
    writer.writeheader()
    writer.writerows(rows)
    return FilePayload(name="products.csv", mimeType="text/csv", buffer=out.getvalue().encode())


def photos_zip(names: list[str], seed: int) -> FilePayload:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for n, name in enumerate(names):
            archive.writestr(f"shoot/{name}", user.product_photo(seed + n, size=(400, 300)))
    return FilePayload(name="photos.zip", mimeType="application/zip", buffer=buf.getvalue())


def product(n: int, image: str, title: str = "Linen tote") -> dict[str, str]:
    return {
        "sku": f"TOTE-{n}",
        "title": f"{title} {n}",
        "description": "Sturdy linen; long handles.",
        "image": image,
        "price": "19,90 €",
    }


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
        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        page.set_default_timeout(30_000)
        yield page
        await browser.close()


async def sign_in(page: Page, system: processes.System, mail_sink: MailSink) -> str:
    email = user.new_email()
    await page.goto(system.gateway.url)
    await page.fill("#email", email)
    await page.click("#email-submit")
    await page.fill("#code", await mail_sink.next_code(email, seen=0))
    await page.click("#code-submit")
    await expect(page.locator("#account-email")).to_have_text(email)
    return email


async def on_screen(item: Locator, width: int = PHONE["width"]) -> None:
    """Shown and whole within the viewport's width: read without scrolling sideways."""
    await expect(item).to_be_visible()
    box = await item.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{box} past {width} px"


async def no_sideways_scroll(region: Locator) -> None:
    overflow = await region.evaluate("e => e.scrollWidth - e.clientWidth")
    assert overflow <= 0, f"{overflow} px to scroll sideways"


async def on_one_line(row: Locator) -> None:
    """A table row as a desktop draws it: every cell side by side."""
    tops = await row.locator("th, td").evaluate_all(
        "cells => cells.map(c => Math.round(c.getBoundingClientRect().top))"
    )
    assert len(tops) > 1 and len(set(tops)) == 1, tops


async def choose_cuts(page: Page, cuts: dict[str, str]) -> None:
    """Ticks exactly the presets named, each with its length."""
    for box in await page.locator('input[name="variant"]').all():
        name = await box.get_attribute("value")
        await box.set_checked(name in cuts)
        if name in cuts:
            await page.fill(f"#length-{name}", cuts[name])


async def test_a_catalogue_is_checked_sent_followed_exported_and_cancelled(
    system: processes.System,
    page: Page,
    mail_sink: MailSink,
    database: AsyncDatabase,
    tmp_path: Path,
    shots: Path,
) -> None:
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    # The 422 of the check below is expected; nothing else may fail.
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and "status of 422" not in m.text else None
        ),
    )
    sent: list[Request] = []
    page.on(
        "request",
        lambda r: (
            sent.append(r) if r.method == "POST" and r.url.endswith("/api/v1/batches") else None
        ),
    )
    email = await sign_in(page, system, mail_sink)
    await page.click("text=Catalogue")
    await expect(page.locator("#catalogue")).to_be_visible()
    await expect(page.locator("#account-email")).to_have_text(email)

    # Row 2 names a photo the zip does not have: the problem is shown on row 2, row 1 is OK,
    # and nothing can be sent.
    await choose_cuts(page, {"reels": "3", "feed": "3"})
    await page.set_input_files("#photos", files=[photos_zip(["tote-1.jpg", "tote-2.jpg"], 80)])
    bad = [product(1, "tote-1.jpg"), product(2, "tote-9.jpg")]
    await page.set_input_files("#manifest", files=[manifest(bad)])
    rows = page.locator("#rows-list tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(1).locator(".row-check")).to_contain_text(
        "Photo: 'tote-9.jpg' is not in the photos zip."
    )
    await expect(rows.nth(1)).to_have_attribute("data-state", "bad")
    await expect(rows.nth(0).locator(".row-check")).to_have_text("OK")
    await expect(page.locator("#check-status")).to_have_text("1 problem to fix; nothing was sent.")
    await expect(page.locator("#send")).to_be_disabled()
    await expect(page.locator("#quote")).to_be_hidden()
    # On a phone the reason is read beside its row, whole, with nothing to scroll sideways.
    for size in (PHONE, NARROW):
        await page.set_viewport_size(size)
        await no_sideways_scroll(page.get_by_role("region", name="The products checked"))
        reason = rows.nth(1).get_by_text("Photo: 'tote-9.jpg' is not in the photos zip.")
        await on_screen(reason, size["width"])
        await on_screen(rows.nth(1).get_by_text("TOTE-2"), size["width"])
        await on_screen(rows.nth(0).get_by_text("OK"), size["width"])
    # On a desktop it is still a table: the headings, each row on one line.
    await page.set_viewport_size(DESKTOP)
    await expect(page.locator("#rows-table thead")).to_be_visible()
    await on_one_line(rows.nth(1))
    await screenshots(page, shots, "catalogue-bad-row")

    # Fixed: every row good, the quote (free on the local renderer), then one batch however
    # often the button is pressed.
    await page.set_input_files(
        "#manifest", files=[manifest([product(1, "tote-1.jpg"), product(2, "tote-2.jpg")])]
    )
    await expect(page.locator("#quote-summary")).to_have_text(
        "2 products × 2 cuts: 4 videos, estimated cost $0.00."
    )
    await expect(rows.locator(".row-check")).to_have_text(["OK", "OK"])
    assert sent == []
    await expect(page.locator("#send")).to_have_text("Make 4 videos")
    await page.dblclick("#send")

    # The live table: a column per cut, every job done, with its links.
    batch = page.locator("#batch")
    await expect(batch).to_be_visible()
    await expect(page.locator("#batch-head th")).to_have_text(
        ["Row", "SKU", "Title", "Instagram Reels 9:16 · 3 s", "Feed post 1:1 · 3 s"]
    )
    await expect(batch).to_have_attribute("data-status", "completed", timeout=180_000)
    await expect(page.locator("#batch-title")).to_have_text("All done")
    await expect(page.locator("#batch-summary")).to_have_text(
        "4 of 4 videos done. Spent so far: $0.00."
    )
    await expect(page.locator("#batch-progress-label")).to_have_text("4 / 4")
    await expect(page.locator("#batch-rows .job-status")).to_have_text(["Done"] * 4)
    await expect(page.locator("#batch-rows a", has_text="Video")).to_have_count(4)
    await expect(page.locator("#cancel-batch")).to_be_hidden()
    # On a phone every video's status and links are on screen, nothing scrolls sideways.
    for size in (PHONE, NARROW):
        await page.set_viewport_size(size)
        await no_sideways_scroll(page.get_by_role("region", name="The batch's videos"))
        for item in await page.locator("#batch-rows .job-status, #batch-rows a").all():
            await on_screen(item, size["width"])
    await page.set_viewport_size(DESKTOP)
    await expect(page.locator("#batch-head")).to_be_visible()
    await on_one_line(page.locator("#batch-rows tr").first)
    await screenshots(page, shots, "catalogue-batch-done")
    assert len({r.headers["idempotency-key"] for r in sent}) == 1
    batch_id = await page.locator("#batch-id").text_content()
    assert await database["batches"].count_documents({"owner": email}) == 1
    video = await page.locator("#batch-rows a", has_text="Video").first.evaluate("a => a.href")
    assert (await page.request.get(video)).ok

    # The export: one line per job, each with its clip.
    async with page.expect_download() as download_info:
        await page.click("#export")
    download = await download_info.value
    assert download.suggested_filename == f"batch-{batch_id}.csv"
    path = tmp_path / "export.csv"
    await download.save_as(path)
    lines = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert len(lines) == 4
    assert {(line["sku"], line["preset"]) for line in lines} == {
        (sku, cut) for sku in ("TOTE-1", "TOTE-2") for cut in ("reels", "feed")
    }
    assert all(line["status"] == "completed" and line["video_url"] for line in lines)

    # A second catalogue (other products, longer clips), cancelled while it runs.
    await page.click("#new-batch")
    await choose_cuts(page, {"reels": "10"})
    await page.set_input_files("#photos", files=[photos_zip(["bag-1.jpg", "bag-2.jpg"], 90)])
    await page.set_input_files(
        "#manifest",
        files=[manifest([product(n, f"bag-{n}.jpg", title="Canvas bag") for n in (1, 2)])],
    )
    await expect(page.locator("#quote-summary")).to_contain_text("2 videos")
    await page.click("#send")
    await expect(page.locator("#cancel-batch")).to_be_visible()
    await page.click("#cancel-batch")
    await expect(batch).to_have_attribute("data-status", "canceled")
    await expect(page.locator("#batch-title")).to_have_text("Canceled")
    await expect(page.locator("#cancel-batch")).to_be_hidden()
    await expect(page.locator("#batch-summary")).to_contain_text(re.compile(r"[12] canceled"))
    second = await page.locator("#batch-id").text_content()
    assert second != batch_id
    async for job in database["jobs"].find({"batch_id": second}):
        assert job["status"] in ("canceled", "completed")
    assert problems == []
