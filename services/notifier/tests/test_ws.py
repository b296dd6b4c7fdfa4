"""The WebSocket protocol against a real notifier, broker and database."""

import httpx
import pytest
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from common.events import JobStatus
from common.settings import CommonSettings
from common.tokens import Signer
from services.notifier.tests.conftest import StartNotifier
from services.notifier.tests.support import HAPPY_PATH, Client, Driver
from tests.support.backends import free_port


def seqs(messages: list[dict]) -> list[int]:
    return [m["seq"] for m in messages if m["type"] == "status"]


def assert_views_match(messages: list[dict]) -> None:
    """A status message that carries the job carries it as of that very step."""
    for m in messages:
        if "job" in m and m["type"] == "status":
            assert m["job"]["seq"] == m["seq"] and m["job"]["status"] == m["status"]


async def test_snapshot_then_every_step_to_completed(client: Client, driver: Driver) -> None:
    job = await driver.new_job()
    await client.subscribe(job["_id"], driver.token(job["_id"]))
    snapshot = await client.next()
    assert snapshot["type"] == "snapshot"
    assert snapshot["job"]["id"] == job["_id"] and snapshot["job"]["status"] == "queued"
    assert snapshot["job"]["seq"] == 1

    for status, progress in HAPPY_PATH:
        await driver.step(job["_id"], status, progress)
    messages = await client.until_seq(7)

    assert all(m["type"] == "status" for m in messages)
    assert seqs(messages) == [2, 3, 4, 5, 6, 7]
    assert [(m["status"], m["progress"]) for m in messages] == [(s.value, p) for s, p in HAPPY_PATH]
    assert_views_match(messages)
    final = messages[-1]["job"]
    assert final["status"] == "completed" and final["progress"] == 100
    assert final["video"]["url"] and final["video"]["codec"] == "h264"


async def test_reconnect_with_after_seq_misses_nothing(
    notifier: str, client: Client, driver: Driver
) -> None:
    job = await driver.new_job()
    token = driver.token(job["_id"])
    await client.subscribe(job["_id"], token)
    await client.next()  # snapshot
    for status, progress in HAPPY_PATH[:2]:
        await driver.step(job["_id"], status, progress)
    assert seqs(await client.until_seq(3)) == [2, 3]
    await client.ws.close()

    # While the client is away the job moves on to seq 6.
    for status, progress in HAPPY_PATH[2:5]:
        await driver.step(job["_id"], status, progress)

    async with connect(notifier.replace("http", "ws") + "/ws") as ws:
        again = Client(ws)
        await again.subscribe(job["_id"], token, after_seq=3)
        snapshot = await again.next()
        assert snapshot["type"] == "snapshot" and snapshot["job"]["seq"] == 6
        replayed = await again.until_seq(6)
        assert seqs(replayed) == [4, 5, 6]
        assert replayed[-1]["job"]["status"] == "storing"

        # The late events of steps 4-6 repeat nothing: the next message is step 7.
        await driver.step(job["_id"], *HAPPY_PATH[5])
        assert seqs(await again.until_seq(7)) == [7]


async def test_duplicated_reordered_and_lost_events_change_nothing(
    client: Client, driver: Driver
) -> None:
    job = await driver.new_job()
    await client.subscribe(job["_id"], driver.token(job["_id"]))
    await client.next()  # snapshot
    at_2 = await driver.step(job["_id"], JobStatus.PROMPTING, 10)
    assert seqs(await client.until_seq(2)) == [2]

    # A redelivered event and a stale one.
    await driver.publishers.status(at_2)
    await driver.publishers.status({**at_2, "seq": 1, "status": "queued", "progress": 0})
    # Two steps whose events arrive in the wrong order.
    at_3 = await driver.step(job["_id"], JobStatus.PROMPT_READY, 30, announce=False)
    at_4 = await driver.step(job["_id"], JobStatus.GENERATING, 40, announce=False)
    await driver.publishers.status(at_4)
    await driver.publishers.status(at_3)
    # A step whose event is lost, then one that is announced.
    await driver.step(job["_id"], JobStatus.GENERATING, 60, announce=False)
    await driver.step(job["_id"], JobStatus.STORING, 90)
    await driver.step(job["_id"], JobStatus.COMPLETED, 100)

    messages = await client.until_seq(7)
    assert seqs(messages) == [3, 4, 5, 6, 7]
    assert_views_match(messages)
    assert messages[-1]["job"]["status"] == "completed"


async def test_steps_without_any_event_reach_the_socket_by_the_resync(
    start_notifier: StartNotifier, driver: Driver
) -> None:
    """Events lost outright (published while the replica's queue was gone, or dropped on
    a failed read): the periodic resync still brings every step, in order, to the end."""
    url = await start_notifier(resync_seconds=0.3)
    job = await driver.new_job()
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        client = Client(ws)
        await client.subscribe(job["_id"], driver.token(job["_id"]))
        assert (await client.next())["type"] == "snapshot"
        await driver.step(job["_id"], *HAPPY_PATH[0], announce=False)
        assert seqs(await client.until_seq(2, within=3)) == [2]
        for status, progress in HAPPY_PATH[1:]:
            await driver.step(job["_id"], status, progress, announce=False)
        messages = await client.until_seq(7, within=3)
    assert seqs(messages) == [3, 4, 5, 6, 7]
    assert_views_match(messages)
    assert messages[-1]["job"]["status"] == "completed"


