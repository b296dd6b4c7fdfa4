"""Spending caps on paid clips (video/budget.py): the deployment's daily budget and each
account's paid clips per day hold under concurrent submissions on the real database,
and a job over a cap fails before anything is paid; a batch's `max_cost_usd` the same way on
its own document."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from common import db as database
from common.auth import mailbox
from common.errors import JobError, user_message
from common.events import PromptReady
from common.jobs import new_job_id
from common.settings import CommonSettings
from services.video.tests.images import mug
from services.video.tests.support import Worker
from services.video.tests.test_worker import failure_logged
from tests.support.fake_openrouter import SEEDANCE, FakeOpenRouter, Fault, VideoPlan
from video.budget import MICROS, Spending, estimated_usd, fits, price_micros, to_micros

DAY = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


@pytest.fixture
async def replicas(settings: CommonSettings) -> AsyncIterator[list[Any]]:
    """Two video workers' databases: separate clients, as two replicas have."""
    clients = [database.connect(settings) for _ in range(2)]
    await database.ensure_indexes(clients[0][1])
    yield [db for _, db in clients]
    await clients[0][0].drop_database(settings.mongodb_database)
    for client, _ in clients:
        await client.close()


def spending(db: Any, *, usd: float = 0, clips: int = 0) -> Spending:
    return Spending(db, usd_per_day=usd, clips_per_user=clips, clock=lambda: DAY)


async def outcomes(attempts: list[Any]) -> list[str]:
    results = await asyncio.gather(*attempts, return_exceptions=True)
    return [r.code if isinstance(r, JobError) else "ok" for r in results]


async def test_concurrent_submissions_never_pass_the_daily_budget(replicas: list[Any]) -> None:
    one, two = (spending(db, usd=1.0) for db in replicas)
    attempts = [(one if n % 2 else two).reserve(f"user{n}@example.com", 0.28) for n in range(20)]
    results = await outcomes(attempts)
    assert results.count("ok") == 3  # 3 × 0.28 fits in 1.00, a fourth does not
    assert results.count("budget_exhausted") == 17
    assert await one.spent_usd("2026-12-07") == pytest.approx(0.84)


async def test_paid_clips_per_account_count_the_mailbox(replicas: list[Any]) -> None:
    one, two = (spending(db, clips=2) for db in replicas)
    attempts = [(one, two)[n % 2].reserve(f"shop+{n}@example.com", 0.3) for n in range(8)]
    assert (await outcomes(attempts)).count("ok") == 2  # one mailbox, whatever the +tag
    assert await outcomes([one.reserve("other@example.com", 0.3)]) == ["ok"]


async def test_a_refusal_or_a_refused_submission_gives_everything_back(
    replicas: list[Any],
) -> None:
    caps = spending(replicas[0], usd=0.5, clips=1)
    first = await caps.reserve("me@example.com", 0.4)
    # Over the budget: the account's clip taken for it is given back.
    assert await outcomes([caps.reserve("you@example.com", 0.4)]) == ["budget_exhausted"]
    assert await outcomes([caps.reserve("you@example.com", 0.1)]) == ["ok"]
    # OpenRouter refused the first submission: its money and its clip come back.
    await caps.release(first)
    assert await caps.spent_usd("2026-12-07") == pytest.approx(0.1)
    assert await outcomes([caps.reserve("me@example.com", 0.4)]) == ["ok"]


def test_the_estimate_is_the_models_price_for_the_clip() -> None:
    assert estimated_usd(SEEDANCE, "720p", 4, fallback=1.0) == pytest.approx(0.28)
    assert estimated_usd({"pricing_skus": []}, "720p", 5, fallback=0.15) == pytest.approx(0.75)
    assert mailbox("Me+shop@x.com") == "Me@x.com" and mailbox("anon:10.0.0.1") == "anon:10.0.0.1"


def refusals(limit: str) -> float:
    return REGISTRY.get_sample_value("pv_budget_refusals_total", {"limit": limit}) or 0.0


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for two clips at the fake model's price (0.07 $/s × 4 s = 0.28 $ each)."""
    monkeypatch.setenv("SPEND_LIMIT_USD_PER_DAY", "0.6")
    monkeypatch.setenv("PREFETCH", "4")


