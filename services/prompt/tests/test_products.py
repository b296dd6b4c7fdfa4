"""A product's variants share one prompt and brief (prompt/products.py): one provider call
per product, on the real broker, SecantusDB and file storage."""

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

import pytest

from common.events import JobSubmitted
from common.jobs import Job, new_job_id, now
from common.storage import upload_key
from common.worker import RetryLater
from services.prompt.tests.images import photo
from services.prompt.tests.support import Worker

TEAPOT = photo((600, 900), (245, 245, 240), product=(150, 40, 30))
VARIANTS = [
    {"preset": "reels", "aspect_ratio": "9:16", "duration": 5},
    {"preset": None, "aspect_ratio": "1:1", "duration": 6},
    {"preset": "youtube", "aspect_ratio": "16:9", "duration": 8},
]


async def add_product(
    worker: Worker,
    *,
    ctas: list[str | None] | None = None,
    lease: dict[str, Any] | None = None,
    image: bytes = TEAPOT,
) -> tuple[dict[str, Any], list[Job]]:
    """A product and its variant jobs as the gateway stores them (gateway/products.py):
    one photo in storage, named by every job."""
    product_id = new_job_id()
    key = upload_key(product_id, "png")
    await worker.ctx.storage.put_bytes(key, image, "image/png")
    stored_image = {
        "key": key,
        "sha256": hashlib.sha256(image).hexdigest(),
        "width": 600,
        "height": 900,
        "content_type": "image/png",
    }
    job_ids = [new_job_id() for _ in VARIANTS]
    product: dict[str, Any] = {
        "_id": product_id,
        "owner": "shop@example.com",
        "created_at": now(),
        "image": stored_image,
        "title": "Cast-iron teapot",
        "description": "Keeps tea hot for an hour.",
        "options": {"style": None},
        "variants": VARIANTS,
        "job_ids": job_ids,
    }
    if lease is not None:
        product["lease"] = lease
    await worker.ctx.db["products"].insert_one(product)
    jobs = []
    for index, (job_id, variant) in enumerate(zip(job_ids, VARIANTS, strict=True)):
        cta = (ctas or [None] * len(VARIANTS))[index]
        job, _ = await worker.repo.create(
            {
                "_id": job_id,
                "owner": product["owner"],
                "client_ip": "127.0.0.1",
                "title": product["title"],
                "description": product["description"],
                "options": {**variant, "style": None, "cta": cta},
                "image": stored_image,
                "product_id": product_id,
                "variant": index,
            }
        )
        jobs.append(job)
    return product, jobs


async def submit_all(worker: Worker, jobs: list[Job]) -> list[Job]:
    for job in jobs:
        await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))
    return [await worker.wait_for_status(j["_id"], "prompt_ready", "failed") for j in jobs]


@pytest.mark.parametrize("delay", [1.0])
async def test_variants_share_one_provider_call(worker: Worker) -> None:
    product, jobs = await add_product(worker, ctas=["Buy now", None, "Order today"])

    done = await submit_all(worker, jobs)

    assert [j["status"] for j in done] == ["prompt_ready"] * 3
    assert len(worker.provider.calls) == 1
    [writer] = [j for j in done if j["prompt"]["source"] == "template"]
    assert worker.provider.calls == [writer["_id"]]
    others = [j for j in done if j is not writer]
    assert all(j["prompt"]["source"] == "product" and j["prompt"]["cost"] == 0 for j in others)
    assert all(j["prompt"]["details"]["written_by"] == writer["_id"] for j in others)
    assert {j["prompt"]["text"] for j in done} == {writer["prompt"]["text"]}
    # Written once for the product's first variant, whichever job wrote it.
    assert "5-second" in writer["prompt"]["text"]
    # One brief, with each job's own call to action.
    assert {j["brief"]["hook"] for j in done} == {writer["brief"]["hook"]}
    assert [j["brief"]["cta"] for j in done] == ["Buy now", "Shop now", "Order today"]

    stored = await worker.ctx.db["products"].find_one({"_id": product["_id"]})
    assert stored["prompt"]["text"] == writer["prompt"]["text"]
    assert stored["prompt"]["job_id"] == writer["_id"]
    assert stored["brief"]["hook"] == writer["brief"]["hook"] and "lease" not in stored
    messages = await worker.take_messages(worker.ctx.topology.video_jobs.queue, 3)
    assert sorted(m["job_id"] for m in messages) == sorted(j["_id"] for j in jobs)


@pytest.mark.parametrize("delay", [1.0])
async def test_variants_prompted_at_once_wait_for_the_one_writing(worker: Worker) -> None:
    """Three handlers at the same moment (three workers): one takes the product's lease
    and calls the provider; the others hand their jobs back and come back later."""
    _, jobs = await add_product(worker)
    events = [JobSubmitted(job_id=j["_id"]) for j in jobs]

    outcomes = await asyncio.gather(
        *(worker.stage.handle(e) for e in events), return_exceptions=True
    )

    waited = [jobs[i] for i, o in enumerate(outcomes) if isinstance(o, RetryLater)]
    assert len(waited) == 2 and outcomes.count(None) == 1
    assert all(o.exact and o.seconds <= 2 for o in outcomes if isinstance(o, RetryLater))
    for job in waited:  # handed back: taken over at once when its event comes back
        stored = await worker.repo.get(job["_id"])
        assert stored["status"] == "prompting" and "lease" not in stored
        assert stored["retry_at"]
    for event in events:
        await worker.stage.handle(event)
    done = [await worker.repo.get(j["_id"]) for j in jobs]
    assert [j["status"] for j in done] == ["prompt_ready"] * 3
    assert len(worker.provider.calls) == 1


async def test_a_lease_left_by_a_crash_runs_out(worker: Worker) -> None:
    """A worker died holding the product's lease: the variants wait for it to run out,
    then one of them writes the prompt."""
    dead = {"holder": new_job_id(), "until": now() + timedelta(seconds=2)}
    product, jobs = await add_product(worker, lease=dead)

    done = await submit_all(worker, jobs)

    assert [j["status"] for j in done] == ["prompt_ready"] * 3
    assert len(worker.provider.calls) == 1
    stored = await worker.ctx.db["products"].find_one({"_id": product["_id"]})
    assert stored["prompt"]["job_id"] in {j["_id"] for j in jobs}
    assert "lease" not in stored


async def test_the_same_product_again_reuses_its_prompt(worker: Worker) -> None:
    _, first = await add_product(worker)
    await submit_all(worker, first)
    _, again = await add_product(worker)

    done = await submit_all(worker, again)

    assert len(worker.provider.calls) == 1  # the prompt cache answered the second product
    sources = sorted(j["prompt"]["source"] for j in done)
    assert sources == ["product", "product", "reused"]
    assert all(j["prompt"]["cost"] == 0 for j in done)


async def test_a_retried_variant_uses_the_products_prompt(worker: Worker) -> None:
    _, jobs = await add_product(worker)
    await submit_all(worker, jobs)
    # One variant failed later and starts over from its prompt stage.
    await worker.repo.jobs.update_one(
        {"_id": jobs[2]["_id"]},
        {"$set": {"status": "queued"}, "$unset": {"prompt": "", "brief": ""}},
    )

    [again] = await submit_all(worker, [jobs[2]])

    assert again["status"] == "prompt_ready" and again["brief"]
    assert len(worker.provider.calls) == 1