async def test_a_token_only_opens_its_own_job(
    client: Client, driver: Driver, settings: CommonSettings
) -> None:
    mine, other = await driver.new_job(), await driver.new_job()

    await client.subscribe(other["_id"], driver.token(mine["_id"]))
    refused = await client.next()
    assert refused == {
        "type": "error",
        "code": "forbidden",
        "message": refused["message"],
        "job_id": other["_id"],
    }
    forged = Signer(settings.model_copy(update={"signing_key": SecretStr("someone-else")}))
    await client.subscribe(other["_id"], forged.job_token(other["_id"]))
    assert (await client.next())["code"] == "invalid_token"
    await client.subscribe("f" * 32, driver.token("f" * 32))
    assert (await client.next())["code"] == "job_not_found"

    await client.subscribe(mine["_id"], driver.token(mine["_id"]))
    assert (await client.next())["job"]["id"] == mine["_id"]
    # The refused job moves first; the socket only ever hears about its own.
    await driver.step(other["_id"], JobStatus.PROMPTING, 10)
    await driver.step(mine["_id"], JobStatus.PROMPTING, 10)
    messages = await client.until_seq(2)
    assert [(m["type"], m["job_id"]) for m in messages] == [("status", mine["_id"])]


async def test_unsubscribe_stops_the_pushes(client: Client, driver: Driver) -> None:
    first, second = await driver.new_job(), await driver.new_job()
    for job in (first, second):
        await client.subscribe(job["_id"], driver.token(job["_id"]))
        assert (await client.next())["type"] == "snapshot"
    await client.send(op="unsubscribe", job_id=first["_id"])
    assert await client.next() == {"type": "unsubscribed", "job_id": first["_id"]}
    await driver.step(first["_id"], JobStatus.PROMPTING, 10)
    await driver.step(second["_id"], JobStatus.PROMPTING, 10)
    messages = await client.until_seq(2)
    assert [m["job_id"] for m in messages] == [second["_id"]]


async def test_bad_requests_get_an_error_and_the_socket_stays_usable(client: Client) -> None:
    for raw in ("{not json", '{"op": "shout"}', "[]", '{"op": "subscribe", "job_id": "x"}'):
        await client.ws.send(raw)
        error = await client.next()
        assert error["type"] == "error" and error["code"] == "bad_request", raw
    assert "token" in error["message"]
    await client.send(op="ping")
    assert await client.next() == {"type": "pong"}


async def test_oversized_message_closes_with_1009(client: Client) -> None:
    await client.send(op="ping", padding="x" * 5000)
    assert (await client.next())["code"] == "bad_request"
    with pytest.raises(ConnectionClosed) as closed:
        await client.next()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_repeated_abuse_closes_with_1008(client: Client) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(20):
            await client.ws.send("nonsense")
            assert (await client.next())["code"] == "bad_request"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_server_heartbeat(start_notifier: StartNotifier) -> None:
    url = await start_notifier(heartbeat_seconds=0.2)
    async with connect(url.replace("http", "ws") + "/ws") as ws:
        assert await Client(ws).next(within=5) == {"type": "ping"}


async def test_every_replica_serves_its_own_sockets(
    start_notifier: StartNotifier, driver: Driver
) -> None:
    job = await driver.new_job()
    urls = [await start_notifier(), await start_notifier()]
    async with (
        connect(urls[0].replace("http", "ws") + "/ws") as a,
        connect(urls[1].replace("http", "ws") + "/ws") as b,
    ):
        clients = [Client(a), Client(b)]
        for c in clients:
            await c.subscribe(job["_id"], driver.token(job["_id"]))
            assert (await c.next())["type"] == "snapshot"
        await driver.step(job["_id"], JobStatus.PROMPTING, 10)
        for c in clients:
            assert seqs(await c.until_seq(2)) == [2]


async def test_health_readiness_and_metrics(start_notifier: StartNotifier) -> None:
    ops_port = free_port()
    notifier = await start_notifier(ops_port=ops_port)
    async with httpx.AsyncClient(base_url=notifier) as public:
        assert (await public.get("/healthz")).json() == {"status": "ok"}
        ready = await public.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        assert (await public.get("/metrics")).status_code == 404
    # Detail and metrics only on the ops port, which the ingress does not expose.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops_port}") as ops:
        assert (await ops.get("/healthz")).json() == {"status": "ok"}
        ready = await ops.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert set(ready.json()["checks"]) == {"broker", "database", "storage"}
        metrics = (await ops.get("/metrics")).text
        assert "pv_ws_connections" in metrics
