"""The video worker through the real broker, SecantusDB and file storage."""

import hashlib
from datetime import timedelta

import av
import pytest
from faststream.rabbit import RabbitQueue
from PIL import Image

from common.errors import user_message
from common.events import JobCompleted, JobStatus, JobStatusChanged, PromptReady, RoutingKey
from common.jobs import now
from common.media import probe_video
from common.storage import poster_key, video_key
from common.worker import IN_STAGE
from services.video.tests.images import mug
from services.video.tests.support import Worker, duplicates_dropped, eventually

MUG = mug()


async def failure_logged(caplog: pytest.LogCaptureFixture, job_id: str, detail: str) -> bool:
    """The failure's detail is in the log, on a line naming the job. The worker logs just
    after its write, so a test that has already read the failed job waits a moment for it."""

    async def lines() -> bool:
        return any(
            getattr(r, "job_id", None) == job_id and detail in r.getMessage()
            for r in caplog.records
        )

    try:
        return await eventually(lines, bool, within=5)
    except AssertionError:
        return False


def statuses(job: dict) -> list[str]:
    """The job's statuses in history order, progress-only steps folded."""
    seen: list[str] = []
    for step in job["history"]:
        if not seen or seen[-1] != step["status"]:
            seen.append(step["status"])
    return seen


def digest(worker: Worker, key: str) -> str:
    return hashlib.sha256(worker.stored(key).read_bytes()).hexdigest()


async def test_prompt_ready_job_gets_its_clip_and_poster_and_completes(worker: Worker) -> None:
    ctx = worker.ctx
    completed = RabbitQueue(ctx.settings.queue_name("test.completed"), auto_delete=True)
    listening = await ctx.broker.declare_queue(completed)
    await listening.bind(ctx.topology.exchange.name, routing_key=RoutingKey.JOB_COMPLETED.value)
    job = await worker.add_job(MUG, options={"aspect_ratio": "16:9", "duration": 4, "style": None})

    await ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    done = await worker.wait_for_status(job["_id"], "completed", "failed")

    assert done["status"] == "completed" and done["progress"] == 100, done.get("error")
    video = done["video"]
    assert video["key"] == video_key(job["_id"]) and video["poster_key"] == poster_key(job["_id"])
    assert (video["width"], video["height"], video["codec"]) == (1280, 720, "h264")
    assert abs(video["duration"] - 4) <= 0.1
    clip = worker.stored(video["key"])
    assert video["size"] == clip.stat().st_size > 10_000
    info = probe_video(clip)
    assert (info.codec, info.width, info.height) == ("h264", 1280, 720)
    with Image.open(worker.stored(video["poster_key"])) as poster:
        assert poster.format == "JPEG" and poster.size == (1280, 720)
    assert "lease" not in done and "error" not in done
    # Finished as an ad (a job from before briefs: its title is the hook), with sound.
    assert video["finished"] is True and video["audio"]["codec"] == "aac"
    assert abs(video["audio"]["loudness_lufs"] + 14) <= 1
    with av.open(str(clip)) as container:
        assert container.streams.audio[0].codec_context.sample_rate == 48_000

    assert statuses(done) == [
        "queued",
        "prompting",
        "prompt_ready",
        "generating",
        "storing",
        "completed",
    ]
    history = done["history"]
    assert [h["seq"] for h in history] == list(range(1, done["seq"] + 1))
    assert [h["progress"] for h in history] == sorted(h["progress"] for h in history)
    generating = [h["progress"] for h in history if h["status"] == "generating"]
    assert generating[0] == 40 and max(generating) <= 85
    assert [(h["status"], h["progress"]) for h in history[-2:]] == [
        ("storing", 90),
        ("completed", 100),
    ]
    assert worker.provider.calls == [job["_id"]]

    async def take() -> list[bytes]:
        while (message := await listening.get(no_ack=True, fail=False)) is not None:
            got.append(message.body)
        return got

    got: list[bytes] = []
    await eventually(take, lambda bodies: len(bodies) >= 1, 10)
    assert [JobCompleted.model_validate_json(b).job_id for b in got] == [job["_id"]]


