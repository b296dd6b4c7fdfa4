"""A fake OpenRouter: a real HTTP server on a free local port that speaks the protocol of
/work/shared/openrouter-api.md (chat completions, the async video API, the model list and
signed webhooks), scriptable per test and recording every request it gets.

    with FakeOpenRouter.running() as fake:
        env = {"OPENROUTER_BASE_URL": fake.base_url, "OPENROUTER_API_KEY": fake.api_key}
        fake.fail("POST /videos", Fault(503), Fault(503))   # the next two submissions
        fake.fail("GET /videos/{id}", Fault(502, body=b"<html>Bad gateway</html>",
                                            content_type="text/html"))  # a proxy's answer
        fake.delays["POST /chat/completions"] = 2.0         # every chat answer takes 2 s
        fake.chat_replies.append("not json")                # the next chat reply
        fake.video_plan = VideoPlan(polls=("pending", "in_progress"), hold=True)
        ...
        fake.calls("POST /videos")                          # what the services sent
        fake.jobs                                           # the accepted (paid) ones

It runs in a thread of its own (its own event loop), so it answers while a test blocks.
Clips for `/content` are real MP4s rendered with ffmpeg at first use.

`make fake-openrouter` runs it on its own, to try the OpenRouter path of `make run` offline.
"""

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from common.media import ffmpeg_exe

PREFIX = "/api/v1"
BODY_LIMIT = 50 * 1024 * 1024  # OpenRouter's limit for POST /videos (413 above it)
IMAGE_URL = re.compile(r"^(https?://\S+|data:image/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/=]+)$")
FINAL = ("completed", "failed", "cancelled", "expired")

SEEDANCE: dict[str, Any] = {
    "id": "bytedance/seedance-2.0",
    "name": "ByteDance: Seedance 2.0",
    "supported_durations": [3, 4, 5, 6, 7, 8, 9, 10],
    "supported_resolutions": ["480p", "720p", "1080p"],
    "supported_aspect_ratios": ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"],
    "supported_frame_images": ["first_frame", "last_frame"],
    "supported_sizes": [],
    "generate_audio": True,
    "seed": True,
    "pricing_skus": [{"sku": "video-720p", "price_per_second": "0.07"}],
}

