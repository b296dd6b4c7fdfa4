"""The ops port (common/ops.py): a second server in the process answering /metrics and the
detailed /readyz; the public readiness says only yes or no and spares the backends."""

import asyncio
import logging

import httpx

from common.ops import PublicReadiness, ops_app, serving
from tests.support.backends import free_port


async def test_the_ops_port_serves_detail_and_metrics_until_the_block_ends() -> None:
    async def readiness() -> tuple[bool, dict[str, str]]:
        return False, {"database": "error: ServerSelectionTimeoutError: mongo:27017"}

    port = free_port()
    async with (
        serving(ops_app(readiness), "127.0.0.1", port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as ops,
    ):
        ready = await ops.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("error")
        assert "pv_jobs_submitted_total" in (await ops.get("/metrics")).text
    try:
        async with httpx.AsyncClient() as late:
            await late.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        raise AssertionError("the ops server still answers after its block")
    except httpx.ConnectError:
        pass


async def test_the_ops_server_leaves_the_public_ports_access_log_alone() -> None:
    """uvicorn's loggers are the process's: starting the ops server must not silence the
    access log the public server writes (refused uploads, downloads)."""

    async def readiness() -> tuple[bool, dict[str, str]]:
        return True, {}

    access = logging.getLogger("uvicorn.access")
    before = (list(access.handlers), access.propagate)
    async with serving(ops_app(readiness), "127.0.0.1", free_port()):
        assert (list(access.handlers), access.propagate) == before


async def test_public_readiness_asks_the_backends_once_however_many_ask() -> None:
    asked = 0

    async def readiness() -> tuple[bool, dict[str, str]]:
        nonlocal asked
        asked += 1
        await asyncio.sleep(0.05)
        return True, {"broker": "ok"}

    public = PublicReadiness(readiness, seconds=60)
    answers = await asyncio.gather(*(public() for _ in range(50)))
    assert answers == [True] * 50 and asked == 1
    assert public.response(True).body == b'{"ready":true}'
