"""Result reuse at the prompt stage's entry, on the real broker, database and storage:
which jobs complete at once from an earlier result and which are prompted and made."""

from typing import Any

from common.events import JobSubmitted
from common.storage import poster_key, video_key
from services.prompt.tests.images import photo
from services.prompt.tests.support import Worker

NAVY_MUG = photo((600, 900), (250, 250, 250), product=(20, 30, 75))


def stages(job: dict[str, Any]) -> list[str]:
    return [h["status"] for h in job["history"]]


async def prompted(worker: Worker, **changes: Any) -> dict[str, Any]:
    """A new job of NAVY_MUG (with `changes` to its document) through the prompt stage."""
    job = await worker.add_job(NAVY_MUG)
    if changes:
        await worker.repo.jobs.update_one({"_id": job["_id"]}, {"$set": changes})
    await worker.ctx.publishers.job_submitted.publish(JobSubmitted(job_id=job["_id"]))
    return await worker.wait_for_status(job["_id"], "prompt_ready", "completed", "failed")


async def made(worker: Worker, job: dict[str, Any]) -> dict[str, Any]:
    """What the video stage leaves when it has made the job: clip and poster stored."""
    job_id = job["_id"]
    await worker.ctx.storage.put_bytes(video_key(job_id), b"clip", "video/mp4")
    await worker.ctx.storage.put_bytes(poster_key(job_id), b"poster", "image/jpeg")
    video = {"key": video_key(job_id), "poster_key": poster_key(job_id), "duration": 5.0}
    await worker.repo.jobs.update_one(
        {"_id": job_id}, {"$set": {"status": "completed", "progress": 100, "video": video}}
    )
    done = await worker.repo.get(job_id)
    assert done is not None
    return done


async def test_the_owners_same_job_completes_at_once_and_anything_else_is_prompted(
    worker: Worker,
) -> None:
    first = await prompted(worker)
    assert first["status"] == "prompt_ready"
    assert first["result_key"] == worker.stage.results.key_for(first)
    first = await made(worker, first)
    await worker.take_messages(worker.ctx.topology.video_jobs.queue, 1)

    again = await prompted(worker)
    assert again["status"] == "completed" and again["progress"] == 100
    assert stages(again) == ["queued", "prompting", "completed"]
    assert again["video"] == {**first["video"], "reused_from": first["_id"]}
    assert again["prompt"]["source"] == "reused" and again["prompt"]["cost"] == 0
    assert again["prompt"]["text"] == first["prompt"]["text"]
    assert again["brief"] == first["brief"]
    assert "lease" not in again
    assert worker.provider.calls == [first["_id"]]
    # Nothing for the video stage to make.
    assert await worker.take_messages(worker.ctx.topology.video_jobs.queue, 0) == []

    # Another owner, or asked to be made again: prompted (regenerate: a prompt of its own).
    other = await prompted(worker, owner="someone-else@example.com")
    regenerated = await prompted(worker, regenerate=True)
    assert (other["status"], regenerated["status"]) == ("prompt_ready", "prompt_ready")
    # Prompt reuse is scoped to the owner by default (PROMPT_REUSE_SCOPE, prompt/reuse.py):
    # another owner's same job gets a prompt of its own, not a hint that it was made before.
    assert other["prompt"]["source"] == first["prompt"]["source"] != "reused"
    assert worker.provider.calls == [first["_id"], other["_id"], regenerated["_id"]]

    # Failed, canceled or with its clip gone: not reused.
    for status in ("failed", "canceled"):
        await worker.repo.jobs.update_many(
            {"result_key": first["result_key"]}, {"$set": {"status": status}}
        )
        assert (await prompted(worker))["status"] == "prompt_ready"
    await worker.repo.jobs.update_many(
        {"result_key": first["result_key"], "video": {"$exists": True}},
        {"$set": {"status": "completed"}},
    )
    assert (await prompted(worker))["status"] == "completed"
    await worker.ctx.storage.delete(first["video"]["key"])
    assert (await prompted(worker))["status"] == "prompt_ready"
