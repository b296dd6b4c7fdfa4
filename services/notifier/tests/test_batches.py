"""Batch subscriptions against a real notifier, broker and database: the batch document
and its jobs are stored as the gateway stores them (docs/catalogues.md, SCHEMA of issue
11), and the jobs move through `Pipeline` on the real broker, as the workers move them."""

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from websockets.asyncio.client import connect

from common.auth import Session, SessionStore
from common.batch_progress import BATCHES
from common.errors import user_message
from common.events import JobStatus
from common.jobs import Job, new_job_id
from common.metrics import MONGODB_COMMANDS
from common.storage import upload_key
from services.notifier.tests.conftest import StartNotifier
from services.notifier.tests.support import HAPPY_PATH, Client, Driver

ALICE = "alice@example.com"
PROMPT_USD = 0.002  # one prompt per product, paid by its first variant's job
CLIP_USD = 0.35


@dataclass
class Batch:
    id: str
    jobs: list[Job]  # row by row, variant by variant

    @property
    def job_ids(self) -> list[str]:
        return [job["_id"] for job in self.jobs]


async def make_batch(driver: Driver, rows: int, variants: int = 1, owner: str = ALICE) -> Batch:
    """A batch as `POST /api/v1/batches` stores it: the batch document, one product per
    row, one job per variant carrying batch_id, product_id, sku, row and variant."""
    batch_id = new_job_id()
    jobs: list[Job] = []
    batch_rows = []
    for row in range(1, rows + 1):
        product_id = new_job_id()
        sku = f"SKU-{row}"
        row_jobs = []
        for variant in range(variants):
            job_id = new_job_id()
            job, _ = await driver.repo.create(
                {
                    "_id": job_id,
                    "owner": owner,
                    "client_ip": "127.0.0.1",
                    "title": f"Mug {row}",
                    "description": "Stoneware.",
                    "options": {"aspect_ratio": "9:16", "duration": 5, "style": None},
                    "image": {
                        "key": upload_key(job_id, "png"),
                        "sha256": "0" * 64,
                        "width": 600,
                        "height": 900,
                        "content_type": "image/png",
                    },
                    "batch_id": batch_id,
                    "product_id": product_id,
                    "sku": sku,
                    "row": row,
                    "variant": variant,
                    "prompt": {
                        "text": "A mug.",
                        "source": "llm",
                        "model": "m",
                        "cost": PROMPT_USD if variant == 0 else 0.0,
                    },
                }
            )
            row_jobs.append(job_id)
            jobs.append(job)
        batch_rows.append(
            {"row": row, "sku": sku, "title": f"Mug {row}", "product_id": product_id,
             "job_ids": row_jobs}
        )  # fmt: skip
    await driver.repo.jobs.database[BATCHES].insert_one(
        {
            "_id": batch_id,
            "owner": owner,
            "created_at": datetime.now(UTC),
            "status": "running",
            "jobs_total": len(jobs),
            "rows": batch_rows,
            "variants": [{"preset": "reels", "aspect_ratio": "9:16", "duration": 5}],
            "max_cost_usd": None,
            "idempotency_key": "secret-key",
        }
    )
    return Batch(batch_id, jobs)


async def finish(driver: Driver, job_id: str, *, announce: bool = True) -> None:
    """Every step to `completed`, the provider's cost stored on the way (as the video
    worker stores its provider job)."""
    for status, progress in HAPPY_PATH:
        if status is JobStatus.STORING:
            await driver.repo.jobs.update_one(
                {"_id": job_id}, {"$set": {"provider_job": {"name": "fake", "cost": CLIP_USD}}}
            )
        await driver.step(job_id, status, progress, announce=announce)


async def fail(driver: Driver, job_id: str) -> None:
    """Fails the job as a worker does (the stable message of its code on the job)."""
    await driver.step(job_id, JobStatus.PROMPTING, 10)
    assert await driver.pipeline.fail(job_id, code="invalid_image", detail="test") is not None


