"""The prompt worker through the real broker, SecantusDB and file storage."""

import asyncio
from typing import Any

import pytest

from common.errors import user_message
from common.events import JobStatus, JobSubmitted
from prompt.config import PromptSettings
from prompt.handlers import PromptStage
from prompt.providers.base import VideoOptions
from prompt.reuse import PromptCache, reuse_key
from services.prompt.tests.images import photo
from services.prompt.tests.support import Worker

NAVY_MUG = photo((600, 900), (250, 250, 250), product=(20, 30, 75))


def steps(job: dict) -> list[tuple[int, str, int]]:
    return [(h["seq"], h["status"], h["progress"]) for h in job["history"]]


async def test_submitted_job_gets_a_template_prompt_and_prompt_ready(worker: Worker) -> None:
    job = await worker.add_job(NAVY_MUG)
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))

    done = await worker.wait_for_status(job["_id"], "prompt_ready", "failed")
    assert done["status"] == "prompt_ready" and done["progress"] == 30
    prompt = done["prompt"]
    assert prompt["source"] == "template" and prompt["model"] == "template-t1"
    assert prompt["cost"] == 0 and prompt["template_version"] == "t1"
    assert "Stoneware Mug" in prompt["text"] and "deep navy" in prompt["text"]
    assert prompt["details"]["camera_move"] in prompt["text"]
    assert steps(done) == [(1, "queued", 0), (2, "prompting", 10), (3, "prompt_ready", 30)]
    assert "lease" not in done
    # The brief, stored in the same step as the prompt.
    brief = done["brief"]
    assert brief["hook"] == "Stoneware Mug"
    assert brief["benefits"] == ["Hand-thrown mug with a speckled glaze"]
    assert brief["cta"] == "Shop now" and brief["price"] is None
    assert len(brief["palette"]) == 2 and brief["mood"] in ("upbeat", "calm", "bold")
    assert [s["kind"] for s in brief["shots"]] == ["detail", "hero", "end_card"]

    messages = await worker.take_messages(worker.ctx.topology.video_jobs.queue, 1)
    assert [(m["type"], m["job_id"]) for m in messages] == [("prompt.ready", job["_id"])]
    assert worker.provider.calls == [job["_id"]]


async def test_same_photo_and_text_reuses_the_prompt_without_a_provider_call(
    worker: Worker,
) -> None:
    first = await worker.add_job(NAVY_MUG)
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=first["_id"]))
    first = await worker.wait_for_status(first["_id"], "prompt_ready", "failed")

    # Same bytes, same options; only case and whitespace of the text differ.
    second = await worker.add_job(
        NAVY_MUG, title="  stoneware MUG", description="Hand-thrown mug with a  speckled glaze."
    )
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=second["_id"]))
    second = await worker.wait_for_status(second["_id"], "prompt_ready", "failed")

    assert second["prompt"]["source"] == "reused"
    assert second["prompt"]["text"] == first["prompt"]["text"]
    assert second["prompt"]["cost"] == 0
    assert worker.provider.calls == [first["_id"]]
    key = first["prompt"]["details"]["reuse_key"]
    cached = await PromptCache(worker.ctx.db).prompts.find_one({"_id": key})
    assert cached["hits"] == 1 and cached["origin_job"] == first["_id"]
    assert cached["last_used_at"] > cached["created_at"]

    # Another duration is another prompt: the provider is called again.
    third = await worker.add_job(
        NAVY_MUG, options={"aspect_ratio": "9:16", "duration": 8, "style": None}
    )
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=third["_id"]))
    third = await worker.wait_for_status(third["_id"], "prompt_ready", "failed")
    assert third["prompt"]["source"] == "template"
    assert worker.provider.calls == [first["_id"], third["_id"]]


async def test_a_reused_prompt_reuses_its_brief_with_the_owners_cta_and_price(
    worker: Worker,
) -> None:
    options = {"aspect_ratio": "9:16", "duration": 5, "style": None}
    first = await worker.add_job(NAVY_MUG, options={**options, "cta": None, "price": None})
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=first["_id"]))
    first = await worker.wait_for_status(first["_id"], "prompt_ready", "failed")

    # The same product from another shop: its own CTA and price, the rest of the brief reused.
    second = await worker.add_job(
        NAVY_MUG,
        options={**options, "cta": "Visit our Etsy shop", "price": "€24", "preset": "reels"},
    )
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=second["_id"]))
    second = await worker.wait_for_status(second["_id"], "prompt_ready", "failed")
    assert second["prompt"]["source"] == "reused"
    assert worker.provider.calls == [first["_id"]]
    assert second["brief"] == {**first["brief"], "cta": "Visit our Etsy shop", "price": "€24"}
    cached = await PromptCache(worker.ctx.db).prompts.find_one(
        {"_id": first["prompt"]["details"]["reuse_key"]}
    )
    assert cached["brief"]["cta"] == "Shop now" and cached["brief"]["price"] is None


async def test_a_prompt_cached_before_briefs_gets_one_from_the_photo(worker: Worker) -> None:
    first = await worker.add_job(NAVY_MUG)
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=first["_id"]))
    first = await worker.wait_for_status(first["_id"], "prompt_ready", "failed")
    key = first["prompt"]["details"]["reuse_key"]
    await PromptCache(worker.ctx.db).prompts.update_one({"_id": key}, {"$unset": {"brief": ""}})

    second = await worker.add_job(NAVY_MUG)
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=second["_id"]))
    second = await worker.wait_for_status(second["_id"], "prompt_ready", "failed")
    assert second["prompt"]["source"] == "reused"
    assert second["brief"] == first["brief"]  # derived offline, as the template would


