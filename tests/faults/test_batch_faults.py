"""Fault injection on a catalogue: a 100-job batch (25 products × 4 variants, CSV + zip
through `POST /api/v1/batches`) while the video worker is SIGKILLed twice. Afterwards
every job is final, each product made exactly one chat call (only the video worker is
killed, so no prompt answer can be lost), each job at most one paid provider job (exactly
one when completed) and one clip in storage, and the batch's `GET` counts are the jobs'
real statuses and add up to 100 (see `check_batch`).

As in test_faults.py, the provider's jobs are held `in_progress` while the kills land, so
that a kill never falls between a submission's mark and its saved id (which fails the job
as `provider_unconfirmed` by design, docs/reliability.md): the first kill once every job
has its provider job, the second while the half released first is being downloaded,
finished and stored."""

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from common.media import FRAME_SIZES
from tests.faults.harness import (
    ACTIVE,
    CHAT,
    CLIP_OBJECTS,
    CREATE,
    POLL,
    QUICK,
    REPORTED,
    Figures,
    chat_title,
    clip_objects,
    leased,
    release,
    restart,
)
from tests.support import client as user
from tests.support.fake_openrouter import CLIP_SIZES, FakeOpenRouter, VideoPlan
from tests.support.processes import System
from tests.test_batches import BATCHES, csv_manifest, zipped

pytestmark = pytest.mark.timeout(600)

PRODUCTS = 25
# Four cuts of each product; a provider job is told apart by its title, ratio and duration.
CUTS = (("9:16", 3), ("1:1", 3), ("16:9", 3), ("1:1", 4))
VARIANTS = json.dumps([{"aspect_ratio": ratio, "duration": d} for ratio, d in CUTS])
JOBS = PRODUCTS * len(CUTS)
VIDEO_KILLS = 2
# How long the fake answers polls while a kill waits for one in flight.
POLL_SECONDS = 1.0
# The fake's clips: held until released, at the frame sizes the project stores (no
# scaling pass) and 8 frames a second, so that finishing 100 of them is quick.
HELD = VideoPlan(polls=QUICK.polls, hold=True, fps=8)


@pytest.fixture(autouse=True)
def stored_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    for ratio, size in FRAME_SIZES.items():
        monkeypatch.setitem(CLIP_SIZES, ratio, size)


@pytest.fixture
def fault_env(fault_env: dict[str, str]) -> dict[str, str]:
    # 100 held provider jobs polled every 5 s (the production default) rather than every
    # second: each poll is a delivery and a few database writes. And the production
    # RECONCILE_STALE_SECONDS: with 8 s, poll events waiting their turn behind a 100-job
    # backlog were re-published as stale, and each copy became a poll chain of its own
    # (hundreds of extra deliveries); the kills are recovered by redelivery and the 6 s
    # leases, not by the reconciler.
    return {
        **fault_env,
        "OPENROUTER_POLL_INTERVAL_SECONDS": "5",
        "OPENROUTER_POLL_MAX_INTERVAL_SECONDS": "5",
        "RECONCILE_STALE_SECONDS": "300",
    }


async def post_batch(api: httpx.AsyncClient) -> dict[str, Any]:
    """The batch made from a CSV and a zip: one product per row, each titled uniquely
    (how the provider's requests are told apart)."""
    rows, photos = [], {}
    for n in range(PRODUCTS):
        name = f"item-{n}.jpg"
        photos[name] = user.product_photo(seed=2000 + n, size=(400, 300))
        rows.append(
            {
                "sku": f"SKU-{n:03d}",
                "title": f"Batch item {uuid.uuid4().hex[:12]}",
                "description": "Sturdy, simple, made to last.",
                "image": name,
            }
        )
    response = await api.post(
        BATCHES,
        files={
            "manifest": ("products.csv", csv_manifest(rows), "text/csv"),
            "photos": ("photos.zip", zipped(photos), "application/zip"),
        },
        data={"variants": VARIANTS},
        timeout=120,
    )
    assert response.status_code == 202, response.text
    batch: dict[str, Any] = response.json()
    assert batch["jobs_total"] == JOBS
    return batch


