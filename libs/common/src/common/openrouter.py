"""OpenRouter over HTTP: the one client both OpenRouter providers use, and the one place
where its answers become `JobError`s (wire protocol: /work/shared/openrouter-api.md).

Retries that wait are not done here: a retryable failure is raised as a retryable
`JobError` (with the `Retry-After` it came with) and `WorkerContext.stage_handler` sends the
job's event back through a delayed retry queue, so no handler sleeps on a prefetch slot. The
only retry inside a call is one quick resend after a dropped connection.
"""

import asyncio
import base64
import email.utils
import io
import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlparse

import httpx

from common.errors import JobError
from common.settings import CommonSettings
from common.storage import Storage

log = logging.getLogger(__name__)

# Refusals that another try cannot fix: (job error code, what it means for a person).
PERMANENT: dict[int, tuple[str, str]] = {
    400: ("provider_bad_request", "the request was refused"),
    401: ("provider_unauthorized", "the API key was refused"),
    402: ("insufficient_credits", "insufficient credits"),
    403: ("provider_forbidden", "the request was blocked by moderation"),
    404: ("provider_not_found", "not found"),
    413: ("provider_payload_too_large", "the request is too large"),
}
# Failures worth another try, after a delay.
RETRYABLE: dict[int, tuple[str, str]] = {
    408: ("provider_unavailable", "the request timed out"),
    429: ("provider_rate_limited", "rate limited"),
    500: ("provider_unavailable", "internal server error"),
    502: ("provider_unavailable", "the model is down"),
    503: ("provider_unavailable", "no provider is available"),
    504: ("provider_unavailable", "the gateway timed out"),
}
# Enough of OpenRouter's own message to say what went wrong, not a whole HTML page.
MAX_DETAIL = 300
# The pause before resending after a dropped connection.
RESEND_AFTER = 0.5
# How long a presigned photo URL given to OpenRouter stays valid.
PRESIGNED_URL_TTL = 6 * 3600


@dataclass(frozen=True)
class OpenRouterConfig:
    api_key: str
    base_url: str
    referer: str | None = None  # HTTP-Referer: the app's URL, for OpenRouter's rankings
    title: str | None = None  # X-Title: the app's name
    timeout: float = 60.0  # per read, write or pool wait
    connect_timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: CommonSettings, *, timeout: float) -> Self:
        if settings.openrouter_api_key is None:
            raise ValueError("the OpenRouter providers need OPENROUTER_API_KEY")
        return cls(
            api_key=settings.openrouter_api_key.get_secret_value(),
            base_url=settings.openrouter_base_url.rstrip("/"),
            referer=settings.openrouter_referer,
            title=settings.openrouter_title,
            timeout=timeout,
        )


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def error_detail(body: bytes) -> str:
    """OpenRouter's own message from an error body (`{"error": {"message", "metadata"?}}`)."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace").strip()
        return text[:MAX_DETAIL] if text and not text.startswith("<") else ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        metadata = error.get("metadata")
        raw = metadata.get("raw") if isinstance(metadata, dict) else None
        if raw and str(raw) not in message:
            message = f"{message} ({raw})" if message else str(raw)
        return message[:MAX_DETAIL]
    if isinstance(error, str):
        return error[:MAX_DETAIL]
    return ""


def is_openrouter_error(body: bytes) -> bool:
    """True for OpenRouter's own error answer (`{"error": ...}`), as opposed to a page
    from a proxy or load balancer in between."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), dict | str)


def status_error(status: int, body: bytes = b"", headers: httpx.Headers | None = None) -> JobError:
    """The job error for an HTTP error answer from OpenRouter."""
    detail = error_detail(body)
    if status in PERMANENT:
        code, meaning = PERMANENT[status]
        retryable = False
    elif status in RETRYABLE:
        code, meaning = RETRYABLE[status]
        retryable = True
    else:
        retryable = status >= 500
        code = "provider_unavailable" if retryable else "provider_error"
        meaning = "server error" if retryable else "unexpected answer"
    message = f"OpenRouter: {meaning} ({status})"
    if detail:
        message += f": {detail}"
    retry_after = retry_after_seconds(headers.get("retry-after")) if headers is not None else None
    return JobError(code, message, retryable=retryable, retry_after=retry_after)


def network_error(error: httpx.HTTPError) -> JobError:
    """The job error for a call that got no answer: always worth another try."""
    if isinstance(error, httpx.TimeoutException):
        meaning = "no answer in time"
    elif isinstance(error, httpx.ConnectError):
        meaning = "cannot connect"
    else:
        meaning = "the connection failed"
    return JobError(
        "provider_unavailable",
        f"OpenRouter: {meaning} ({type(error).__name__}: {error})",
        retryable=True,
    )