async def test_finish_false_stores_the_raw_motion_clip(worker: Worker) -> None:
    brief = {
        "hook": "Coffee tastes better here",
        "benefits": ["Hand-thrown stoneware"],
        "cta": "Shop now",
        "palette": ["#19235a", "#eeece6"],
        "mood": "calm",
    }
    job = await worker.add_job(
        MUG,
        options={"aspect_ratio": "1:1", "duration": 3, "style": None, "finish": False},
        brief=brief,
    )
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    done = await worker.wait_for_status(job["_id"], "completed", "failed")
    assert done["status"] == "completed", done.get("error")
    video = done["video"]
    assert video["finished"] is False and video["audio"] is None
    with av.open(str(worker.stored(video["key"]))) as container:
        assert not container.streams.audio
    assert video["fidelity"] is None and video["fidelity_warning"] is False  # AI clips only


async def test_duplicated_prompt_ready_renders_one_clip(worker: Worker) -> None:
    job = await worker.add_job(MUG)
    dropped = await duplicates_dropped()
    event = PromptReady(job_id=job["_id"])
    await worker.ctx.publishers.prompt_ready.publish(event)
    await worker.ctx.publishers.prompt_ready.publish(event)

    done = await worker.wait_for_status(job["_id"], "completed", "failed")
    assert done["status"] == "completed", done.get("error")
    clip = digest(worker, done["video"]["key"])
    # The duplicate found the job busy (and came back later) or done; either way it is
    # dropped without a second render.
    await eventually(duplicates_dropped, lambda n: n >= dropped + 1, 20)
    again = await worker.ctx.repo.get(job["_id"])
    assert again is not None
    assert worker.provider.calls == [job["_id"]]
    assert (again["seq"], again["video"]) == (done["seq"], done["video"])
    assert digest(worker, done["video"]["key"]) == clip
    assert statuses(again).count("completed") == 1


async def test_a_poll_that_comes_back_to_a_ready_job_does_not_take_it(worker: Worker) -> None:
    """A poll (marked `x-in-stage`: its job took its fair turn already) that finds its
    job ready again (retried meanwhile) is dropped: the job is taken by its own event,
    which takes a fair turn like any other."""
    job = await worker.add_job(MUG)
    dropped = await duplicates_dropped()
    event = PromptReady(job_id=job["_id"])
    await worker.ctx.publishers.prompt_ready.publish(event, headers={IN_STAGE: 1})
    await eventually(duplicates_dropped, lambda n: n >= dropped + 1, 20)
    assert (await worker.ctx.repo.get(job["_id"]))["status"] == "prompt_ready"
    assert worker.provider.calls == []

    await worker.ctx.publishers.prompt_ready.publish(event)
    done = await worker.wait_for_status(job["_id"], "completed", "failed")
    assert done["status"] == "completed", done.get("error")


async def test_unreadable_photo_fails_the_job_with_its_reason(
    worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    job = await worker.add_job(b"GIF89a this is no image at all")
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))

    failed = await worker.wait_for_status(job["_id"], "completed", "failed")
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "render_failed"
    # The owner reads the code's stable message; what broke, for operators, is logged.
    assert failed["error"]["message"] == user_message("render_failed")
    assert await failure_logged(caplog, job["_id"], "product photo")
    assert failed["error"]["retryable"] is False
    assert failed["attempts"] == 0  # permanent: not retried
    assert not worker.stored(video_key(job["_id"])).exists()
    assert "lease" not in failed
    assert statuses(failed)[-2:] == ["generating", "failed"]


async def test_missing_photo_fails_the_job_with_its_reason(worker: Worker) -> None:
    job = await worker.add_job(None)
    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))

    failed = await worker.wait_for_status(job["_id"], "completed", "failed")
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "source_missing"
    assert failed["error"]["message"] == user_message("source_missing")
    assert worker.provider.calls == []


