"""The web client in a real browser (Chromium driven by Playwright).

First against the four real services: a shop owner signs in with the emailed code, makes a
video from a platform preset, watches it finish, finds it again under "My videos" after a
reload, and signs out. Then every state of the job view (empty, rendering with its brief,
done with its sound, failed) from the API's documented JSON, served to the page by
Playwright, with screenshots at phone and desktop widths."""

import asyncio
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    FilePayload,
    Locator,
    Page,
    Request,
    Route,
    ViewportSize,
    WebSocketRoute,
    async_playwright,
    expect,
)

from common.media import ffmpeg_exe
from common.presets import DURATION_MAX, DURATION_MIN, PRESETS, clamp_duration
from gateway.middleware import content_security_policy
from tests.support import client as user
from tests.support import processes
from tests.support.browser import chromium_executable
from tests.support.mail import MailSink

# Markup and right-to-left text must come back exactly as typed, never as markup.
TITLE = 'Mug <img src=x onerror="window.pwned=1"> ☕ مرحبا'
WEB_DIR = Path(__file__).parents[1] / "services/gateway/src/gateway/web"
PHONE = ViewportSize(width=390, height=844)
# A big phone held sideways, or a narrow window: still too narrow for the tables' columns.
NARROW = ViewportSize(width=600, height=900)
DESKTOP = ViewportSize(width=1280, height=900)


def contract_presets() -> list[dict[str, Any]]:
    """`presets` of /api/v1/config as the issue-10 contract spells it."""
    return [
        {
            "name": p.name,
            "label": p.label,
            "aspect_ratio": p.aspect_ratio,
            "durations": {
                "min": clamp_duration(p.allowed[0]),
                "max": clamp_duration(p.allowed[1]),
                "default": p.default_duration,
            },
            "best": list(p.best),
        }
        for p in PRESETS.values()
    ]


def mug_photo(seed: int) -> FilePayload:
    return FilePayload(name="mug.jpg", mimeType="image/jpeg", buffer=user.product_photo(seed))


def form_fields(request: Request) -> dict[str, str]:
    """The text fields of a multipart request (the photo left out)."""
    body = request.post_data_buffer or b""
    found = re.findall(rb'name="([a-z_]+)"\r\n\r\n(.*?)\r\n--', body, re.S)
    return {name.decode(): value.decode() for name, value in found}


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the module; each test gets a fresh context (storage, routes)."""
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


def preset(page: Page, name: str) -> Locator:
    """The platform card of a preset (its label reads "TikTok 9:16 · 9–15 s")."""
    return page.locator(f'#presets input[value="{name}"]')


async def until(element: Locator, condition: str) -> None:
    """Waits (30 s at most) until `condition`, a JavaScript expression of the element `p`,
    holds. (page.wait_for_function compiles a string in the page, which its CSP forbids.)"""
    poll = (
        "p => new Promise(done => { const check = () => "
        f"({condition}) ? done() : setTimeout(check, 100); check(); }})"
    )
    async with asyncio.timeout(30):
        await element.evaluate(poll)


def watch_for_problems(page: Page, allowed: Callable[[str], bool] = lambda _: False) -> list[str]:
    """Script errors and console errors (CSP violations among them) the page reports."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and not allowed(m.text) else None,
    )
    return problems


async def with_presets(route: Route) -> None:
    """/api/v1/config as the server answers, with the contract's presets if it has none yet."""
    response = await route.fetch()
    config = await response.json()
    config.setdefault("presets", contract_presets())
    config.setdefault("cta_max_length", 40)
    config.setdefault("price_max_length", 20)
    await route.fulfill(response=response, json=config)