class Unconfirmed(JobError):
    """A request that may have started a paid job got no usable answer: it reached
    OpenRouter (or may have), and nobody knows whether the job exists. Never resent."""

    def __init__(self, method: str, path: str, why: str) -> None:
        super().__init__(
            "provider_unconfirmed",
            f"OpenRouter did not confirm {method} {path} ({why}); it may have started a "
            "paid job, so it was not sent again.",
        )


def _never_sent(error: httpx.TransportError) -> bool:
    """True when the request cannot have reached OpenRouter."""
    return isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


class OpenRouter:
    """JSON calls and downloads that raise `JobError` on every failure. A worker keeps one
    per process (its connections stay open between deliveries: a new client costs an
    SSL context and a TLS handshake) and calls `aclose` at shutdown; a one-off use is
    `async with OpenRouter(config) as api:`."""

    def __init__(self, config: OpenRouterConfig) -> None:
        self.config = config
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The HTTP client, made on first use (inside the running event loop)."""
        if self._http is None or self._http.is_closed:
            config = self.config
            headers = {"Authorization": f"Bearer {config.api_key}"}
            if config.referer:
                headers["HTTP-Referer"] = config.referer
            if config.title:
                headers["X-Title"] = config.title
            self._http = httpx.AsyncClient(
                base_url=config.base_url,
                headers=headers,
                timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _path(self, path: str) -> str:
        # Relative to the base URL (which ends in /api/v1), whatever the caller wrote.
        return path.lstrip("/")

    async def _send(
        self, method: str, path: str, *, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        """One request, resent once after a dropped connection. A request that may have
        reached OpenRouter (`idempotent=False`: it may have started a paid job) is only
        resent when the connection was never made."""
        for attempt in (1, 2):
            try:
                return await self.http.request(method, self._path(path), **kwargs)
            except httpx.TransportError as e:
                if not idempotent and not _never_sent(e):
                    raise Unconfirmed(method, path, f"{type(e).__name__}: {e}") from e
                timed_out = isinstance(e, httpx.TimeoutException)
                if attempt == 2 or timed_out:
                    raise network_error(e) from e
                log.info("OpenRouter %s %s: %s; sending again", method, path, e)
                await asyncio.sleep(RESEND_AFTER)
        raise AssertionError("unreachable")

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """A JSON request; its JSON answer, or a JobError."""
        response = await self._send(
            method, path, idempotent=idempotent, json=json_body, params=params
        )
        status = response.status_code
        if status >= 500 and not idempotent and not is_openrouter_error(response.content):
            # A proxy's 502/504 page, not OpenRouter's refusal: the request may have got
            # through and started a paid job.
            raise Unconfirmed(method, path, f"{status} from something other than OpenRouter")
        if status >= 400:
            raise status_error(status, response.content, response.headers)
        try:
            data = response.json()
        except ValueError as e:
            if not idempotent:  # accepted, perhaps, with an answer we cannot read
                raise Unconfirmed(method, path, f"{response.status_code}, not JSON") from e
            raise JobError(
                "provider_unavailable",
                f"OpenRouter: the answer to {method} {path} is not JSON ({response.status_code})",
                retryable=True,
            ) from e
        if not isinstance(data, dict):
            if not idempotent:
                raise Unconfirmed(method, path, f"{response.status_code}, not a JSON object")
            raise JobError(
                "provider_unavailable",
                f"OpenRouter: the answer to {method} {path} is not a JSON object",
                retryable=True,
            )
        return data

    async def download(
        self, path: str, dest: Path, *, params: dict[str, Any] | None = None, max_bytes: int
    ) -> int:
        """Stream a file to `dest`; its size in bytes."""
        size = 0
        try:
            async with self.http.stream("GET", self._path(path), params=params) as response:
                if response.status_code >= 400:
                    body = await response.aread()
                    raise status_error(response.status_code, body, response.headers)
                with dest.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise JobError(
                                "invalid_video",
                                f"OpenRouter: the file is larger than {max_bytes} bytes",
                            )
                        out.write(chunk)
        except httpx.HTTPError as e:
            raise network_error(e) from e
        return size


def image_data_url(data: bytes, *, max_side: int, quality: int = 85) -> str:
    """The photo as a `data:image/jpeg;base64,...` URL, downscaled to fit `max_side`."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode != "RGB":
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, mask=rgba.getchannel("A"))
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def reachable_from_outside(url: str) -> bool:
    """False for links into this machine or a private network (a local MinIO, say), which
    OpenRouter cannot open."""
    host = urlparse(url).hostname or ""
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." in host  # a public name; a bare name ("minio") is a local one
    return address.is_global


async def image_url(storage: Storage | None, key: str | None, data: bytes, *, max_side: int) -> str:
    """How OpenRouter gets the photo: a presigned URL where storage makes one (S3), else a
    data URL of a downscaled JPEG (a local folder is not reachable from OpenRouter)."""
    if storage is not None and key:
        url = await storage.presigned_url(key, PRESIGNED_URL_TTL)
        if url and reachable_from_outside(url):
            return url
    return await asyncio.to_thread(image_data_url, data, max_side=max_side)