async def test_late_prompt_ready_leaves_a_completed_job_untouched(worker: Worker) -> None:
    job = await worker.add_job(MUG)
    video = {
        "key": video_key(job["_id"]),
        "poster_key": poster_key(job["_id"]),
        "duration": 4.0,
        "width": 720,
        "height": 1280,
        "size": 1234,
        "codec": "h264",
    }
    repo = worker.ctx.repo
    await repo.transition(
        job["_id"], expected=[JobStatus.PROMPT_READY], to=JobStatus.GENERATING, progress=40
    )
    await repo.transition(
        job["_id"], expected=[JobStatus.GENERATING], to=JobStatus.STORING, progress=90
    )
    before = await repo.transition(
        job["_id"],
        expected=[JobStatus.STORING],
        to=JobStatus.COMPLETED,
        progress=100,
        fields={"video": video},
    )
    dropped = await duplicates_dropped()

    await worker.ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    await eventually(duplicates_dropped, lambda n: n >= dropped + 1, 20)

    assert await repo.get(job["_id"]) == before
    assert worker.provider.calls == []


async def test_a_clip_stored_before_a_crash_completes_without_a_second_render(
    worker: Worker,
) -> None:
    job = await worker.add_job(MUG)
    ctx = worker.ctx
    await ctx.storage.put_bytes(video_key(job["_id"]), b"the clip", "video/mp4")
    await ctx.storage.put_bytes(poster_key(job["_id"]), b"the poster", "image/jpeg")
    video = {
        "key": video_key(job["_id"]),
        "poster_key": poster_key(job["_id"]),
        "duration": 4.0,
        "width": 720,
        "height": 1280,
        "size": 8,
        "codec": "h264",
    }
    # The worker that uploaded them died before completing: its lease has run out.
    dead = {"holder": "video-dead", "until": now() - timedelta(seconds=1)}
    await ctx.repo.transition(
        job["_id"],
        expected=[JobStatus.PROMPT_READY],
        to=JobStatus.GENERATING,
        progress=40,
        fields={"lease": dead},
    )
    await ctx.repo.transition(
        job["_id"],
        expected=[JobStatus.GENERATING],
        to=JobStatus.STORING,
        progress=90,
        fields={"lease": dead, "video": video},
    )

    await ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))
    done = await worker.wait_for_status(job["_id"], "completed", "failed")

    assert done["status"] == "completed" and done["video"] == video
    assert worker.provider.calls == []
    assert worker.stored(video["key"]).read_bytes() == b"the clip"
    assert "lease" not in done


async def test_a_duplicate_for_a_final_job_announces_its_final_status_again(
    worker: Worker,
) -> None:
    """The completion was stored but its job.status never went out (the broker dropped
    between the two): the next duplicate delivery announces it, so watchers still hear."""
    ctx = worker.ctx
    watching = RabbitQueue(ctx.settings.queue_name("test.status"), auto_delete=True)
    listening = await ctx.broker.declare_queue(watching)
    await listening.bind(ctx.topology.exchange.name, routing_key=RoutingKey.JOB_STATUS.value)
    job = await worker.add_job(MUG)
    await ctx.repo.transition(
        job["_id"], expected=[JobStatus.PROMPT_READY], to=JobStatus.COMPLETED, progress=100
    )
    final = await ctx.repo.get(job["_id"])
    assert final is not None

    await ctx.publishers.prompt_ready.publish(PromptReady(job_id=job["_id"]))

    async def take() -> list[JobStatusChanged]:
        while (message := await listening.get(no_ack=True, fail=False)) is not None:
            got.append(JobStatusChanged.model_validate_json(message.body))
        return got

    got: list[JobStatusChanged] = []
    await eventually(take, lambda events: len(events) >= 1, 10)
    assert [(e.job_id, e.status, e.seq) for e in got] == [(job["_id"], "completed", final["seq"])]
    assert worker.provider.calls == []