async def kill_video_mid_poll(
    system: System, db: AsyncDatabase, fake: FakeOpenRouter, ids: list[str], dead: set[str]
) -> list[dict[str, Any]]:
    """SIGKILL the video worker (and start a new one) while a poll of a provider job is
    under way for a job it holds (live lease, a holder not killed before). Returns the
    jobs the killed worker held."""

    async def moment() -> list[dict[str, Any]] | None:
        flying = [r for r in fake.calls(POLL) if r.answered_at is None]
        if not flying:
            return None
        video_ids = [r.path.split("/")[2] for r in flying]
        query = {"_id": {"$in": ids}, "provider_job.id": {"$in": video_ids}}
        return await leased(db, query, not_by=dead) or None

    fake.delays[POLL] = POLL_SECONDS  # only now: a poll long enough to be caught in
    try:
        held = await user.wait_for(moment, within=60, what="video mid-poll", interval=0.05)
        restart(system, "video")
    finally:
        del fake.delays[POLL]
    dead.update(j["lease"]["holder"] for j in held)
    return held


async def check_batch(
    api: httpx.AsyncClient,
    batch_id: str,
    db: AsyncDatabase,
    fake: FakeOpenRouter,
    system: System,
    *,
    last_fault_at: float,
) -> tuple[Figures, dict[str, Any]]:
    """Wait for the batch to end, then check every job against what the fake OpenRouter
    and storage saw, and the batch's GET against the jobs. The figures and the batch."""
    deadline = time.monotonic() + 300
    while True:
        response = await api.get(f"{BATCHES}/{batch_id}")
        assert response.status_code == 200, response.text
        batch: dict[str, Any] = response.json()
        if batch["status"] != "running":
            break
        assert time.monotonic() < deadline, f"still running: {batch['counts']}"
        await asyncio.sleep(0.5)
    figures = Figures("batch, video worker SIGKILL", JOBS, VIDEO_KILLS)
    figures.recovery_seconds = max(0.0, time.monotonic() - last_fault_at)
    jobs = {j["_id"]: j async for j in db["jobs"].find({"batch_id": batch_id})}
    chat_texts = [chat_title(r) for r in fake.calls(CHAT)]
    paid = [
        (str(j.body.get("prompt", "")), j.body.get("aspect_ratio"), j.body.get("duration"))
        for j in fake.accepted()
    ]
    storage_root = Path(system.env["STORAGE_URL"].removeprefix("file://"))

    # Per product: exactly one chat call (none can be lost: the prompt worker runs on).
    for row in batch["rows"]:
        calls = sum(1 for text in chat_texts if row["title"] in text)
        figures.chat_calls += calls
        if calls != 1:
            figures.problems.append(f"row {row['row']}: {calls} chat calls")

    # Per job: final, at most one paid provider job (one if completed), one clip.
    real: dict[str, int] = {}
    for row in batch["rows"]:
        for shown in row["jobs"]:
            job_id = shown["id"]
            job = jobs.get(job_id)
            if job is None or job["status"] in ACTIVE:
                figures.lost += 1
                figures.problems.append(f"{job_id}: {job and job['status']}")
                continue
            real[job["status"]] = real.get(job["status"], 0) + 1
            if shown["status"] != job["status"]:
                figures.problems.append(f"{job_id}: shown {shown['status']}, is {job['status']}")
            completed = job["status"] == "completed"
            if completed:
                figures.completed += 1
            elif job["status"] == "failed" and (job.get("error") or {}).get("message"):
                figures.failed_with_reason += 1
                error = job["error"]
                figures.failures.append(f"{job_id}: {error.get('code')}: {error['message']}")
            else:
                figures.problems.append(f"{job_id}: {job['status']} without a reason")
            cut = (job["options"]["aspect_ratio"], job["options"]["duration"])
            jobs_paid = sum(1 for p, *made in paid if row["title"] in p and tuple(made) == cut)
            figures.paid_jobs += jobs_paid
            objects, leftovers = clip_objects(storage_root, job_id)
            figures.clips += "video.mp4" in objects
            doubled = []
            if jobs_paid > 1:
                doubled.append(f"{jobs_paid} paid POST /videos")
            if set(objects) - CLIP_OBJECTS:
                doubled.append(f"objects {sorted(objects)}")
            if doubled:
                figures.duplicated += 1
                figures.problems.append(f"{job_id}: doubled: {'; '.join(doubled)}")
            if leftovers:
                print(f"[faults] {figures.scenario}: {job_id}: write leftovers {leftovers}")
            if completed and (jobs_paid != 1 or set(objects) != CLIP_OBJECTS):
                figures.problems.append(
                    f"{job_id}: completed with {jobs_paid} paid jobs, storage {sorted(objects)}"
                )
            elif completed and objects["video.mp4"] != job["video"]["size"]:
                figures.problems.append(f"{job_id}: stored clip size is not the job's")
            stages = user.stages([h["status"] for h in job["history"]])
            if len(stages) != len(set(stages)):
                figures.problems.append(f"{job_id}: a stage entered twice: {stages}")
    REPORTED.append(figures)
    return figures, {**batch, "real_counts": real}


