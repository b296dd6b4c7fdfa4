"""Readiness: broker, database and storage reachable. Liveness is just "the loop runs"."""

import asyncio
from typing import Any

from faststream.asgi import AsgiResponse, get
from faststream.asgi.response import JSONResponse
from faststream.asgi.types import ASGIApp, Scope
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from common import metrics
from common.storage import Storage

CHECK_TIMEOUT = 3.0


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        result = await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as e:  # any failure means "not ready"; the reason is reported
        return name, f"error: {type(e).__name__}: {e}"[:200]
    return name, "ok" if result is not False else "error: unreachable"


async def readiness(
    broker: RabbitBroker,
    db: AsyncDatabase,
    storage: Storage,
) -> tuple[bool, dict[str, str]]:
    checks = dict(
        await asyncio.gather(
            _check("broker", broker.ping(timeout=CHECK_TIMEOUT)),
            _check("database", db.command("ping")),
            _check("storage", storage.check()),
        )
    )
    return all(v == "ok" for v in checks.values()), checks


def worker_routes(
    broker: RabbitBroker,
    db: AsyncDatabase,
    storage: Storage,
) -> list[tuple[str, ASGIApp]]:
    """`/healthz`, `/readyz` and `/metrics` for a FastStream worker's own HTTP port."""

    @get(include_in_schema=False)
    async def healthz(scope: Scope) -> AsgiResponse:
        return JSONResponse({"status": "ok"})

    @get(include_in_schema=False)
    async def readyz(scope: Scope) -> AsgiResponse:
        ok, checks = await readiness(broker, db, storage)
        return JSONResponse({"ready": ok, "checks": checks}, 200 if ok else 503)

    @get(include_in_schema=False)
    async def metrics_route(scope: Scope) -> AsgiResponse:
        body, content_type = metrics.render()
        return AsgiResponse(body, 200, {"Content-Type": content_type})

    return [("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics_route)]
