"""Who may watch a job over the WebSocket, and sockets that misbehave: the owner's
session or the job's token opens it, nothing else, and only while it lasts; floods,
idle and half-open sockets, and too many from one address, are closed."""

import asyncio
import base64
import contextlib
import json
import os
from typing import Any

import pytest
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from common.auth import SessionStore
from common.events import JobStatus
from common.tokens import Signer
from services.notifier.tests.conftest import StartNotifier
from services.notifier.tests.support import Client, Driver


@pytest.fixture
def sessions(mongo_db: Any, driver: Driver) -> SessionStore:
    return SessionStore(mongo_db, driver.signer)


async def test_the_owners_session_watches_every_one_of_their_jobs(
    client: Client, driver: Driver, sessions: SessionStore
) -> None:
    alice = await sessions.create("alice@example.com", 3600)
    jobs = [await driver.new_job("alice@example.com") for _ in range(2)]
    for job in jobs:
        await client.subscribe(job["_id"], alice.token)
        snapshot = await client.next()
        assert snapshot["type"] == "snapshot" and snapshot["job"]["id"] == job["_id"]


async def test_nobody_else_watches_a_job(
    client: Client, driver: Driver, sessions: SessionStore
) -> None:
    job = await driver.new_job("alice@example.com")
    mallory = await sessions.create("mallory@example.com", 3600)
    await client.subscribe(job["_id"], mallory.token)
    refused = await client.next()
    assert refused["type"] == "error" and refused["code"] == "job_not_found"
    assert refused["job_id"] == job["_id"] and "job" not in refused
    # The same answer as for a job that does not exist.
    await client.subscribe("0" * 32, mallory.token)
    assert (await client.next())["code"] == "job_not_found"

    # The job moves on; Mallory's socket hears nothing of it.
    await driver.step(job["_id"], JobStatus.PROMPTING, 10)
    await client.send(op="ping")
    assert await client.next() == {"type": "pong"}


async def test_a_revoked_or_forged_session_is_refused(
    client: Client, driver: Driver, sessions: SessionStore, settings: Any
) -> None:
    job = await driver.new_job("alice@example.com")
    alice = await sessions.create("alice@example.com", 3600)
    await sessions.revoke(alice.session_id)
    await client.subscribe(job["_id"], alice.token)
    assert (await client.next())["code"] == "invalid_token"

    forger = Signer(settings.model_copy(update={"signing_key": SecretStr("someone-else")}))
    forged = forger.session_token("x", "alice@example.com", 4_000_000_000)
    await client.subscribe(job["_id"], forged)
    assert (await client.next())["code"] == "invalid_token"
    # The job's own token still shares it.
    await client.subscribe(job["_id"], driver.token(job["_id"]))
    assert (await client.next())["type"] == "snapshot"


async def test_a_message_flood_closes_the_socket(start_notifier: StartNotifier) -> None:
    url = await start_notifier(max_messages_per_second=5)
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        for _ in range(40):
            await ws.send('{"op":"ping"}')
        replies = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                replies.append(await asyncio.wait_for(ws.recv(), 5))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert '"code":"rate_limited"' in replies[-1]
    assert 1 <= len(replies) - 1 <= 12  # a burst of twice the rate was answered


async def test_too_many_subscriptions_are_refused(
    start_notifier: StartNotifier, driver: Driver
) -> None:
    url = await start_notifier(max_subscriptions_per_socket=2)
    jobs = [await driver.new_job() for _ in range(3)]
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        client = Client(ws)
        for job in jobs[:2]:
            await client.subscribe(job["_id"], driver.token(job["_id"]))
            assert (await client.next())["type"] == "snapshot"
        await client.subscribe(jobs[2]["_id"], driver.token(jobs[2]["_id"]))
        assert (await client.next())["code"] == "too_many_subscriptions"