async def test_duplicated_submission_writes_one_prompt(worker: Worker) -> None:
    job = await worker.add_job(NAVY_MUG)
    event = JobSubmitted(job_id=job["_id"])
    await worker.ctx.publishers.job_submitted.publish(event)
    await worker.ctx.publishers.job_submitted.publish(event)

    # The duplicate finds the job busy or done; either way it only re-announces the
    # stored prompt, so two prompt.ready messages reach the video queue.
    messages = await worker.take_messages(worker.ctx.topology.video_jobs.queue, 2)
    assert [m["job_id"] for m in messages] == [job["_id"], job["_id"]]
    stored = await worker.repo.get(job["_id"])
    assert stored is not None and stored["status"] == "prompt_ready"
    assert steps(stored) == [(1, "queued", 0), (2, "prompting", 10), (3, "prompt_ready", 30)]
    assert stored["seq"] == 3
    assert worker.provider.calls == [job["_id"]]


async def test_missing_photo_fails_the_job_with_its_reason(worker: Worker) -> None:
    job = await worker.add_job(None)
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))
    failed = await worker.wait_for_status(job["_id"], "failed", "prompt_ready")
    assert failed["error"]["code"] == "source_missing"
    assert failed["error"]["retryable"] is False
    assert "prompt" not in failed and worker.provider.calls == []


async def test_corrupt_photo_fails_the_job_as_invalid_image(worker: Worker) -> None:
    job = await worker.add_job(b"\x89PNG\r\n\x1a\n truncated")
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))
    failed = await worker.wait_for_status(job["_id"], "failed", "prompt_ready")
    assert failed["error"]["code"] == "invalid_image"
    assert failed["error"]["message"] == user_message("invalid_image")


async def test_worker_that_died_after_writing_the_prompt_is_not_paid_twice(
    worker: Worker,
) -> None:
    job = await worker.add_job(NAVY_MUG)
    # A worker claimed the job, had its prompt written and cached, then died.
    await worker.repo.claim(
        job["_id"],
        ready=JobStatus.QUEUED,
        working=(JobStatus.PROMPTING,),
        progress=10,
        lease_seconds=0.5,
        holder="prompt-dead",
    )
    stage = PromptStage(worker.ctx, PromptSettings(), worker.provider.inner)
    lost = await stage.call_provider(job, VideoOptions.from_job(job["options"]))
    key = reuse_key(
        image_sha256=job["image"]["sha256"],
        title=job["title"],
        description=job["description"],
        options=VideoOptions.from_job(job["options"]),
        template_version="t1",
        provider="template",
        model="template-t1",
        owner=job["owner"],
    )
    await stage.cache.store(key, result=lost, provider="template", job_id=job["_id"])

    # The redelivered message waits for the dead worker's lease, then resumes the stage.
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))
    done = await worker.wait_for_status(job["_id"], "prompt_ready", "failed")
    assert done["prompt"]["source"] == "template" and done["prompt"]["text"] == lost.text
    assert worker.provider.calls == []
    assert steps(done) == [(1, "queued", 0), (2, "prompting", 10), (3, "prompt_ready", 30)]
    cached = await stage.cache.prompts.find_one({"_id": key})
    assert cached["hits"] == 0


@pytest.mark.parametrize("delay", [4.0])
async def test_a_slow_prompt_keeps_its_lease_so_a_redelivery_never_calls_again(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider takes longer than the lease (1.5 s here): the lease is renewed while it
    writes, so an event redelivered meanwhile finds the job busy instead of taking it over
    and paying for a second call."""
    worker.stage.settings.lease_seconds = 1.5
    job = await worker.add_job(NAVY_MUG)
    event = JobSubmitted(job_id=job["_id"])
    await worker.ctx.publishers.job_submitted.publish(event)
    await worker.wait_for_status(job["_id"], "prompting")
    await asyncio.sleep(2.5)  # past the first lease, while the provider still writes
    await worker.ctx.publishers.job_submitted.publish(event)

    done = await worker.wait_for_status(job["_id"], "prompt_ready", "failed")
    assert done["status"] == "prompt_ready"
    # The redelivery came back from a retry queue, found the prompt written, announced it.
    messages = await worker.take_messages(worker.ctx.topology.video_jobs.queue, 2)
    assert [m["job_id"] for m in messages] == [job["_id"], job["_id"]]
    assert worker.provider.calls == [job["_id"]]


class FailingReads:
    """The real storage, whose reads fail the first `failures` times (an outage)."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def get_bytes(self, key: str) -> bytes:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(5, "Input/output error")
        return bytes(await self.inner.get_bytes(key))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_storage_outage_while_prompting_is_retried(worker: Worker) -> None:
    job = await worker.add_job(NAVY_MUG)
    worker.ctx.storage = FailingReads(worker.ctx.storage, failures=1)  # type: ignore[assignment]
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))

    done = await worker.wait_for_status(job["_id"], "prompt_ready", "failed")
    assert done["status"] == "prompt_ready", done.get("error")
    assert done["attempts"] == 1 and done["last_error"]["code"] == "storage_unavailable"
    assert "Could not read the product photo" in done["last_error"]["message"]