async def test_batch_with_video_worker_killed(
    fault_system: System,
    fault_api: httpx.AsyncClient,
    database: AsyncDatabase,
    fake: FakeOpenRouter,
) -> None:
    started = time.monotonic()
    fault_api.headers["Authorization"] = f"Bearer {await user.sign_in(fault_api)}"
    fake.video_plan = HELD
    made = await post_batch(fault_api)
    ids = [job["id"] for row in made["rows"] for job in row["jobs"]]
    assert len(ids) == JOBS
    dead: set[str] = set()

    # Kill 1: every job has its provider job (held), the worker polling them.
    async def all_submitted() -> bool:
        return await database["jobs"].count_documents(
            {"_id": {"$in": ids}, "provider_job.id": {"$exists": True}}
        ) == len(ids)

    await user.wait_for(all_submitted, within=240, what="every job submitted to the provider")
    held = await kill_video_mid_poll(fault_system, database, fake, ids, dead)
    print(f"[faults] video worker killed holding {len(held)} job(s)")

    # Kill 2: half released, some of them being downloaded, finished and stored.
    release(fake, JOBS // 2)

    async def finishing() -> bool:
        return await database["jobs"].count_documents(
            {"_id": {"$in": ids}, "status": {"$in": ["storing", "completed"]}}
        ) > 0 or any(r.answered_at is None for r in fake.calls("GET /videos/{id}/content"))

    await user.wait_for(finishing, within=120, what="a released clip being fetched", interval=0.1)
    held = await kill_video_mid_poll(fault_system, database, fake, ids, dead)
    print(f"[faults] video worker killed holding {len(held)} job(s)")
    last_fault = time.monotonic()
    release(fake)

    figures, batch = await check_batch(
        fault_api, made["id"], database, fake, fault_system, last_fault_at=last_fault
    )
    print(f"[faults] batch scenario wall time {time.monotonic() - started:.1f}s")
    assert not figures.problems, figures.problems
    assert figures.lost == 0 and figures.duplicated == 0
    assert figures.completed == JOBS
    assert figures.chat_calls == PRODUCTS
    assert figures.paid_jobs == JOBS == len(fake.accepted()) == len(fake.calls(CREATE))
    # The batch's counts are the jobs' statuses, all 100 of them.
    assert batch["status"] == "completed"
    assert batch["jobs_total"] == JOBS == sum(batch["counts"].values())
    assert {s: n for s, n in batch["counts"].items() if n} == batch["real_counts"]
    # Its cost is what the fake charged: one prompt per product, one clip per job.
    charged = PRODUCTS * fake.chat_cost + JOBS * QUICK.cost
    assert batch["cost_usd"] == pytest.approx(charged)
