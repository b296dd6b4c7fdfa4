"""Spending caps on paid clips (video/budget.py): the deployment's daily budget and each
account's paid clips per day hold under concurrent submissions on the real database,
and a job over a cap fails before anything is paid."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from common import db as database
from common.auth import mailbox
from common.errors import JobError, user_message
from common.events import PromptReady
from common.settings import CommonSettings
from services.video.tests.images import mug
from services.video.tests.support import Worker
from services.video.tests.test_worker import failure_logged
from tests.support.fake_openrouter import SEEDANCE, FakeOpenRouter, VideoPlan
from video.budget import Spending, estimated_usd

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