async def test_an_idle_socket_is_closed_but_a_watching_one_is_not(
    start_notifier: StartNotifier, driver: Driver
) -> None:
    url = await start_notifier(idle_timeout_seconds=0.3, heartbeat_seconds=60)
    async with connect(url.replace("http", "ws") + "/ws") as idle:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(idle.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000

    job = await driver.new_job()
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        watcher = Client(ws)
        await watcher.subscribe(job["_id"], driver.token(job["_id"]))
        assert (await watcher.next())["type"] == "snapshot"
        await asyncio.sleep(0.6)  # twice the idle limit, in silence
        await driver.step(job["_id"], JobStatus.PROMPTING, 10)
        assert (await watcher.next())["seq"] == 2


async def test_a_half_open_socket_is_dropped_by_the_protocol_ping(
    start_notifier: StartNotifier,
) -> None:
    """A peer that vanished without closing never answers the server's pings."""
    url = await start_notifier(
        server_options={"ws_ping_interval": 0.2, "ws_ping_timeout": 0.2},
        idle_timeout_seconds=60,
        heartbeat_seconds=60,
    )
    port = int(url.rsplit(":", 1)[1])
    key = base64.b64encode(os.urandom(16)).decode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    assert b"101" in await reader.readline()
    # Read what the server sends (its pings) and never answer: it must hang up.
    async with asyncio.timeout(5):
        while await reader.read(1024):
            pass
    writer.close()


async def test_signing_out_ends_the_sessions_subscriptions(
    start_notifier: StartNotifier, driver: Driver, sessions: SessionStore
) -> None:
    url = await start_notifier(resync_seconds=0.2)
    alice = await sessions.create("alice@example.com", 3600)
    mine = await driver.new_job("alice@example.com")
    shared = await driver.new_job("alice@example.com")
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        client = Client(ws)
        await client.subscribe(mine["_id"], alice.token)
        await client.subscribe(shared["_id"], driver.token(shared["_id"]))
        assert [(await client.next())["type"] for _ in range(2)] == ["snapshot", "snapshot"]

        await sessions.revoke(alice.session_id)  # what the gateway's logout does
        ended = await client.next(within=5)
        assert ended["type"] == "error" and ended["code"] == "invalid_token"
        assert ended["job_id"] == mine["_id"]

        # Both jobs move on: only the one watched with its job token is heard of.
        await driver.step(mine["_id"], JobStatus.PROMPTING, 10)
        await driver.step(shared["_id"], JobStatus.PROMPTING, 10)
        messages = await client.until_seq(2)
        assert [(m["type"], m["job_id"]) for m in messages] == [("status", shared["_id"])]
        await asyncio.sleep(0.5)  # resync passes: still nothing of the signed-out job
        await client.send(op="ping")
        assert await client.next() == {"type": "pong"}


async def test_an_expired_session_or_job_token_ends_its_subscription(
    start_notifier: StartNotifier, driver: Driver, sessions: SessionStore
) -> None:
    url = await start_notifier(resync_seconds=0.2, job_token_ttl_seconds=3)
    alice = await sessions.create("alice@example.com", 3)
    by_session = await driver.new_job("alice@example.com")
    by_token = await driver.new_job("alice@example.com")
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        client = Client(ws)
        await client.subscribe(by_session["_id"], alice.token)
        await client.subscribe(by_token["_id"], driver.token(by_token["_id"]))
        assert [(await client.next())["type"] for _ in range(2)] == ["snapshot", "snapshot"]
        ended = [await client.next(within=8) for _ in range(2)]
    assert {(m["type"], m["code"], m["job_id"]) for m in ended} == {
        ("error", "invalid_token", by_session["_id"]),
        ("error", "invalid_token", by_token["_id"]),
    }


async def test_a_revoked_job_token_ends_its_subscription_and_opens_nothing(
    start_notifier: StartNotifier, driver: Driver
) -> None:
    url = await start_notifier(resync_seconds=0.2)
    job = await driver.new_job("alice@example.com")
    shared = driver.token(job["_id"])
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        client = Client(ws)
        await client.subscribe(job["_id"], shared)
        assert (await client.next())["type"] == "snapshot"
        # The owner revokes the job's tokens (POST /api/v1/jobs/{id}/token).
        await driver.repo.jobs.update_one({"_id": job["_id"]}, {"$inc": {"token_version": 1}})
        ended = await client.next(within=8)
        assert (ended["type"], ended["code"], ended["job_id"]) == (
            "error",
            "invalid_token",
            job["_id"],
        )
        await client.subscribe(job["_id"], shared)
        refused = await client.next()
        assert (refused["type"], refused["code"]) == ("error", "invalid_token")
        assert "revoked" in refused["message"]
        await client.subscribe(job["_id"], driver.signer.job_token(job["_id"], 1))
        assert (await client.next())["type"] == "snapshot"


async def test_a_socket_left_with_only_final_jobs_is_closed_when_idle(
    start_notifier: StartNotifier, driver: Driver
) -> None:
    """Heartbeats alone would keep it open forever, waiting for nothing."""
    url = await start_notifier(idle_timeout_seconds=0.5, heartbeat_seconds=0.1)
    job = await driver.new_job()
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        client = Client(ws)
        await client.subscribe(job["_id"], driver.token(job["_id"]))
        assert (await client.next())["type"] == "snapshot"
        await driver.step(job["_id"], JobStatus.CANCELED, 0)
        received = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(await client.next(within=5))
    assert [m["status"] for m in received if m["type"] == "status"] == ["canceled"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def _pong(url: str, headers: dict[str, str] | None = None) -> str:
    """`pong` when the notifier serves this socket, else the error code it closed it with."""
    async with connect(url.replace("http", "ws") + "/ws", additional_headers=headers) as ws:
        with contextlib.suppress(ConnectionClosed):  # a refused socket may be closed already
            await ws.send('{"op":"ping"}')
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if answer["type"] == "error":
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            return str(answer["code"])
        return str(answer["type"])


async def test_connections_per_address_are_capped(start_notifier: StartNotifier) -> None:
    url = await start_notifier(max_connections_per_ip=2)
    async with connect(url.replace("http", "ws") + "/ws") as first:
        async with connect(url.replace("http", "ws") + "/ws"):
            assert await _pong(url) == "too_many_connections"
            await first.send('{"op":"ping"}')
            assert json.loads(await first.recv()) == {"type": "pong"}
        # A closed socket frees its place (once the server has seen it go).
        for _ in range(50):
            if (answer := await _pong(url)) == "pong":
                break
            await asyncio.sleep(0.1)
        assert answer == "pong"


async def test_behind_a_trusted_proxy_each_forwarded_client_counts(
    start_notifier: StartNotifier,
) -> None:
    # As in production: uvicorn leaves the peer alone, the notifier reads the header.
    url = await start_notifier(
        max_connections_per_ip=1,
        trusted_proxies="127.0.0.1/32",
    )
    one, other = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
    async with connect(url.replace("http", "ws") + "/ws", additional_headers=one):
        assert await _pong(url, other) == "pong"
        assert await _pong(url, one) == "too_many_connections"


async def test_a_client_on_a_private_last_hop_cannot_choose_its_address(
    start_notifier: StartNotifier,
) -> None:
    """Without TRUSTED_PROXIES (the chart's default) a peer on a private or loopback
    address (a pod, a VPN, a load balancer that rewrites sources) gets no say: each
    X-Forwarded-For it invents still counts as its own one address. Before uvicorn ran with
    `--no-proxy-headers`, it believed the header from loopback and this escaped the cap."""
    from scripts.run import SERVICES

    (notifier,) = (s for s in SERVICES if s.name == "notifier")
    assert "--no-proxy-headers" in notifier.extra_args  # what start_server mirrors
    url = await start_notifier(max_connections_per_ip=1)
    spoofed = [{"X-Forwarded-For": f"203.0.113.{n}"} for n in (1, 2, 3)]
    async with connect(url.replace("http", "ws") + "/ws", additional_headers=spoofed[0]):
        assert await _pong(url, spoofed[1]) == "too_many_connections"
        assert await _pong(url, spoofed[2]) == "too_many_connections"