# What the fake renders for each aspect ratio at 720p: near, but not exactly, the frame
# size the project stores, the way real models round their sizes.
CLIP_SIZES = {"9:16": (704, 1248), "16:9": (1248, 704), "1:1": (720, 720)}


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour for the next request to a route: an error answer
    (`status`, with OpenRouter's error body and an optional `Retry-After`), an answer
    that is not OpenRouter's JSON (`body` as is, with `content_type`, under `status` or
    200: a proxy's HTML error page, a garbled 200), a dropped connection (`drop`), or a
    slow answer (`delay` seconds, then the normal answer)."""

    status: int | None = None
    message: str = ""
    retry_after: float | None = None
    drop: bool = False
    delay: float = 0.0
    body: bytes | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class VideoPlan:
    """How new video jobs behave: the statuses of their first polls, then `outcome`
    (with `error` for failures). With `hold`, the last of `polls` repeats until the
    test calls `finish`."""

    polls: tuple[str, ...] = ("pending", "in_progress")
    outcome: str = "completed"
    error: str | None = None
    hold: bool = False
    cost: float = 0.35
    size: tuple[int, int] | None = None  # of the clip; default CLIP_SIZES
    fps: int = 24  # of the clip (fewer frames: less work for what finishes it)


@dataclass
class VideoJob:
    id: str
    body: dict[str, Any]
    plan: VideoPlan
    polls: int = 0
    finished: tuple[str, str | None] | None = None  # (status, error) set by `finish`
    status: str = "pending"

    def advance(self) -> str:
        """The status this poll reports."""
        index = self.polls
        self.polls += 1
        if self.finished is not None:
            self.status = self.finished[0]
        elif index < len(self.plan.polls):
            self.status = self.plan.polls[index]
        elif self.plan.hold and self.plan.polls:
            self.status = self.plan.polls[-1]
        else:
            self.status = self.plan.outcome
        return self.status

    @property
    def error(self) -> str | None:
        return self.finished[1] if self.finished is not None else self.plan.error


@dataclass
class Recorded:
    """One request as it arrived. `at` and `answered_at` are `time.monotonic()` of the
    test process (the fake runs in one of its threads): when the request arrived and when
    its answer was produced (None while it is being worked on; for a dropped connection,
    when it was dropped). `status` is the answer's HTTP status (None: dropped)."""

    method: str
    route: str  # "POST /videos", "GET /videos/{id}", ...
    path: str  # below /api/v1
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any
    size: int
    at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None
    status: int | None = None

    def in_flight(self, moment: float) -> bool:
        """Whether this request had arrived and was not answered yet at `moment`."""
        return self.at <= moment and (self.answered_at is None or self.answered_at > moment)


class FakeOpenRouter:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.api_key = f"sk-or-v1-fake-{uuid.uuid4().hex}"
        self.webhook_secret = f"whsec-fake-{uuid.uuid4().hex}"
        self.port = 0
        self.requests: list[Recorded] = []
        self.faults: dict[str, deque[Fault]] = {}
        # Contents of the next chat replies, first first; empty: a valid prompt.
        self.chat_replies: deque[str] = deque()
        self.chat_cost = 0.0021
        self.chat_model: str | None = None  # the `model` a reply names; default: as asked
        self.video_plan = VideoPlan()
        # Seconds every request to a route waits before it is answered (a slow model).
        self.delays: dict[str, float] = {}
        self.models: list[dict[str, Any]] = [dict(SEEDANCE)]
        self.jobs: dict[str, VideoJob] = {}
        self._clips: dict[tuple[int, int, int, int], bytes] = {}
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----- what tests use -----

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def env(self) -> dict[str, str]:
        """The environment that points services at this fake, polling every second and
        reading the model list for every job (tests change it between jobs)."""
        return {
            "OPENROUTER_API_KEY": self.api_key,
            "OPENROUTER_BASE_URL": self.base_url,
            "OPENROUTER_POLL_INTERVAL_SECONDS": "1",
            "OPENROUTER_POLL_MAX_INTERVAL_SECONDS": "1",
            "OPENROUTER_MODELS_TTL_SECONDS": "0",
        }

    def fail(self, route: str, *faults: Fault) -> None:
        """Script the next requests to `route` ("POST /chat/completions", "POST /videos",
        "GET /videos/{id}", "GET /videos/{id}/content", "GET /videos/models")."""
        with self._lock:
            self.faults.setdefault(route, deque()).extend(faults)

    def calls(self, route: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def accepted(self) -> list[VideoJob]:
        """The video jobs made so far (each one paid for), oldest first."""
        with self._lock:
            return list(self.jobs.values())

    def finish(self, video_id: str, status: str = "completed", error: str | None = None) -> None:
        """End a held job: its next poll reports `status`."""
        assert status in FINAL, status
        self.jobs[video_id].finished = (status, error)

    def webhook(
        self,
        video_id: str,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> tuple[bytes, dict[str, str]]:
        """The callback OpenRouter POSTs when a job ends: its raw body and headers, signed
        with `secret` (default: this fake's). `tamper` changes the body after signing."""
        job = self.jobs[video_id]
        status = job.status if job.status in FINAL else (job.finished or ("completed",))[0]
        payload = {
            "type": f"video.generation.{status}",
            "created_at": int(time.time()),
            "data": {
                "id": job.id,
                "status": status,
                "generation_id": f"gen-{job.id}",
                "model": job.body.get("model"),
                "unsigned_urls": [f"{self.base_url}/videos/{job.id}/content?index=0"],
                "usage": {"cost": job.plan.cost, "is_byok": False},
                "error": job.error,
            },
        }
        body = json.dumps(payload).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(
            (secret or self.webhook_secret).encode(), f"{stamp},".encode() + body, hashlib.sha256
        ).hexdigest()
        if tamper:
            body = body.replace(b'"completed"', b'"failed"', 1) + b" "
        headers = {
            "Content-Type": "application/json",
            "X-OpenRouter-Signature": f"t={stamp},v1={digest}",
            "X-OpenRouter-Idempotency-Key": f"{job.id}-{status}",
        }
        return body, headers

    async def deliver_webhook(self, url: str, video_id: str, **options: Any) -> httpx.Response:
        body, headers = self.webhook(video_id, **options)
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(url, content=body, headers=headers)

    @classmethod
    @contextlib.contextmanager
    def running(cls, port: int = 0) -> Iterator["FakeOpenRouter"]:
        with tempfile.TemporaryDirectory(prefix="fake-openrouter-") as tmp:
            fake = cls(Path(tmp))
            started = threading.Event()
            stop: list[asyncio.Event] = []

            async def serve() -> None:
                app = web.Application(client_max_size=BODY_LIMIT + 1024 * 1024)
                app.router.add_route("*", PREFIX + "/{tail:.*}", fake._handle)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", port)
                await site.start()
                server = site._server
                assert server is not None and server.sockets
                fake.port = server.sockets[0].getsockname()[1]
                fake._loop = asyncio.get_running_loop()
                stop.append(asyncio.Event())
                started.set()
                try:
                    await stop[0].wait()
                finally:
                    await runner.cleanup()

            thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
            thread.start()
            if not started.wait(30):
                raise RuntimeError("the fake OpenRouter did not start")
            try:
                yield fake
            finally:
                assert fake._loop is not None
                fake._loop.call_soon_threadsafe(stop[0].set)
                thread.join(10)

    # ----- the server -----

    @staticmethod
    def _route(method: str, path: str) -> str:
        if path == "/videos/models":
            return f"{method} /videos/models"
        if re.fullmatch(r"/videos/[^/]+/content", path):
            return f"{method} /videos/{{id}}/content"
        if re.fullmatch(r"/videos/[^/]+", path):
            return f"{method} /videos/{{id}}"
        return f"{method} {path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        route = self._route(request.method, path)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = Recorded(
            method=request.method,
            route=route,
            path=path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
            size=len(raw),
        )
        with self._lock:
            self.requests.append(recorded)
            queued = self.faults.get(route)
            fault = queued.popleft() if queued else None
            delay = self.delays.get(route, 0.0)
        response: web.StreamResponse | None = None
        try:
            if delay:
                await asyncio.sleep(delay)
            response = await self._answer(request, route, path, raw, body, fault)
            return response
        finally:
            with self._lock:
                recorded.answered_at = time.monotonic()
                recorded.status = response.status if response is not None else None

    async def _answer(
        self,
        request: web.Request,
        route: str,
        path: str,
        raw: bytes,
        body: Any,
        fault: Fault | None,
    ) -> web.StreamResponse:
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                assert request.transport is not None
                request.transport.abort()
                raise web.HTTPInternalServerError()  # never sent: the connection is gone
            if fault.body is not None:
                return web.Response(
                    status=fault.status or 200,
                    body=fault.body,
                    headers={"Content-Type": fault.content_type},
                )
            if fault.status is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                return error(fault.status, fault.message or f"scripted {fault.status}", headers)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return error(401, "No auth credentials found")
        handlers = {
            "POST /chat/completions": self._chat,
            "POST /videos": self._create_video,
            "GET /videos/models": self._models,
            "GET /videos/{id}": self._video_status,
            "GET /videos/{id}/content": self._content,
        }
        handler = handlers.get(route)
        if handler is None:
            return error(404, f"Not found: {request.method} {path}")
        if len(raw) > BODY_LIMIT:
            return error(413, "Request body too large")
        return await handler(request, path, body)

    async def _chat(self, request: web.Request, path: str, body: Any) -> web.StreamResponse:
        problem = chat_problem(body)
        if problem:
            return error(400, problem)
        with self._lock:
            content = self.chat_replies.popleft() if self.chat_replies else None
        if content is None:
            content = json.dumps(default_prompt(body))
        prompt_tokens, completion_tokens = 1450, 160
        return web.json_response(
            {
                "id": f"gen-{uuid.uuid4().hex[:16]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.chat_model or body["model"],
                "provider": "Google",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "cost": self.chat_cost,
                },
            }
        )

    def _model(self, model_id: Any) -> dict[str, Any] | None:
        return next((m for m in self.models if m["id"] == model_id), None)

    async def _create_video(self, request: web.Request, path: str, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return error(400, "prompt is required")
        model = self._model(body.get("model"))
        if model is None:
            return error(404, f"Model {body.get('model')!r} not found")
        for key, listed in (
            ("duration", "supported_durations"),
            ("resolution", "supported_resolutions"),
            ("aspect_ratio", "supported_aspect_ratios"),
        ):
            if key in body and model.get(listed) and body[key] not in model[listed]:
                return error(400, f"{key} {body[key]!r} is not supported by {model['id']}")
        for frame in body.get("frame_images") or []:
            url = (frame.get("image_url") or {}).get("url", "")
            if frame.get("type") != "image_url" or not IMAGE_URL.match(url):
                return error(400, "frame_images: each item needs an image_url with a url")
            if frame.get("frame_type") not in model.get("supported_frame_images", []):
                return error(400, f"frame_type {frame.get('frame_type')!r} is not supported")
        job = VideoJob(id=f"vid_{uuid.uuid4().hex[:20]}", body=body, plan=self.video_plan)
        with self._lock:
            self.jobs[job.id] = job
        return web.json_response(
            {"id": job.id, "polling_url": f"{PREFIX}/videos/{job.id}", "status": "pending"},
            status=202,
        )

    async def _models(self, request: web.Request, path: str, body: Any) -> web.StreamResponse:
        return web.json_response({"data": self.models})

    def _job(self, path: str) -> VideoJob | None:
        return self.jobs.get(path.split("/")[2])

    async def _video_status(self, request: web.Request, path: str, body: Any) -> web.StreamResponse:
        job = self._job(path)
        if job is None:
            return error(404, "Video generation not found")
        status = job.advance()
        answer: dict[str, Any] = {
            "id": job.id,
            "polling_url": f"{PREFIX}/videos/{job.id}",
            "status": status,
        }
        if status == "completed":
            answer["generation_id"] = f"gen-{job.id}"
            answer["unsigned_urls"] = [f"{self.base_url}/videos/{job.id}/content?index=0"]
            answer["usage"] = {"cost": job.plan.cost, "is_byok": False}
        elif status in FINAL:
            answer["error"] = job.error or f"The generation {status}"
        return web.json_response(answer)

    async def _content(self, request: web.Request, path: str, body: Any) -> web.StreamResponse:
        job = self._job(path)
        if job is None or job.status != "completed":
            return error(404, "No video content for this generation")
        if request.query.get("index", "0") != "0":
            return error(404, "No video at that index")
        ratio = str(job.body.get("aspect_ratio", "16:9"))
        width, height = job.plan.size or CLIP_SIZES.get(ratio, (1248, 704))
        duration = int(job.body.get("duration", 5))
        data = await asyncio.to_thread(self._clip, width, height, duration, job.plan.fps)
        return web.Response(body=data, content_type="video/mp4")

    def _clip(self, width: int, height: int, duration: int, fps: int = 24) -> bytes:
        key = (width, height, duration, fps)
        # One render at a time: two downloads asking at once must not write (and read)
        # the same file together, which served a cut clip.
        with self._render_lock:
            with self._lock:
                if key in self._clips:
                    return self._clips[key]
            return self._render(key)

    def _render(self, key: tuple[int, int, int, int]) -> bytes:
        width, height, duration, fps = key
        out = self.work_dir / f"clip-{width}x{height}-{duration}-{fps}.mp4"
        subprocess.run(
            [
                ffmpeg_exe(),
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={width}x{height}:rate={fps}",
                "-t",
                str(duration),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-y",
                str(out),
            ],
            check=True,
            timeout=120,
        )
        data = out.read_bytes()
        with self._lock:
            self._clips[key] = data
        return data


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message}}, status=status, headers=headers
    )