async def test_a_shop_owner_signs_in_makes_a_video_and_finds_it_again(
    system: processes.System, page: Page, mail_sink: MailSink
) -> None:
    # The wrong code and the stale link below are refused on purpose.
    problems = watch_for_problems(
        page, lambda text: any(f"status of {n}" in text for n in (400, 403))
    )
    await page.route("**/api/v1/config", with_presets)
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

    # A video for a feed post: the preset chooses the square ratio, no raw ratio shown.
    await page.set_input_files("#image", files=[mug_photo(5)])
    await page.fill("#title", TITLE)
    await page.fill("#description", "Hand-glazed stoneware mug, 350 ml.")
    await preset(page, "feed").check()
    await expect(page.locator("#ratio-field")).to_be_hidden()
    await page.fill("#cta", "Order yours")
    async with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/v1/jobs")
    ) as posted:
        await page.click("#submit")
    sent = form_fields(await posted.value)
    assert sent["preset"] == "feed" and sent["aspect_ratio"] == "1:1"
    assert sent["duration"] == str(PRESETS["feed"].default_duration)
    assert sent["cta"] == "Order yours" and "price" not in sent
    assert (sent["music"], sent["captions"], sent["finish"]) == ("on", "on", "true")

    # The steps tick by live; the clip plays, square, with the player's own controls and sound.
    await expect(page.locator("#watch")).to_be_visible()
    await expect(page.locator("#result")).to_be_visible(timeout=120_000)
    for step in await page.locator("#steps li").all():
        await expect(step).to_have_attribute("data-state", "done")
    await expect(page.locator("#job-title")).to_have_text(TITLE)
    player = page.locator("#player")
    await expect(player).to_have_attribute("controls", "")
    await until(player, "p.readyState >= 1")
    size = await player.evaluate("p => [p.videoWidth, p.videoHeight, p.duration, p.muted]")
    assert size[0] == size[1] and size[2] > 1 and size[3] is False
    # Links that expire in minutes; no token in any URL.
    download = await page.get_attribute("#download", "href") or ""
    assert download.startswith("/api/v1/files/") and "download=" in download
    src = await player.evaluate("p => p.src")
    assert "/api/v1/files/" in src and "token=" not in src + download
    # A link gone stale (a seek long after) is replaced by a fresh one from the job.
    await player.evaluate("p => { p.src = '/api/v1/files/expired'; }")
    await until(
        player,
        "p.src.includes('/api/v1/files/') && !p.src.endsWith('/expired') && p.readyState >= 1",
    )

    # After a reload: still signed in, the job under "My videos", finished.
    await page.reload()
    listed = page.locator("#jobs-list li").first
    await expect(listed).to_contain_text(TITLE)
    await expect(listed).to_contain_text("Done")

    await page.click("#sign-out")
    await expect(page.locator("#signin")).to_be_visible()
    assert await page.evaluate("window.pwned === undefined"), "the title ran as markup"
    assert problems == []


# ---------- every state of the job view, from the API's JSON ----------

ORIGIN = "http://client.test"
WS_URL = "ws://client.test/ws"
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
BRIEF: dict[str, Any] = {
    "hook": "Coffee tastes better in stoneware",
    "benefits": ["Hand-glazed in small batches", "Holds 350 ml", "Dishwasher safe"],
    "cta": "Order yours",
    "price": "€24",
    "palette": ["#1f3a5f", "#f2c14e", "#e9e4d8"],
    "mood": "calm",
    "shots": [{"kind": "detail", "caption": "hook"}, {"kind": "end_card"}],
}
NOTE = "Instagram Reels ads do best at 5-15 s; made 4 s (clips are 3-10 s long)"


