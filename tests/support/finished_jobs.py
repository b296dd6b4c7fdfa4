"""Jobs that end the way the video worker ends them, without rendering anything: stored,
moved through their stages, completed through `common.pipeline` (the transition stored,
then `job.completed` published), the publish made again until the broker takes it (what
the worker's redelivered message does). For tests of what happens after a job ends
(webhooks)."""

import asyncio

from common.events import JobStatus
from common.jobs import JobRepository, new_job_id
from common.pipeline import Pipeline
from common.storage import poster_key, upload_key, video_key

STAGES = [
    (JobStatus.PROMPTING, 10),
    (JobStatus.PROMPT_READY, 30),
    (JobStatus.GENERATING, 40),
    (JobStatus.STORING, 90),
]


async def complete_job(repo: JobRepository, pipeline: Pipeline, owner: str) -> str:
    """A new job of `owner`, completed and announced; its id."""
    job_id = new_job_id()
    await repo.create(
        {
            "_id": job_id,
            "owner": owner,
            "client_ip": "127.0.0.1",
            "title": f"Item {job_id[:6]}",
            "description": "A product.",
            "options": {"aspect_ratio": "1:1", "duration": 3, "style": None},
            "image": {
                "key": upload_key(job_id, "jpg"),
                "sha256": "0" * 64,
                "width": 400,
                "height": 400,
                "content_type": "image/jpeg",
            },
        }
    )
    previous = JobStatus.QUEUED
    for status, progress in STAGES:
        await repo.transition(job_id, expected=[previous], to=status, progress=progress)
        previous = status
    video = {
        "key": video_key(job_id),
        "poster_key": poster_key(job_id),
        "duration": 3.0,
        "width": 720,
        "height": 720,
        "size": 1000,
        "codec": "h264",
    }
    job = await repo.transition(
        job_id, expected=[previous], to=JobStatus.COMPLETED, progress=100, fields={"video": video}
    )
    while True:
        try:
            async with asyncio.timeout(5):
                await pipeline.announce_final_again(job)
            return job_id
        except Exception:  # the broker is restarting: the worker's message comes back
            await asyncio.sleep(0.5)
