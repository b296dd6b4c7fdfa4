"""An upload refused before its body is read (401 without a session, 413 over the limit)
still reaches the client as the JSON error: the gateway reads and discards the rest of
the body before it answers, so closing never resets a connection the client is still
writing to. Every kind of client a user has: httpx (async and sync), curl (with and
without `Expect: 100-continue`) and Chromium's `fetch`, with photos from 1 KB to the
upload limit, against a real uvicorn process."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright

from services.gateway.tests.support import MIB
from tests.support import client as user
from tests.support.browser import chromium_executable
from tests.support.processes import System

pytestmark = pytest.mark.timeout(300)

LIMIT = 20 * MIB  # MAX_UPLOAD_BYTES' default
JOBS = f"{user.API}/jobs"
FIELDS = {"title": "Red mug", "description": "A sturdy red mug."}
# (what the client gets, or why it did not get it)
Outcome = tuple[int, dict[str, Any]] | str
Client = Callable[["Photo", dict[str, str]], Awaitable[Outcome]]


@dataclass(frozen=True)
class Photo:
    """The upload's bytes, also in a file (for curl)."""

    path: Path
    data: bytes


async def _httpx_async(base: str, photo: Photo, headers: dict[str, str]) -> Outcome:
    async with httpx.AsyncClient(base_url=base, timeout=60) as api:
        try:
            files = {"image": ("photo.jpg", photo.data, "image/jpeg")}
            response = await api.post(JOBS, data=FIELDS, files=files, headers=headers)
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"
    return response.status_code, response.json()


def _httpx_sync(base: str, photo: Photo, headers: dict[str, str]) -> Outcome:
    with httpx.Client(base_url=base, timeout=60) as api:
        try:
            files = {"image": ("photo.jpg", photo.data, "image/jpeg")}
            response = api.post(JOBS, data=FIELDS, files=files, headers=headers)
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"
    return response.status_code, response.json()


async def _curl(
    base: str, photo: Photo, headers: dict[str, str], *, expect: bool = True
) -> Outcome:
    args = ["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if not expect:  # send the body at once instead of waiting for "100 Continue"
        args += ["-H", "Expect:"]
    for name, value in FIELDS.items():
        args += ["-F", f"{name}={value}"]
    args += ["-F", f"image=@{photo.path};type=image/jpeg", f"{base}{JOBS}"]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    body, _, status = out.decode().rpartition("\n")
    if process.returncode != 0 or not body:
        return f"curl exited {process.returncode}: {err.decode().strip()}"
    return int(status), json.loads(body)


_FETCH = """async ([size, headers, fields]) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("image", new Blob([new Uint8Array(size)], {type: "image/jpeg"}), "photo.jpg");
    try {
        const response = await fetch("/api/v1/jobs", {method: "POST", body: form, headers});
        return [response.status, await response.json()];
    } catch (e) {
        return String(e);
    }
}"""


async def _fetch(page: Page, photo: Photo, headers: dict[str, str]) -> Outcome:
    result = await page.evaluate(_FETCH, [len(photo.data), headers, FIELDS])
    return result if isinstance(result, str) else (result[0], result[1])


@pytest.fixture
async def chromium_page(gateway_only: System) -> AsyncIterator[Page]:
    """A page of the web client, as the test of the web client starts Chromium."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_executable(), args=["--no-sandbox"]
        )
        page = await browser.new_page()
        await page.goto(gateway_only.gateway.url)
        yield page
        await browser.close()


def _clients(base: str, page: Page) -> dict[str, Client]:
    return {
        "httpx async": lambda photo, headers: _httpx_async(base, photo, headers),
        "httpx sync": lambda photo, headers: asyncio.to_thread(_httpx_sync, base, photo, headers),
        "curl": lambda photo, headers: _curl(base, photo, headers),
        "curl without Expect": lambda photo, headers: _curl(base, photo, headers, expect=False),
        "Chromium fetch": lambda photo, headers: _fetch(page, photo, headers),
    }


async def test_every_client_reads_an_early_refusal(
    gateway_only: System, chromium_page: Page, tmp_path: Path
) -> None:
    base = gateway_only.gateway.url
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        session = await user.sign_in(api)
    cases: list[tuple[str, int, dict[str, str], int, str]] = [
        ("no session", size, {}, 401, "unauthorized") for size in (1024, 70 * 1024, MIB, LIMIT)
    ]
    # Over the limit by the size of a typical photo: refused from Content-Length alone.
    cases.append(("over the limit", LIMIT + 2 * MIB, user.auth(session), 413, "upload_too_large"))

    failures = []
    for what, size, headers, status, code in cases:
        photo = Photo(tmp_path / f"photo-{size}.jpg", b"\xff\xd8\xff" + bytes(size - 3))
        photo.path.write_bytes(photo.data)
        for name, send in _clients(base, chromium_page).items():
            outcome = await send(photo, headers)
            if isinstance(outcome, str) or outcome[0] != status:
                failures.append(f"{name}, {what}, {size:,} bytes: {outcome}")
            elif outcome[1]["error"]["code"] != code:
                failures.append(f"{name}, {what}, {size:,} bytes: {outcome[1]}")
    assert failures == [], "\n".join(failures)