@pytest.fixture
async def alice(mongo_db: Any, driver: Driver) -> Session:
    return await SessionStore(mongo_db, driver.signer).create(ALICE, 3600)


@pytest.fixture
async def url(start_notifier: StartNotifier) -> str:
    return (await start_notifier()).replace("http", "ws") + "/ws"


@pytest.fixture
async def ws_client(url: str) -> AsyncIterator[Client]:
    async with connect(url, max_size=2**22) as ws:
        yield Client(ws)


async def subscribe(client: Client, batch_id: str, token: str, after_seq: int | None = None):
    op: dict[str, Any] = {"op": "subscribe", "batch_id": batch_id, "token": token}
    if after_seq is not None:
        op["after_seq"] = after_seq
    await client.send(**op)
    return await client.next()


async def until(client: Client, done: Any, within: float = 20) -> list[dict[str, Any]]:
    """Batch messages until `done(the last one, the jobs listed so far)` holds."""
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while not received or not done(received[-1], ended_in(received)):
            message = await client.next(within)
            if message["type"] != "ping":
                received.append(message)
    return received


def ended_in(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Job id → status of the jobs the messages list (a job may be listed a moment before
    the counts include it: the counts are read just before the jobs)."""
    return {job["job_id"]: job["status"] for m in messages for job in m["jobs"]}


def seq_of(jobs: list[Job]) -> int:
    return sum(job["seq"] for job in jobs)


async def stored(driver: Driver, batch: Batch) -> list[Job]:
    return [doc async for doc in driver.repo.jobs.find({"batch_id": batch.id})]


async def test_the_snapshot_is_the_batch_as_stored(
    ws_client: Client, driver: Driver, alice: Session
) -> None:
    batch = await make_batch(driver, rows=3, variants=2)
    other = await driver.new_job(ALICE)  # not in the batch: counts nowhere
    await finish(driver, other["_id"])
    first, second, third = batch.job_ids[:3]
    await finish(driver, first)
    await finish(driver, second)
    await fail(driver, third)
    await driver.step(batch.job_ids[3], JobStatus.PROMPTING, 10)

    snapshot = await subscribe(ws_client, batch.id, alice.token)

    assert snapshot["type"] == "batch_snapshot" and snapshot["batch_id"] == batch.id
    assert snapshot["counts"] == {
        "queued": 2, "prompting": 1, "prompt_ready": 0, "generating": 0, "storing": 0,
        "completed": 2, "failed": 1, "canceled": 0,
    }  # fmt: skip
    # Three products' prompts (each paid by one of its jobs), two clips.
    assert snapshot["cost_usd"] == pytest.approx(3 * PROMPT_USD + 2 * CLIP_USD)
    assert snapshot["seq"] == seq_of(await stored(driver, batch)) == 7 + 7 + 3 + 2 + 1 + 1
    view = snapshot["batch"]
    assert view["id"] == batch.id and view["jobs_total"] == 6 and view["status"] == "running"
    assert [r["job_ids"] for r in view["rows"]] == [batch.job_ids[i : i + 2] for i in (0, 2, 4)]
    assert set(view) == {
        "id", "status", "created_at", "variants", "max_cost_usd", "jobs_total", "rows"
    }  # fmt: skip
    # Every job that has ended, in row and variant order, a failure with its reason.
    assert snapshot["jobs"] == [
        {"job_id": first, "row": 1, "sku": "SKU-1", "variant": 0, "status": "completed", "seq": 7},
        {"job_id": second, "row": 1, "sku": "SKU-1", "variant": 1, "status": "completed",
         "seq": 7},
        {"job_id": third, "row": 2, "sku": "SKU-2", "variant": 0, "status": "failed", "seq": 3,
         "error": {"code": "invalid_image", "message": user_message("invalid_image")}},
    ]  # fmt: skip


async def test_progress_as_jobs_end(ws_client: Client, driver: Driver, alice: Session) -> None:
    batch = await make_batch(driver, rows=3)
    a, b, c = batch.job_ids
    snapshot = await subscribe(ws_client, batch.id, alice.token)
    assert snapshot["counts"]["queued"] == 3 and snapshot["jobs"] == []
    assert snapshot["cost_usd"] == pytest.approx(3 * PROMPT_USD) and snapshot["seq"] == 3

    await finish(driver, a)
    messages = await until(ws_client, lambda m, e: m["counts"]["completed"] == 1 and a in e)
    assert all(m["type"] == "batch_progress" and m["batch_id"] == batch.id for m in messages)
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(seqs) and seqs[0] > snapshot["seq"]  # never back
    ended = [job for m in messages for job in m["jobs"]]
    assert ended == [
        {"job_id": a, "row": 1, "sku": "SKU-1", "variant": 0, "status": "completed", "seq": 7}
    ]  # a job that has not ended is in the counts only
    assert messages[-1]["cost_usd"] == pytest.approx(3 * PROMPT_USD + CLIP_USD)

    await fail(driver, b)
    messages = await until(ws_client, lambda m, e: m["counts"]["failed"] == 1 and b in e)
    ended = [job for m in messages for job in m["jobs"]]
    assert [(j["job_id"], j["status"], j["error"]["code"]) for j in ended] == [
        (b, "failed", "invalid_image")
    ]

    # A retried job leaves its final status: the table hears of it.
    retried = await driver.repo.retry(b)
    assert retried is not None
    await driver.publishers.status(retried)
    messages = await until(ws_client, lambda m, e: m["counts"]["failed"] == 0 and b in e)
    assert [(j["job_id"], j["status"]) for m in messages for j in m["jobs"]] == [
        (b, "prompt_ready")
    ]

    await finish(driver, c)
    for status, progress in HAPPY_PATH[2:]:
        await driver.step(b, status, progress)
    last = (await until(ws_client, lambda m, e: m["counts"]["completed"] == 3))[-1]
    assert last["seq"] == seq_of(await stored(driver, batch))
    assert last["cost_usd"] == pytest.approx(3 * PROMPT_USD + 2 * CLIP_USD)


async def test_at_most_two_messages_a_second_and_the_last_counts_always_arrive(
    ws_client: Client, driver: Driver, alice: Session
) -> None:
    batch = await make_batch(driver, rows=20)
    await subscribe(ws_client, batch.id, alice.token)
    aggregates = MONGODB_COMMANDS.labels(command="aggregate", collection="jobs")
    before = aggregates._value.get()
    started = time.monotonic()

    final = sum(1 + len(HAPPY_PATH[:-1]) for _ in batch.job_ids)
    arrivals: list[float] = []
    messages: list[dict[str, Any]] = []

    async def read() -> None:  # from the start: arrival times as the client sees them
        while not messages or messages[-1]["seq"] < final:
            message = await ws_client.next(within=20)
            if message["type"] == "batch_progress":
                messages.append(message)
                arrivals.append(time.monotonic())

    reader = asyncio.create_task(read())

    # 20 jobs × 5 steps = 100 status events, as fast as the broker takes them.
    async def run(job_id: str) -> None:
        for status, progress in HAPPY_PATH[:-1]:
            await driver.step(job_id, status, progress)

    await asyncio.gather(*(run(job_id) for job_id in batch.job_ids))
    await reader
    elapsed = time.monotonic() - started

    # The last message has the final state, however the events were batched together.
    assert messages[-1]["seq"] == final
    assert messages[-1]["counts"]["storing"] == 20 and messages[-1]["jobs"] == []
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap > 0.4 for gap in gaps), gaps  # 0.5 s apart when sent, give or take
    assert len(messages) <= 2 * elapsed + 1
    # No read per event: one aggregation per batch per throttle period at most.
    assert aggregates._value.get() - before <= 2 * elapsed + 2 < 100

    # Nothing more once nothing moves.
    with pytest.raises(TimeoutError):
        while True:
            if (await ws_client.next(within=1.5))["type"] != "ping":
                raise AssertionError("a message with nothing new")


async def test_resume_with_after_seq_after_a_reconnect(
    url: str, driver: Driver, alice: Session
) -> None:
    batch = await make_batch(driver, rows=6)
    old_1, old_2, live, gone_1, gone_2, later = batch.job_ids
    # Two jobs that ended an hour ago (as stored by the workers then).
    for job_id in (old_1, old_2):
        await finish(driver, job_id)
        await driver.repo.jobs.update_one(
            {"_id": job_id}, [{"$set": {"history": {"$map": {"input": "$history", "in": {
                "$mergeObjects": ["$$this", {"at": {"$subtract": ["$$this.at", 3_600_000]}}]
            }}}}}]
        )  # fmt: skip
    async with connect(url) as ws:
        client = Client(ws)
        snapshot = await subscribe(client, batch.id, alice.token)
        assert [j["job_id"] for j in snapshot["jobs"]] == [old_1, old_2]
        await finish(driver, live)
        last = (await until(client, lambda m, e: m["counts"]["completed"] == 3 and live in e))[-1]
    seen = last["seq"]

    # While the client is away: two jobs end, one moves on.
    await finish(driver, gone_1)
    await fail(driver, gone_2)
    await driver.step(later, JobStatus.PROMPTING, 10)

    async with connect(url) as ws:
        client = Client(ws)
        snapshot = await subscribe(client, batch.id, alice.token, after_seq=seen)
        assert snapshot["type"] == "batch_snapshot"
        assert snapshot["seq"] == seq_of(await stored(driver, batch)) == seen + 6 + 2 + 1
        assert snapshot["counts"]["completed"] == 4 and snapshot["counts"]["failed"] == 1
        ended = {j["job_id"]: j["status"] for j in snapshot["jobs"]}
        # What ended while away; the job seen just before (within the resume margin) may
        # come again; what ended long before does not.
        assert {gone_1: "completed", gone_2: "failed"}.items() <= ended.items()
        assert set(ended) <= {gone_1, gone_2, live}

        # And on from there.
        await finish(driver, later)
        messages = await until(client, lambda m, e: m["counts"]["completed"] == 5 and later in e)
        assert ended_in(messages) == {later: "completed"}
        last = messages[-1]

    # Resuming at the current seq: nothing was missed, nothing is listed.
    async with connect(url) as ws:
        client = Client(ws)
        snapshot = await subscribe(client, batch.id, alice.token, after_seq=last["seq"])
        assert snapshot["seq"] == last["seq"] and snapshot["jobs"] == []


async def test_only_the_owner_may_watch_a_batch(
    ws_client: Client, driver: Driver, alice: Session, mongo_db: Any
) -> None:
    batch = await make_batch(driver, rows=2)
    mallory = await SessionStore(mongo_db, driver.signer).create("mallory@example.com", 3600)

    refused = await subscribe(ws_client, batch.id, mallory.token)
    unknown = await subscribe(ws_client, "0" * 32, mallory.token)
    assert refused == {
        "type": "error",
        "code": "batch_not_found",
        "message": "You have no such batch.",
        "batch_id": batch.id,
    }
    assert unknown == {**refused, "batch_id": "0" * 32}  # the same answer as for no batch
    # A job's own token opens that job, never its batch.
    job_token = driver.token(batch.job_ids[0])
    assert (await subscribe(ws_client, batch.id, job_token))["code"] == "forbidden"
    assert (await subscribe(ws_client, batch.id, "forged"))["code"] == "invalid_token"

    # The batch moves on; this socket hears nothing of it.
    await finish(driver, batch.job_ids[0])
    await asyncio.sleep(1)
    await ws_client.send(op="ping")
    assert await ws_client.next() == {"type": "pong"}


async def test_lost_events_are_caught_up_by_the_resync(
    start_notifier: StartNotifier, driver: Driver, alice: Session
) -> None:
    url = (await start_notifier(resync_seconds=0.3)).replace("http", "ws") + "/ws"
    batch = await make_batch(driver, rows=2)
    async with connect(url) as ws:
        client = Client(ws)
        await subscribe(client, batch.id, alice.token)
        await finish(driver, batch.job_ids[1], announce=False)  # no event at all
        messages = await until(client, lambda m, e: m["counts"]["completed"] == 1 and e)
        assert ended_in(messages) == {batch.job_ids[1]: "completed"}


async def test_a_batch_of_500_is_one_subscription(
    start_notifier: StartNotifier, driver: Driver, alice: Session
) -> None:
    url = (await start_notifier(max_subscriptions_per_socket=1)).replace("http", "ws") + "/ws"
    batch_id = new_job_id()
    now = datetime.now(UTC) - timedelta(seconds=1)
    jobs = [
        {"_id": new_job_id(), "owner": ALICE, "batch_id": batch_id, "row": i + 1,
         "sku": f"S{i}", "variant": 0, "status": "queued", "progress": 0, "seq": 1,
         "history": [{"seq": 1, "status": "queued", "progress": 0, "at": now}],
         "title": "t", "description": "d", "options": {}, "created_at": now, "updated_at": now}
        for i in range(500)
    ]  # fmt: skip
    await driver.repo.jobs.insert_many(jobs)
    await driver.repo.jobs.database[BATCHES].insert_one(
        {"_id": batch_id, "owner": ALICE, "created_at": now, "status": "running",
         "jobs_total": 500, "rows": [], "variants": [], "max_cost_usd": None}
    )  # fmt: skip
    async with connect(url) as ws:
        client = Client(ws)
        snapshot = await subscribe(client, batch_id, alice.token)
        assert snapshot["counts"]["queued"] == 500 and snapshot["seq"] == 500
        await driver.step(jobs[499]["_id"], JobStatus.CANCELED, 0)
        messages = await until(client, lambda m, e: m["counts"]["canceled"] == 1 and e)
        assert ended_in(messages) == {jobs[499]["_id"]: "canceled"}
        # The one subscription this socket may have is taken.
        other = await make_batch(driver, rows=1)
        refused = await subscribe(client, other.id, alice.token)
        assert refused["code"] == "too_many_subscriptions"


async def test_signing_out_ends_the_batch_subscription(
    start_notifier: StartNotifier, driver: Driver, alice: Session, mongo_db: Any
) -> None:
    url = (await start_notifier(resync_seconds=0.2)).replace("http", "ws") + "/ws"
    batch = await make_batch(driver, rows=2)
    async with connect(url) as ws:
        client = Client(ws)
        assert (await subscribe(client, batch.id, alice.token))["type"] == "batch_snapshot"
        await SessionStore(mongo_db, driver.signer).revoke(alice.session_id)
        ended = await client.next(within=5)
        assert (ended["type"], ended["code"], ended["batch_id"]) == (
            "error",
            "invalid_token",
            batch.id,
        )
        # The batch moves on; nothing of it reaches the signed-out socket.
        await finish(driver, batch.job_ids[0])
        await asyncio.sleep(1)
        await client.send(op="ping")
        assert await client.next() == {"type": "pong"}


async def test_a_malformed_batch_subscribe_is_a_bad_request(ws_client: Client) -> None:
    for op in (
        {"op": "subscribe", "batch_id": "b"},  # no token
        {"op": "subscribe", "batch_id": "", "token": "t"},
        {"op": "subscribe", "batch_id": "b", "token": "t", "after_seq": -1},
        {"op": "unsubscribe", "batch_id": 3},
    ):
        await ws_client.send(**op)
        error = await ws_client.next()
        assert (error["type"], error["code"]) == ("error", "bad_request"), op
    await ws_client.send(op="unsubscribe", batch_id="b")  # not watched: fine all the same
    assert await ws_client.next() == {"type": "unsubscribed", "batch_id": "b"}
