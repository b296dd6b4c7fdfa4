"""The operational endpoints of the public HTTP services (gateway, notifier), off the public
path: `/healthz`, `/readyz` with each backend's state and `/metrics` on a port of their
own (`OPS_PORT`), which the ingress never routes to (the chart's probes and ServiceMonitor
use it). Unset, they are not served at all.

The public port keeps `/healthz` and a `/readyz` that says only ready or not, asking the
backends at most once per `PUBLIC_READYZ_SECONDS` however many strangers ask.

The workers (prompt, video) have no public port: their one HTTP port is their ops port.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common import metrics

Readiness = Callable[[], Awaitable[tuple[bool, dict[str, str]]]]

# How long the public /readyz answer is reused.
PUBLIC_READYZ_SECONDS = 5.0


def ops_app(readiness: Readiness) -> Starlette:
    """`/healthz`, `/readyz` (with every check's result) and `/metrics`."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok, checks = await readiness()
        return JSONResponse({"ready": ok, "checks": checks}, 200 if ok else 503)

    async def metrics_route(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_route),
        ]
    )


class PublicReadiness:
    """Ready or not, for anyone: no backend's name or error, and the backends asked at
    most once per `seconds` (concurrent callers wait for the one check in flight)."""

    def __init__(self, readiness: Readiness, seconds: float = PUBLIC_READYZ_SECONDS) -> None:
        self.readiness = readiness
        self.seconds = seconds
        self._lock = asyncio.Lock()
        self._ready = False
        self._checked_at = float("-inf")

    async def __call__(self) -> bool:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.seconds:
                self._ready, _ = await self.readiness()
                self._checked_at = time.monotonic()
            return self._ready

    def response(self, ready: bool) -> JSONResponse:
        return JSONResponse({"ready": ready}, 200 if ready else 503)


class _OpsServer(uvicorn.Server):
    """A second server in the main one's process: signals stay the main server's, whose
    lifespan stops this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Starlette, host: str, port: int | None) -> AsyncIterator[None]:
    """Serve `app` on `host:port` for the duration of the block (nothing when no port)."""
    if not port:
        yield
        return
    # No access_log=False: uvicorn turns that into emptying the process-wide
    # "uvicorn.access" logger, which silenced the public port's access log too. Ops
    # requests are logged like a worker's one port's.
    config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_config=None)
    server = _OpsServer(config)
    task = asyncio.create_task(server.serve(), name="ops-server")
    while not server.started:
        if task.done():
            task.result()  # the bind failed: raise why
            raise RuntimeError(f"the ops server on {host}:{port} stopped while starting")
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task
