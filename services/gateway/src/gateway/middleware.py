"""Plain ASGI middleware: security headers, the upload size cap (which also drains the
unread body before an early answer, so the client reads it), the upload's session
check (request metrics are common.request_metrics, shared with the notifier).

Pure ASGI (not BaseHTTPMiddleware) so file responses keep streaming.
"""

import asyncio
import time
from contextlib import suppress
from urllib.parse import urlparse

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import error_body
from common.tokens import InvalidToken, Signer
from gateway.api.deps import SESSION_NEEDED, SIGN_IN_FIRST, not_accepted
from gateway.api_keys import KEY_PATTERN, looks_like_key
from gateway.images import too_large


def _origin(url: str) -> str | None:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme and parsed.netloc else None


def content_security_policy(ws_url: str, extra_media_origins: list[str]) -> str:
    """Scripts and styles from this origin only; the notifier's socket; media and
    images also from blob:/data: (previews) and https: (presigned storage links)."""
    connect = ["'self'"]
    if ws_origin := _origin(ws_url):
        connect.append(ws_origin)
    media = ["'self'", "blob:", "data:", "https:", *extra_media_origins]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(media)}",
            f"media-src {' '.join(media)}",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


# FastAPI's own documentation pages load Swagger UI / ReDoc from a CDN with inline scripts.
_DOCS_PATHS = ("/docs", "/redoc")
BAD_KEY = InvalidToken("the API key is not valid")
# Answers that carry session tokens, API keys or webhook secrets must never sit in a cache.
_NO_STORE_PATHS = ("/api/v1/auth/", "/api/v1/api-keys", "/api/v1/webhook-endpoints")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = {
            "X-Content-Type-Options": "nosniff",
            # Job tokens travel in some URLs (video links); never leak them in a Referer.
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
            "Cross-Origin-Opener-Policy": "same-origin",
            # HTTPS only from now on (browsers ignore it on plain HTTP, e.g. make run).
            "Strict-Transport-Security": "max-age=31536000",
        }
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with_csp = not scope["path"].startswith(_DOCS_PATHS)
        no_store = scope["path"].startswith(_NO_STORE_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if with_csp:
                    headers.setdefault("Content-Security-Policy", self.csp)
                if no_store:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UploadTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's form parsing
    lets it through instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit).message)
        self.limit = limit


# How long an early answer waits at most for the rest of the body to be drained.
LINGER_SECONDS = 10.0


class _Body:
    """A request's body as the app reads it (413 past `limit`), and the lingering
    read of what the app left unread when it answers early.

    A server that answers and closes while the client is still sending makes the
    kernel reset the connection, and the reset can overtake the answer: the client
    sees a broken connection instead of the error. So before an answer to a request
    whose body is not all read goes out, the rest is read and thrown away (what nginx
    calls a lingering close), up to twice `limit` in all and for `LINGER_SECONDS` at
    most. A client that sent `Expect: 100-continue` and was never told to go on has
    sent no body: it gets its answer at once, and the connection is closed."""

    def __init__(self, scope: Scope, receive: Receive, limit: int, stated: int) -> None:
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        self.declared = int(declared) if declared and declared.isdigit() else None
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.expects_continue = headers.get("expect", "").lower() == "100-continue"
        self.done = not chunked and not self.declared  # no body at all
        self.asked = False  # the app asked for the body (uvicorn then sends "100 Continue")
        self.read = 0
        self.limit = limit
        self.stated = stated  # the limit the 413 names
        self._receive = receive

    async def _next(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            self.done = not message.get("more_body", False)
        else:  # http.disconnect
            self.done = True
        return message

    async def receive(self) -> Message:
        """What the app reads."""
        self.asked = True
        message = await self._next()
        if self.read > self.limit:
            raise UploadTooLarge(self.stated)
        return message

    async def drain(self) -> bool:
        """Read the rest of the body within the caps: True when it was all read (the
        connection can serve another request), False when it must be closed."""
        if self.done:
            return True
        if self.expects_continue and not self.asked:
            return False
        cap = 2 * self.limit
        if self.declared is not None and self.declared > cap:
            return False  # it could not all be read anyway
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                while not self.done and self.read <= cap:
                    await self._next()
        except TimeoutError:
            return False
        return self.done


class UploadSizeLimit:
    """Caps request bodies: at once from Content-Length, else while they stream in, so
    an oversized upload is never spooled to disk whole. Uploads to `path` get
    `max_upload_bytes` (plus the form's overhead), uploads to each path of `more_uploads`
    the bytes it gives (plus the overhead); every other body gets `other_bodies_max_bytes`.

    Every answer given before the body was all read (this 413, the 401 of
    `SessionRequired` inside, any other early refusal) first drains the rest
    (`_Body.drain`), so that the client gets to read it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        max_upload_bytes: int,
        overhead: int,
        other_bodies_max_bytes: int,
        more_uploads: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        # Per path: the limit stated, and the one applied (with the form's text fields and
        # boundaries).
        self.uploads = {
            p: (stated, stated + overhead)
            for p, stated in {path: max_upload_bytes, **(more_uploads or {})}.items()
        }
        self.other_limit = other_bodies_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] in self.uploads:
            stated, limit = self.uploads[scope["path"]]
        else:
            limit = stated = self.other_limit
        body = _Body(scope, receive, limit, stated)

        async def send_after_drain(message: Message) -> None:
            if message["type"] == "http.response.start" and not await body.drain():
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        if body.declared is not None and body.declared > limit:
            error = too_large(stated)
            response = JSONResponse(
                error_body(error.code, error.message, error.details), status_code=413
            )
            await response(scope, receive, send_after_drain)
            return
        await self.app(scope, body.receive, send_after_drain)


class SessionRequired:
    """Uploads to `path` need a session or an API key: one without a plausible session
    token (there, signed by us, not expired: no database read) or a well-formed key is
    refused before its body is read.
    FastAPI parses the form before any dependency runs, so otherwise an anonymous
    client could make the gateway read and spool a whole upload only to answer 401.
    The route's dependency still checks the session's record (sign-out)."""

    def __init__(self, app: ASGIApp, *, path: str, signer: Signer) -> None:
        self.app = app
        self.path = path
        self.signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            problem = self._problem(Headers(scope=scope).get("authorization"))
            if problem is not None:
                response = JSONResponse(
                    error_body("unauthorized", problem),
                    status_code=401,
                    # UploadSizeLimit, outside, drains the unread body before it goes out.
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _problem(self, authorization: str | None) -> str | None:
        """Why the header cannot be a session, in the dependency's words; None if it can."""
        scheme, token = get_authorization_scheme_param(authorization)
        if scheme.lower() != "bearer" or not token:
            return SIGN_IN_FIRST
        if looks_like_key(token):  # its hash and scopes are the dependency's to check
            return None if KEY_PATTERN.fullmatch(token) else not_accepted(BAD_KEY)
        with suppress(InvalidToken):  # a good job token: it reads its job, no more
            self.signer.job_from_token(token)
            return SESSION_NEEDED
        try:
            self.signer.session_from_token(token, now=time.time())
        except InvalidToken as e:
            return not_accepted(e)
        return None
