"""HTTP request metrics of the FastAPI services (gateway, notifier), as pure ASGI
middleware so file responses keep streaming."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.metrics import HTTP_REQUESTS, HTTP_SECONDS


class RequestMetrics:
    """Count and time requests by route template (never the raw path: ids would
    make a time series per job)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(route=template, method=method, status=str(status)).inc()
            HTTP_SECONDS.labels(route=template, method=method).observe(
                time.perf_counter() - started
            )
