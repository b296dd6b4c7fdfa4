"""A batch's progress from its jobs, against a real MongoDB-protocol server."""

import itertools
from typing import Any

import pytest

from common.batch_progress import batch_progress
from common.batches import cost_so_far
from common.events import JobStatus
from common.jobs import JobRepository, new_job_id


async def _job(repo: JobRepository, batch_id: str | None, **extra: Any) -> str:
    job_id = new_job_id()
    await repo.create(
        {"_id": job_id, "owner": "a@example.com", "title": "Mug", "description": "A mug",
         "batch_id": batch_id, **extra}
    )  # fmt: skip
    return job_id


async def test_counts_seq_and_cost_come_from_the_jobs(mongo_db: Any) -> None:
    repo = JobRepository(mongo_db)
    batch = new_job_id()
    prompt = {"text": "p", "source": "llm", "model": "m", "cost": 0.004}
    # One product with three variants: its prompt is paid by the job that wrote it.
    free = {**prompt, "cost": 0.0}
    variants = [
        await _job(repo, batch, product_id="p1", prompt=prompt if i == 0 else free)
        for i in range(3)
    ]
    # A job without a product is a product of its own; one without any cost recorded.
    lone = await _job(repo, batch, prompt={**prompt, "cost": 0.001})
    await _job(repo, batch)
    await _job(repo, "another batch", prompt=prompt)
    for job_id in variants[:2]:
        await repo.transition(
            job_id,
            expected=[JobStatus.QUEUED],
            to=JobStatus.COMPLETED,
            progress=100,
            fields={"provider_job": {"cost": 0.25}},
        )
    await repo.transition(lone, expected=[JobStatus.QUEUED], to=JobStatus.FAILED, progress=None)

    progress = await batch_progress(repo.jobs, batch)

    assert progress.counts == {
        "queued": 2, "prompting": 0, "prompt_ready": 0, "generating": 0, "storing": 0,
        "completed": 2, "failed": 1, "canceled": 0,
    }  # fmt: skip
    assert progress.total == 5 and progress.ended == 3 and not progress.finished
    assert progress.seq == 2 + 2 + 2 + 1 + 1  # every job's seq: its steps so far
    assert progress.cost_usd == pytest.approx(0.004 + 0.001 + 2 * 0.25)


async def test_a_batch_without_jobs(mongo_db: Any) -> None:
    progress = await batch_progress(JobRepository(mongo_db).jobs, "nothing")
    assert progress.total == 0 and progress.seq == 0 and progress.cost_usd == 0
    assert progress.finished  # nothing left to wait for


# How a job may hold one cost: no parent document, a null one, no field, null, 0, a price.
COST_SHAPES: list[dict[str, Any] | str | None] = [
    "absent",
    None,
    {},
    {"cost": None},
    {"cost": 0.0},
    {"cost": 0.125},
]


async def test_the_database_and_the_batch_view_count_cost_alike(mongo_db: Any) -> None:
    """The batch's aggregation (for its events) and the gateway's batch view (over loaded
    jobs) sum every shape a job's prompt and provider cost can have the same way."""
    repo = JobRepository(mongo_db)
    batch = new_job_id()
    for prompt, provider_job in itertools.product(COST_SHAPES, COST_SHAPES):
        extra = {
            name: shape
            for name, shape in (("prompt", prompt), ("provider_job", provider_job))
            if shape != "absent"
        }
        await _job(repo, batch, **extra)
    loaded = {job["_id"]: job async for job in repo.jobs.find({"batch_id": batch})}

    progress = await batch_progress(repo.jobs, batch)

    assert progress.cost_usd == cost_so_far(loaded) == pytest.approx(2 * 6 * 0.125)