def chat_problem(body: Any) -> str | None:
    """Why a chat request breaks the protocol, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant"):
            return f"unknown role {message.get('role')!r}"
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    if not IMAGE_URL.match((part.get("image_url") or {}).get("url", "")):
                        return "image_url.url must be an http(s) or data:image URL"
                elif part.get("type") != "text" or not isinstance(part.get("text"), str):
                    return "content parts are text or image_url"
        elif not isinstance(content, str):
            return "content must be a string or a list of parts"
    response_format = body.get("response_format")
    if response_format is not None:
        schema = response_format.get("json_schema") or {}
        if response_format.get("type") != "json_schema" or not schema.get("name"):
            return "response_format must be a json_schema with a name"
        if not isinstance(schema.get("schema"), dict):
            return "response_format.json_schema.schema must be an object"
    return None


def user_text(body: Any) -> str:
    """The text parts of a chat request's user messages (they name the product)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    return " ".join(
        part.get("text", "")
        for message in messages or []
        if message.get("role") == "user" and isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "text"
    )


def default_prompt(body: dict[str, Any]) -> dict[str, Any]:
    """A valid reply to the prompt writer's schema, naming the product from the request,
    with a brief whose benefits are the description's first clauses (the owner's facts)."""
    text = user_text(body)
    found = re.search(r"Title: (.+)", text)
    title = found.group(1).strip() if found else "the product"
    described = re.search(r"Description: (.+)", text)
    clauses = [
        " ".join(c.split()[:7])
        for c in re.split(r"[.,;!?\n]+", described.group(1) if described else "")
        if c.strip() and c.strip() != "(none)"
    ]
    return {
        "prompt": (
            f"A slow cinematic push-in on {title} standing on a warm oak table, soft morning "
            "light from the left, shallow depth of field; the product keeps its exact shape, "
            "colours and logo; one continuous shot, no text."
        ),
        "camera_motion": "slow push-in",
        "mood": "warm and inviting",
        "brief": {
            "hook": f"Meet {' '.join(title.split()[:6])}",
            "benefits": clauses[:3],
            "cta": "Shop now",
            "mood": "calm",
        },
    }


def main() -> None:
    """Serve until Ctrl-C; every job completes after a poll or two with a real clip."""
    parser = argparse.ArgumentParser(description="A fake OpenRouter for trying make run offline.")
    parser.add_argument("--port", type=int, default=8090)
    port = parser.parse_args().port
    # Blocked before the server thread starts, so only this thread takes them (sigwait).
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with FakeOpenRouter.running(port) as fake:
        print(f"fake OpenRouter on {fake.base_url}; in another terminal:", flush=True)
        print(f"  OPENROUTER_API_KEY={fake.api_key} OPENROUTER_BASE_URL={fake.base_url} make run")
        sys.stdout.flush()
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