def job_view(job_id: str, status: str, seq: int, **extra: Any) -> dict[str, Any]:
    """A job as `GET /api/v1/jobs/{id}` shows it (common.views.public_job + the contract)."""
    steps = ["queued", "prompting", "prompt_ready", "generating", "storing", "completed"]
    reached = steps[: steps.index(status) + 1] if status in steps else [*steps[:4], status]
    return {
        "id": job_id,
        "status": status,
        "progress": {"queued": 0, "generating": 55, "completed": 100}.get(status, 40),
        "seq": seq,
        "title": "Stoneware mug",
        "description": "Hand-glazed stoneware mug, 350 ml. Dishwasher safe.",
        "options": {"aspect_ratio": "9:16", "duration": 4, "style": None, "preset": "reels"},
        "image": {"width": 800, "height": 600, "content_type": "image/jpeg"},
        "attempts": 1,
        "created_at": "2026-12-07T08:00:00+00:00",
        "updated_at": "2026-12-07T08:01:00+00:00",
        "history": [
            {"seq": i + 1, "status": s, "progress": 0, "at": "2026-12-07T08:00:00+00:00"}
            for i, s in enumerate(reached)
        ],
        "prompt": None,
        "video": None,
        "error": None,
        "brief": None,
        "notes": [],
        **extra,
    }


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 2 s 9:16 MP4 with a 440 Hz tone: H.264 + AAC 48 kHz stereo, like a finished ad."""
    path = tmp_path_factory.mktemp("clip") / "ad.mp4"
    subprocess.run(
        [
            *(ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=0x1f3a5f:s=180x320:d=2"),
            *("-f", "lavfi", "-i", "sine=frequency=440:duration=2:sample_rate=48000"),
            *("-ac", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"),
            *("-shortest", "-movflags", "+faststart", str(path)),
        ],
        check=True,
    )
    return path.read_bytes()


class FakeApi:
    """The gateway and notifier as the page sees them, answering from `jobs` (by id)."""

    def __init__(self, clip: bytes) -> None:
        self.clip = clip
        self.jobs: dict[str, dict[str, Any]] = {}
        self.posted: list[dict[str, str]] = []
        self.sockets: list[WebSocketRoute] = []
        self.csp = content_security_policy(WS_URL, [])

    async def install(self, page: Page) -> None:
        await page.route(f"{ORIGIN}/**", self.http)
        await page.route_web_socket(WS_URL, self.socket)

    async def http(self, route: Route) -> None:
        request = route.request
        path = request.url.removeprefix(ORIGIN).split("?")[0]
        if path == "/api/v1/config":
            await route.fulfill(json=self.config())
        elif path == "/api/v1/jobs" and request.method == "POST":
            self.posted.append(form_fields(request))
            job = job_view("job-new", "queued", 1)
            self.jobs[job["id"]] = job
            accepted = {"id": job["id"], "status": "queued", "token": "t-new", "job": job}
            await route.fulfill(status=202, json=accepted)
        elif path == "/api/v1/jobs":
            listed = [{**job, "token": f"t-{job['id']}"} for job in self.jobs.values()]
            await route.fulfill(json={"jobs": listed[::-1], "next_cursor": None})
        elif match := re.fullmatch(r"/api/v1/files/(video|poster)", path):
            video = match[1] == "video"
            body = self.clip if video else user.product_photo(7, (180, 320))
            kind = "video/mp4" if video else "image/jpeg"
            await route.fulfill(body=body, content_type=kind)
        elif match := re.fullmatch(r"/api/v1/jobs/([\w-]+)", path):
            await route.fulfill(json=self.jobs[match[1]])
        else:
            file = WEB_DIR / ("index.html" if path == "/" else path.lstrip("/"))
            headers = {"Content-Security-Policy": self.csp, "X-Content-Type-Options": "nosniff"}
            await route.fulfill(path=file, content_type=TYPES[file.suffix], headers=headers)

    def config(self) -> dict[str, Any]:
        return {
            "ws_url": WS_URL,
            "aspect_ratios": ["9:16", "1:1", "16:9"],
            "default_aspect_ratio": "9:16",
            "durations": {"min": DURATION_MIN, "max": DURATION_MAX, "default": 5},
            "max_upload_bytes": 20 * 1024 * 1024,
            "limits": {
                "min_image_side": 256,
                "title_max_length": 120,
                "description_max_length": 2000,
            },
            "presets": contract_presets(),
            "cta_max_length": 40,
            "price_max_length": 20,
        }

    def socket(self, ws: WebSocketRoute) -> None:
        self.sockets.append(ws)

        def on_message(message: str | bytes) -> None:
            asked = json.loads(message)
            ws.send(json.dumps({"type": "snapshot", "job": self.jobs[asked["job_id"]]}))

        ws.on_message(on_message)

    def push(self, view: dict[str, Any]) -> None:
        """A change of the job, pushed as the notifier does (a status step with the job)."""
        self.jobs[view["id"]] = view
        message = {"type": "status", "job_id": view["id"], "seq": view["seq"]}
        message |= {"status": view["status"], "progress": view["progress"], "at": "", "job": view}
        for ws in self.sockets:
            ws.send(json.dumps(message))


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: WEB_SCREENSHOTS=folder keeps them for a look."""
    folder = Path(os.environ.get("WEB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# The smallest box a finger hits reliably (WCAG 2.5.5, Apple's and Android's guidelines:
# 44-48 px): every button, field, choice and link that stands alone, at phone widths. A link
# inside a sentence is exempt, as WCAG exempts it.
TAP_TARGET = 44
SMALL_TARGETS = """
(least) => {
  const controls = 'button, .button, select, textarea, summary, a[href], label,'
    + ' input:not([type=hidden]):not([type=checkbox]):not([type=radio])';
  const shown = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  };
  const inSentence = (link) => getComputedStyle(link).display === 'inline'
    && link.parentElement.textContent.trim() !== link.textContent.trim();
  // A label is a target when it holds or names a checkbox or radio (its input may be hidden).
  const choice = (label) => label.control && ['checkbox', 'radio'].includes(label.control.type);
  const small = [];
  for (const el of document.querySelectorAll(controls)) {
    if (!shown(el) || (el.tagName === 'LABEL' && !choice(el))) continue;
    if (el.tagName === 'A' && inSentence(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.width < least || box.height < least) {
      const name = (el.id ? '#' + el.id : el.tagName.toLowerCase()
        + (el.className ? '.' + [...el.classList].join('.') : ''));
      const size = `${Math.round(box.width)}x${Math.round(box.height)}`;
      small.push(`${name} "${el.textContent.trim().slice(0, 30)}" ${size}`);
    }
  }
  return small;
}
"""


async def screenshots(page: Page, folder: Path, state: str) -> None:
    """The page at phone, narrow and desktop widths; below the desktop nothing may stick out
    sideways, and every tap target is big enough for a finger."""
    for name, size in (("phone", PHONE), ("narrow", NARROW), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=folder / f"{state}-{name}.png", full_page=True)
        if name != "desktop":
            overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 0, f"{state}: {overflow} px wider than a phone"
            small = await page.evaluate(SMALL_TARGETS, TAP_TARGET)
            assert not small, f"{state} ({name}): tap targets under {TAP_TARGET} px: {small}"


async def test_my_videos_fits_a_phone_whatever_the_status(page: Page, clip: bytes) -> None:
    """Every status a listed job can have, with its date, within a phone's width (the
    longest, "Writing the prompt" and a date, ran 4 px past a 390 px screen)."""
    api = FakeApi(clip)
    statuses = ["queued", "prompting", "prompt_ready", "generating", "storing", "completed"]
    for i, status in enumerate([*statuses, "failed", "canceled"]):
        api.jobs[f"job-{i}"] = job_view(
            f"job-{i}", status, 1, created_at="2026-12-18T23:59:00+00:00"
        )
    await api.install(page)
    session = json.dumps({"token": "session", "email": "shop@example.com"})
    await page.add_init_script(f"localStorage.setItem('productVideos.session', {session!r})")
    await page.set_viewport_size(PHONE)
    await page.goto(f"{ORIGIN}/")
    await expect(page.locator(".job-link")).to_have_count(8)
    await expect(page.locator(".job-link").nth(6)).to_contain_text("Writing the prompt")
    overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0, f"{overflow} px wider than a phone"


async def test_every_state_of_a_job_is_clear_at_phone_and_desktop_widths(
    page: Page, clip: bytes, shots: Path
) -> None:
    problems = watch_for_problems(page)
    api = FakeApi(clip)
    await api.install(page)
    session = json.dumps({"token": "session", "email": "shop@example.com"})
    await page.add_init_script(f"localStorage.setItem('productVideos.session', {session!r})")
    await page.goto(f"{ORIGIN}/")

    # Empty: the form, a platform chosen for the user, nothing made yet.
    await expect(page.locator("#no-jobs")).to_be_visible()
    await expect(preset(page, "tiktok")).to_be_checked()
    await expect(page.locator("#ratio-field")).to_be_hidden()
    await expect(page.locator("#duration")).to_have_value(str(PRESETS["tiktok"].default_duration))
    await screenshots(page, shots, "empty")

    # A preset sets the length; "Custom" shows the raw ratios.
    await preset(page, "youtube").check()
    await expect(page.locator("#duration")).to_have_value(str(PRESETS["youtube"].default_duration))
    await preset(page, "").check()
    await expect(page.locator("#ratio-field")).to_be_visible()
    await preset(page, "reels").check()
    await page.locator("#duration").fill("4")
    await expect(page.locator("#duration-hint")).to_contain_text("outside")
    await page.set_input_files("#image", files=[mug_photo(7)])
    await page.fill("#title", "Stoneware mug")
    await page.fill("#description", "Hand-glazed stoneware mug, 350 ml. Dishwasher safe.")
    await page.fill("#cta", "Order yours")
    await page.fill("#price", "€24")
    await page.get_by_label("Music", exact=True).uncheck()
    await page.click("#submit")
    await expect(page.locator("#watch")).to_be_visible()
    assert api.posted == [
        {
            "title": "Stoneware mug",
            "description": "Hand-glazed stoneware mug, 350 ml. Dishwasher safe.",
            "preset": "reels",
            "aspect_ratio": "9:16",
            "duration": "4",
            "cta": "Order yours",
            "price": "€24",
            "finish": "true",
            "music": "off",
            "captions": "on",
        }
    ]

    # Working: while the clip renders, the brief (hook, benefits, CTA, palette) and the note.
    await expect(page.locator("#connection")).to_have_text("Live")
    api.push(job_view("job-new", "generating", 4, brief=BRIEF, notes=[NOTE]))
    brief = page.locator("#brief")
    await expect(brief).to_be_visible()
    await expect(page.locator("#brief-hook")).to_have_text(BRIEF["hook"])
    await expect(page.locator("#brief-benefits li")).to_have_text(BRIEF["benefits"])
    await expect(page.locator("#brief-cta")).to_have_text("Order yours")
    await expect(page.locator("#brief-price")).to_have_text("€24")
    await expect(page.locator("#brief-palette li")).to_have_count(3)
    colour = await page.locator("#brief-palette li").first.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert colour == "rgb(31, 58, 95)"
    await expect(page.locator("#job-notes")).to_have_text(NOTE)
    await expect(page.locator("#result")).to_be_hidden()
    await screenshots(page, shots, "working")

    # Done: the ad plays with its sound; its loudness and a fidelity warning are shown.
    video = {
        "url": "/api/v1/files/video",
        "poster_url": "/api/v1/files/poster",
        "download_url": "/api/v1/files/video?download=ad.mp4",
        "duration": 2.0,
        "width": 180,
        "height": 320,
        "size": len(clip),
        "codec": "h264",
        "cost": 0.0,
        "finished": True,
        "audio": {
            "codec": "aac",
            "sample_rate": 48000,
            "channels": 2,
            "loudness_lufs": -14.0,
            "true_peak_dbtp": -1.3,
        },
        "fidelity": 0.62,
        "fidelity_warning": True,
    }
    api.push(job_view("job-new", "completed", 7, brief=BRIEF, notes=[NOTE], video=video))
    await expect(page.locator("#result")).to_be_visible()
    await expect(page.locator("#brief-title")).to_have_text("What your ad says")
    facts = page.locator("#video-facts")
    await expect(facts).to_contain_text("Finished ad")
    await expect(facts).to_contain_text(
        "Sound: AAC, 48 kHz, stereo, −14.0 LUFS, true peak −1.3 dBTP"
    )
    await expect(facts).to_contain_text("Product match: 62 %")
    await expect(facts).not_to_contain_text("Made before")  # made, not reused
    await expect(page.locator("#fidelity-warning")).to_be_visible()
    player = page.locator("#player")
    await expect(player).to_have_attribute("controls", "")
    await until(player, "p.readyState >= 2")
    await player.click()  # the user's gesture: the browser lets the ad play with sound
    await player.evaluate("p => p.paused && p.play()")
    await until(player, "!p.muted && p.volume > 0 && p.webkitAudioDecodedByteCount > 0")
    await player.evaluate("p => p.pause()")
    await screenshots(page, shots, "done")

    # Failed: which step, and why, in words.
    failed = job_view(
        "job-failed",
        "failed",
        5,
        brief=BRIEF,
        error={"code": "video_failed", "message": "The video could not be rendered."},
    )
    api.jobs[failed["id"]] = failed
    remembered = json.dumps({"id": "job-failed", "token": "t-failed"})
    await page.evaluate(f"localStorage.setItem('productVideos.lastJob', {remembered!r})")
    await page.reload()
    await expect(page.locator("#job-error")).to_contain_text("could not be rendered")
    await expect(page.locator('#steps li[data-status="generating"]')).to_have_attribute(
        "data-state", "failed"
    )
    await expect(page.locator("#brief")).to_be_hidden()
    await screenshots(page, shots, "failed")

    # "Make another": an empty form with the default platform; the raw clip asked for.
    await page.click("#new-job")
    await expect(preset(page, "tiktok")).to_be_checked()
    await expect(page.locator("#duration")).to_have_value(str(PRESETS["tiktok"].default_duration))
    await page.set_input_files("#image", files=[mug_photo(7)])
    await page.fill("#title", "Stoneware mug")
    await page.fill("#description", "Hand-glazed stoneware mug.")
    await page.fill("#cta", "Order yours")
    await page.get_by_label("Captions, music and an end card").uncheck()
    await expect(page.locator("#cta")).to_be_disabled()
    await page.click("#submit")
    await expect(page.locator("#watch")).to_be_visible()
    raw = api.posted[-1]
    assert (raw["preset"], raw["aspect_ratio"], raw["finish"]) == ("tiktok", "9:16", "false")
    # Made anew, even if it asked for exactly what an earlier video did (no result reuse).
    assert raw["regenerate"] == "true"
    assert not {"cta", "price", "music", "captions"} & set(raw)
    # A job that reused an earlier result: done at once, and the page says it was made before.
    await expect(page.locator("#connection")).to_have_text("Live")
    api.push(job_view("job-new", "completed", 3, video={**video, "reused_from": "job-old"}))
    await expect(page.locator("#video-facts")).to_contain_text("Made before")
    assert problems == []
