"""What a user's browser does, in code: sign in with the code from the email,
make a photo, submit it over HTTP, follow the job over the WebSocket, download
the clip."""

import asyncio
import io
import json
import math
import random
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets
from PIL import Image, ImageDraw, ImageFilter

from common.media import VideoInfo, probe_video
from tests.support.mail import MailSink, shared_sink

API = "/api/v1"
FINAL = ("completed", "failed", "canceled")
# The stages a successful job goes through, in order (progress updates repeat a stage).
STAGES = ["queued", "prompting", "prompt_ready", "generating", "storing", "completed"]
ASPECT = {"9:16": (9, 16), "1:1": (1, 1), "16:9": (16, 9)}


def product_photo(seed: int, size: tuple[int, int] = (800, 600)) -> bytes:
    """A JPEG that looks like a product shot: a gradient backdrop, a shaded object
    with a highlight and a shadow, some texture. `seed` makes each photo distinct."""
    rng = random.Random(seed)
    width, height = size
    base = [rng.randrange(60, 200) for _ in range(3)]
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=tuple(int(c * (0.6 + 0.5 * t)) for c in base))
    cx, cy = width // 2 + rng.randrange(-60, 60), height // 2 + rng.randrange(-40, 40)
    rx, ry = width // 5, height // 4
    draw.ellipse([cx - rx, cy + ry - 20, cx + rx, cy + ry + 30], fill=(30, 30, 30))  # shadow
    colour = tuple(rng.randrange(0, 256) for _ in range(3))
    for i in range(40):  # a rounded body, lighter towards its top-left
        k = 1 - i / 40
        shade = tuple(min(255, int(c + (255 - c) * (1 - k) * 0.6)) for c in colour)
        draw.ellipse(
            [cx - rx * k - i, cy - ry * k - i, cx + rx * k - i, cy + ry * k - i], fill=shade
        )
    for _ in range(200):  # texture, so the encoder has detail to keep
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(1, 4)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in "rgb"))
    draw.rectangle([20, 20, 20 + width // 4, 60], fill=(250, 250, 250))
    img = img.filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


# The session each client signed in with (a client that was never signed in gets one
# on its first submission, so every test that submits works through the real sign-in).
_SESSIONS: "weakref.WeakKeyDictionary[httpx.AsyncClient, str]" = weakref.WeakKeyDictionary()


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def sign_in(
    client: httpx.AsyncClient, email: str | None = None, *, mail: MailSink | None = None
) -> str:
    """What a user does: ask for a code, read it from the email, verify it.
    Returns the session token (also remembered for this client's submissions)."""
    email = email or new_email()
    inbox = mail or shared_sink()
    seen = len(inbox.to(email))
    asked = await client.post(f"{API}/auth/email", json={"email": email})
    assert asked.status_code == 202, f"{asked.status_code}: {asked.text}"
    code = await inbox.next_code(email, seen=seen)
    verified = await client.post(f"{API}/auth/verify", json={"email": email, "code": code})
    assert verified.status_code == 200, f"{verified.status_code}: {verified.text}"
    token: str = verified.json()["token"]
    _SESSIONS[client] = token
    return token


async def session_of(client: httpx.AsyncClient) -> str:
    """The client's session token, signing in with a new address if it has none."""
    return _SESSIONS.get(client) or await sign_in(client)


async def submit(
    client: httpx.AsyncClient,
    photo: bytes,
    *,
    title: str = "Ceramic coffee mug",
    description: str = "Hand-glazed stoneware mug, 350 ml, dishwasher safe.",
    aspect_ratio: str = "9:16",
    duration: int = 3,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> httpx.Response:
    """Submit as the client's signed-in user (unless `headers` or the client say otherwise);
    `form`: more fields (cta, price, regenerate, ...)."""
    if headers is None:
        headers = {} if "authorization" in client.headers else auth(await session_of(client))
    return await client.post(
        f"{API}/jobs",
        files={"image": (filename, photo, content_type)},
        data={
            "title": title,
            "description": description,
            "aspect_ratio": aspect_ratio,
            "duration": str(duration),
            **(form or {}),
        },
        headers=headers,
    )


async def submitted(client: httpx.AsyncClient, photo: bytes, **fields: Any) -> dict[str, Any]:
    """Submit and expect the job to be accepted: `{"id", "status", "token", "job"}`."""
    response = await submit(client, photo, **fields)
    assert response.status_code == 202, f"{response.status_code}: {response.text}"
    accepted: dict[str, Any] = response.json()
    return accepted


async def get_job(client: httpx.AsyncClient, job_id: str, token: str) -> dict[str, Any]:
    response = await client.get(f"{API}/jobs/{job_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Followed:
    """What the WebSocket said about one job, in the order it said it."""

    snapshot: dict[str, Any]
    statuses: list[dict[str, Any]]

    @property
    def final(self) -> dict[str, Any]:
        return self.statuses[-1] if self.statuses else self.snapshot

    @property
    def final_status(self) -> str:
        return str(self.final["status"])


async def follow(
    ws_url: str, job_id: str, token: str, *, after_seq: int | None = None, within: float = 180
) -> Followed:
    """Subscribe to a job and collect every message until it is final."""
    request: dict[str, Any] = {"op": "subscribe", "job_id": job_id, "token": token}
    if after_seq is not None:
        request["after_seq"] = after_seq
    deadline = time.monotonic() + within
    async with websockets.connect(ws_url, open_timeout=10) as ws:
        await ws.send(json.dumps(request))
        snapshot: dict[str, Any] | None = None
        statuses: list[dict[str, Any]] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"job {job_id} not final after {within}s; last: "
                    f"{statuses[-1] if statuses else snapshot}"
                )
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
            kind = message.get("type")
            if kind == "snapshot":
                assert snapshot is None and not statuses, f"a second snapshot: {message}"
                snapshot = message["job"]
                # A final snapshot ends it, unless steps after `after_seq` are still to come.
                replay = after_seq is not None and snapshot["seq"] > after_seq
                if snapshot["status"] in FINAL and not replay:
                    return Followed(snapshot, statuses)
            elif kind == "status":
                assert snapshot is not None, f"a status before the snapshot: {message}"
                assert message["job_id"] == job_id, message
                statuses.append(message)
                if message["status"] in FINAL:
                    return Followed(snapshot, statuses)
            elif kind == "error":
                raise AssertionError(f"the notifier refused the subscription: {message}")
            # Anything else (heartbeats) is not about the job.


def stages(statuses: list[str]) -> list[str]:
    """Statuses with repeats (progress updates within a stage) folded."""
    folded: list[str] = []
    for status in statuses:
        if not folded or folded[-1] != status:
            folded.append(status)
    return folded


def assert_followed_in_order(followed: Followed, *, after_seq: int | None = None) -> None:
    """The snapshot's history and the pushed statuses together tell every step
    once, in order, with contiguous seq numbers, from queued to completed.
    With `after_seq`, the pushed statuses alone are every step after it."""
    if after_seq is not None:
        pushed_seqs = [s["seq"] for s in followed.statuses]
        assert pushed_seqs == list(range(after_seq + 1, after_seq + 1 + len(pushed_seqs))), (
            f"after seq {after_seq}, pushed {pushed_seqs}"
        )
    history = followed.snapshot["history"]
    seen = {h["seq"]: h["status"] for h in history}
    pushed = [s["seq"] for s in followed.statuses]
    assert pushed == sorted(set(pushed)), f"seq not increasing: {pushed}"
    for status in followed.statuses:
        if status["seq"] in seen:  # a replay must say what the history says
            assert seen[status["seq"]] == status["status"], status
        seen[status["seq"]] = status["status"]
    seqs = sorted(seen)
    assert seqs == list(range(1, seqs[-1] + 1)), f"gaps in seq: {seqs}"
    if followed.statuses:
        first = followed.statuses[0]["seq"]
        assert first <= followed.snapshot["seq"] + 1, (
            f"statuses start at seq {first}, the snapshot was at {followed.snapshot['seq']}"
        )
    assert stages([seen[s] for s in seqs]) == STAGES
    assert [s["progress"] for s in followed.statuses] == sorted(
        s["progress"] for s in followed.statuses
    ), "progress went backwards"


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, within: float, what: str, interval: float = 0.2
) -> Any:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {within}s (last: {result!r})")
        await asyncio.sleep(interval)


async def download(client: httpx.AsyncClient, url: str, path: Path) -> Path:
    response = await client.get(url, follow_redirects=True)
    assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text[:200]}"
    await asyncio.to_thread(path.write_bytes, response.content)
    return path


def assert_playable_clip(info: VideoInfo, *, aspect_ratio: str, duration: float) -> None:
    """H.264 in yuv420p (plays everywhere), of the requested shape and length."""
    assert info.codec == "h264", info
    assert info.pix_fmt == "yuv420p", info
    w, h = ASPECT[aspect_ratio]
    assert info.width * h == info.height * w, f"{info.width}x{info.height} is not {aspect_ratio}"
    assert info.width % 2 == 0 and info.height % 2 == 0, info
    assert math.isclose(info.duration, duration, abs_tol=0.1), info


def probe(path: Path) -> VideoInfo:
    return probe_video(path)