async def test_the_worker_pays_for_no_clip_over_the_budget(
    capped: None,
    openrouter_worker: Worker,
    fake: FakeOpenRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = openrouter_worker
    fake.video_plan = VideoPlan(polls=("pending",))
    before = refusals("usd_per_day")
    jobs = [await worker.add_job(mug(), owner=f"u{n}@example.com") for n in range(4)]
    for job in jobs:
        await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    done = [
        await worker.wait_for_status(job["_id"], "completed", "failed", within=90) for job in jobs
    ]

    assert len(fake.calls("POST /videos")) == 2
    assert sorted(j["status"] for j in done) == ["completed", "completed", "failed", "failed"]
    for job in done:
        if job["status"] == "failed":
            assert job["error"]["code"] == "budget_exhausted", job["error"]
            # The owner reads when to try again; the log, naming the job, says no clip was
            # paid for.
            assert job["error"]["message"] == user_message("budget_exhausted")
            assert "midnight UTC" in job["error"]["message"]
            assert await failure_logged(caplog, job["_id"], "no clip was paid for")
            assert "provider_job" not in job or "id" not in job["provider_job"]
    assert refusals("usd_per_day") - before == 2
    # The reservations were corrected to what the clips really cost (0.35 $ each).
    day = datetime.now(UTC).date().isoformat()
    assert await spending(worker.ctx.db).spent_usd(day) == pytest.approx(0.70)


# ----- a batch's max_cost_usd -----


async def add_batch(db: Any, max_cost_usd: float | None) -> str:
    """A batch document as the gateway stores it (the fields this cap reads)."""
    batch_id = new_job_id()
    await db["batches"].insert_one(
        {
            "_id": batch_id,
            "owner": "shop@example.com",
            "status": "running",
            "jobs_total": 0,
            "rows": [],
            "variants": [],
            "max_cost_usd": max_cost_usd,
        }
    )
    return batch_id


async def reserved_micros(db: Any, batch_id: str) -> int:
    batch = await db["batches"].find_one({"_id": batch_id})
    return int(batch.get("cost_reserved_micros") or 0)


async def test_concurrent_clips_of_a_batch_never_pass_its_cap(replicas: list[Any]) -> None:
    batch_id = await add_batch(replicas[0], 1.0)
    one, two = (spending(db) for db in replicas)
    attempts = [(one, two)[n % 2].reserve("shop@example.com", 0.28, batch_id) for n in range(12)]
    results = await outcomes(attempts)
    assert results.count("ok") == 3  # 3 × 0.28 fits in 1.00, a fourth does not
    assert results.count("budget_exhausted") == 9
    assert await reserved_micros(replicas[0], batch_id) == 840_000
    # Another batch, or none, or one without a cap, has its own room (or no limit).
    other = await add_batch(replicas[0], 0.3)
    uncapped = await add_batch(replicas[0], None)
    assert (
        await outcomes(
            [one.reserve("shop@example.com", 0.28, other), one.reserve("shop@example.com", 0.28)]
            + [one.reserve("shop@example.com", 5.0, uncapped) for _ in range(3)]
        )
        == ["ok"] * 5
    )
    assert await reserved_micros(replicas[0], uncapped) == 0


async def test_a_batchs_reservation_is_released_or_settled(replicas: list[Any]) -> None:
    db = replicas[0]
    batch_id = await add_batch(db, 0.6)
    caps = spending(db, usd=10.0, clips=5)
    first = await caps.reserve("shop@example.com", 0.28, batch_id)
    second = await caps.reserve("shop@example.com", 0.28, batch_id)
    refused = await outcomes([caps.reserve("shop@example.com", 0.28, batch_id)])
    assert refused == ["budget_exhausted"]
    # The batch's refusal took nothing of the day's caps either.
    assert await caps.spent_usd("2026-12-07") == pytest.approx(0.56)
    # OpenRouter refused the first submission: the batch has room for another clip.
    await caps.release(first)
    assert await reserved_micros(db, batch_id) == 280_000
    third = await caps.reserve("shop@example.com", 0.28, batch_id)
    # Done clips count what they really cost.
    await caps.settle(second, 0.21)
    await caps.settle(third, 0.25)
    assert await reserved_micros(db, batch_id) == 460_000
    assert await caps.spent_usd("2026-12-07") == pytest.approx(0.46)


@given(
    per_second=st.integers(1, 2_000_000).map(lambda micros: f"{micros / MICROS:.6f}"),
    seconds=st.integers(3, 10),
    clips=st.integers(1, 500),
)
def test_a_cap_of_n_clips_admits_exactly_n(per_second: str, seconds: int, clips: int) -> None:
    """A cap written as n clips' estimate (prices are listed in whole micro-dollars) lets
    exactly n of them through, whatever the price, and the counter never passes it."""
    model = {"pricing_skus": [{"sku": "video-720p", "price_per_second": per_second}]}
    usd = estimated_usd(model, "720p", seconds, fallback=1.0)
    cap = to_micros(clips * usd)
    used = taken = 0
    while fits(used, price_micros(usd), cap):
        used += price_micros(usd)
        taken += 1
        assert used <= cap
    assert taken == clips


@given(
    cap=st.integers(1, 10**8),
    steps=st.lists(
        st.tuples(st.floats(0, 50, allow_nan=False), st.sampled_from(["paid", "refused"])),
        max_size=40,
    ),
    costs=st.lists(st.floats(0, 50, allow_nan=False), min_size=40, max_size=40),
)
def test_reservations_releases_and_settlements_add_up(
    cap: int, steps: list[tuple[float, str]], costs: list[float]
) -> None:
    """Reserved while it fits, given back when nothing was paid, settled to the cost: the
    counter never passes the cap when a clip is taken and ends at what the clips cost."""
    used = 0
    paid: list[tuple[int, float]] = []
    for (usd, outcome), cost in zip(steps, costs, strict=False):
        amount = price_micros(usd)
        assert amount >= 1
        if not fits(used, amount, cap):
            assert used + amount > cap
            continue
        used += amount
        assert used <= cap
        if outcome == "refused":
            used -= amount
        else:
            paid.append((amount, cost))
    for amount, cost in paid:
        used += to_micros(cost) - amount
    assert used == sum(to_micros(cost) for _, cost in paid)


async def test_a_refused_submission_frees_the_batchs_room(
    openrouter_worker: Worker, fake: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    worker = openrouter_worker
    db = worker.ctx.db
    batch_id = await add_batch(db, 0.56)  # two clips at 0.28 $
    fake.video_plan = VideoPlan(polls=("pending",), cost=0.25)
    jobs = [await worker.add_job(mug(), owner="shop@example.com") for _ in range(3)]
    for job in jobs:
        await db["jobs"].update_one({"_id": job["_id"]}, {"$set": {"batch_id": batch_id}})
    # OpenRouter refuses the first submission: nothing is paid, its room comes back.
    fake.fail("POST /videos", Fault(400, "duration is not supported"))
    first, *others = jobs
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=first["_id"]))
    failed = await worker.wait_for_status(first["_id"], "failed", "completed", within=60)
    assert failed["error"]["code"] == "provider_bad_request", failed["error"]
    assert await reserved_micros(db, batch_id) == 0
    # So both other clips of the batch fit.
    for job in others:
        await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    done = [
        await worker.wait_for_status(job["_id"], "completed", "failed", within=90) for job in others
    ]
    assert [j["status"] for j in done] == ["completed", "completed"], [j.get("error") for j in done]
    assert len(fake.calls("POST /videos")) == 3 and len(fake.jobs) == 2
    assert await reserved_micros(db, batch_id) == 500_000  # settled to 2 × 0.25 $


async def test_the_local_renderer_is_never_refused_by_a_batchs_cap(worker: Worker) -> None:
    batch_id = await add_batch(worker.ctx.db, 0.01)
    job = await worker.add_job(
        mug(), options={"aspect_ratio": "1:1", "duration": 3, "style": None, "finish": False}
    )
    await worker.ctx.db["jobs"].update_one({"_id": job["_id"]}, {"$set": {"batch_id": batch_id}})
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    done = await worker.wait_for_status(job["_id"], "completed", "failed", within=90)
    assert done["status"] == "completed", done.get("error")
    assert await reserved_micros(worker.ctx.db, batch_id) == 0
